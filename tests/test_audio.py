"""voicebook.audio: file I/O errors and round trips, resampling, STFT, mel features,
normalisation, Griffin-Lim. Reference values come from soundfile, librosa and numpy, not from
the code under test.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from voicebook import audio
from voicebook.audio import AudioError
from voicebook.metrics import log_spectral_distance, snr_db
from helpers_signals import sine

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


# ----------------------------------------------------------------------------- load

def test_load_wrong_rate_names_file_and_rates(tmp_path):
    path = tmp_path / "clip16k.wav"
    sf.write(path, sine(440, 16000, 0.2), 16000)
    with pytest.raises(AudioError, match=r"clip16k\.wav: sample rate is 16000 Hz, expected 22050 Hz"):
        audio.load(path, 22050)
    wav, sr = audio.load(path, 16000)
    assert sr == 16000 and wav.dtype == np.float32 and wav.shape == (3200,)


def test_load_can_resample(tmp_path):
    path = tmp_path / "clip16k.wav"
    sf.write(path, sine(1000, 16000, 0.5), 16000, subtype="FLOAT")
    wav, sr = audio.load(path, 22050, resample_to_sr=True)
    assert sr == 22050
    assert abs(len(wav) - 0.5 * 22050) <= 1
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    assert abs(np.argmax(spectrum) * 22050 / len(wav) - 1000) < 22050 / len(wav)


def test_load_stereo_needs_mix_down(tmp_path):
    left, right = sine(440, 16000, 0.2, amp=0.6), sine(660, 16000, 0.2, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"stereo\.wav: has 2 channels, expected mono.*mix_down=True"):
        audio.load(path)
    mixed, _ = audio.load(path, mix_down=True)
    np.testing.assert_allclose(mixed, (left + right) / 2, atol=1e-6)
    both, _ = audio.load(path, mono=False)
    assert both.shape == (3200, 2)
    np.testing.assert_allclose(both[:, 1], right, atol=1e-6)


def test_load_multichannel_checks_duration_along_time(tmp_path):
    # regression: the duration check and the resampler used to run along the channel axis
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([sine(440, 16000, 0.5), sine(880, 16000, 0.5)], 1), 16000, subtype="FLOAT")
    wav, _ = audio.load(path, mono=False, min_seconds=0.4)
    assert wav.shape == (8000, 2)
    with pytest.raises(AudioError, match=r"0\.500 s is shorter than the 0\.600 s required"):
        audio.load(path, mono=False, min_seconds=0.6)
    wav, sr = audio.load(path, 22050, mono=False, resample_to_sr=True)
    assert sr == 22050 and wav.shape[1] == 2 and abs(wav.shape[0] - 11025) <= 1
    for channel, freq in ((0, 440), (1, 880)):
        spectrum = np.abs(np.fft.rfft(wav[:, channel]))
        assert abs(np.argmax(spectrum) * sr / len(wav) - freq) < 3


def test_load_empty_silent_short(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: empty audio"):
        audio.load(empty)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(1600, np.float32), 16000)
    assert audio.load(silent)[0].shape == (1600,)  # silence is allowed by default...
    with pytest.raises(AudioError, match=r"silent\.wav: the clip is silent"):
        audio.load(silent, allow_silence=False)  # ...and rejected when asked
    with pytest.raises(AudioError, match=r"silent\.wav: 0\.100 s is shorter than the 1\.000 s required"):
        audio.load(silent, min_seconds=1.0)


def test_load_nan_in_float_file(tmp_path):
    path = tmp_path / "nan.wav"
    x = sine(440, 16000, 0.1).astype(np.float32)
    x[5] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 samples are NaN or infinite"):
        audio.load(path)


def test_load_corrupt_and_missing(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF this is not a wave file at all" * 10)
    with pytest.raises(AudioError, match=r"garbage\.wav: cannot read audio"):
        audio.load(garbage)
    missing = tmp_path / "nowhere" / "missing.wav"
    with pytest.raises(FileNotFoundError, match=r"nowhere/missing\.wav"):
        audio.load(missing)


def test_load_takes_the_rate_as_a_whole_number_of_hz(tmp_path):
    """16000, 16000.0 and "16000" are one rate ("16000 Hz, expected 16000 Hz" was the error
    for the string); 16000.5 or "x" is refused as a rate, not as a mismatch."""
    path = audio.save(tmp_path / "r.wav", sine(440, 16000, 0.1), 16000)
    assert {audio.load(path, sr)[1] for sr in (16000, 16000.0, "16000", np.int64(16000))} == {16000}
    for bad in (16000.5, "x", -1):
        with pytest.raises(AudioError, match=r"r\.wav\): sr must be a positive whole number of Hz"):
            audio.load(path, bad)


def test_load_refuses_a_wav_cut_short(tmp_path):
    """An interrupted copy: the header announces more audio than the file holds."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, sine(440, 16000, 1.0), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 16000])            # header + 8000 of 16000 samples
    assert audio.load(whole, 16000)[0].shape == (16000,)
    with pytest.raises(AudioError, match=r"cut\.wav: truncated file: its header announces 32000 bytes of audio, only 16000"):
        audio.load(cut, 16000)


# ----------------------------------------------------------------------------- save

def test_save_load_round_trip_pcm16(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)
    x[:2] = [1.0, -1.0]  # the extremes quantise worst
    path = audio.save(tmp_path / "rt.wav", x, 16000)
    assert path == tmp_path / "rt.wav"
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    y, sr = audio.load(path, 16000)
    assert sr == 16000 and y.shape == x.shape
    assert np.abs(y - x).max() <= 1 / 32768 + 1e-7


def test_save_clips_tensor_stereo_and_flac(tmp_path):
    x = torch.tensor([0.5, 1.5, -2.0, 0.25] * 100)
    audio.save(tmp_path / "clip.wav", x, 8000)
    y, _ = sf.read(tmp_path / "clip.wav", dtype="float32")
    np.testing.assert_allclose(y[:4], [0.5, 32767 / 32768, -1.0, 0.25], atol=1 / 32768)
    stereo = np.stack([sine(440, 16000, 0.1), sine(220, 16000, 0.1)], 1)
    audio.save(tmp_path / "clip.flac", stereo, 16000, subtype="PCM_24")
    info = sf.info(tmp_path / "clip.flac")
    assert (info.format, info.channels) == ("FLAC", 2)
    back, _ = audio.load(tmp_path / "clip.flac", mono=False)
    assert np.abs(back - stereo).max() < 2 / 2 ** 23


def test_save_rejects_bad_audio_naming_the_path(tmp_path):
    with pytest.raises(AudioError, match=r"save\(.*bad\.wav\): 1 samples are NaN"):
        audio.save(tmp_path / "bad.wav", np.array([0.1, np.nan, 0.2]), 16000)
    with pytest.raises(AudioError, match=r"save\(.*bad\.wav\): empty audio"):
        audio.save(tmp_path / "bad.wav", np.zeros(0), 16000)
    assert not (tmp_path / "bad.wav").exists()


def test_save_refuses_channels_first_and_scales_integer_pcm(tmp_path):
    """A model's ``(1, samples)`` or torchaudio's ``(channels, samples)`` is refused with the
    layout it wants; int16 samples are written at their level, not clipped to a square wave."""
    x = sine(440, 16000, 0.5)
    for shape_of in (torch.tensor(x)[None], np.stack([x, x])):
        with pytest.raises(AudioError, match=r"save\(.*chan\.wav\): got shape \((1|2), 8000\), which looks like \(channels, samples\)"):
            audio.save(tmp_path / "chan.wav", shape_of, 16000)
    assert not (tmp_path / "chan.wav").exists()
    with pytest.raises(AudioError, match="sr must be a positive whole number of Hz, got 0"):
        audio.save(tmp_path / "rate.wav", x, 0)
    pcm = np.round(x * 32767).astype(np.int16)
    y, _ = audio.load(audio.save(tmp_path / "pcm.wav", pcm, 16000), 16000)
    np.testing.assert_allclose(y, pcm / 32768.0, atol=1e-6)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    audio.save(path, sine(440, 16000, 0.1), 16000)
    before = path.read_bytes()

    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as f:  # a partial file, then the failure
            f.write(b"RIFF\0\0")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        audio.save(path, sine(880, 16000, 0.1), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


# ----------------------------------------------------------------------------- resample

def _peak_hz(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * sr / len(x)


def test_resample_keeps_frequency_length_and_type():
    x = sine(1000, 16000, 1.0).astype(np.float32)
    y = audio.resample(x, 16000, 22050)
    assert isinstance(y, np.ndarray)
    assert abs(len(y) - len(x) * 22050 / 16000) <= 1
    assert abs(_peak_hz(y, 22050) - 1000) <= 1.0
    interior = slice(500, -500)  # the sinc filter's edges see zeros outside the clip
    assert np.sqrt(np.mean(y[interior] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)

    t = audio.resample(torch.from_numpy(x), 16000, 22050)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), y, atol=1e-6)

    assert audio.resample(x, 16000, 16000) is x


def test_resample_batch_along_last_axis():
    batch = np.stack([sine(500, 16000, 0.5), sine(2000, 16000, 0.5)]).astype(np.float32)
    out = audio.resample(batch, 16000, 8000)
    assert out.shape == (2, 4000)
    assert abs(_peak_hz(out[0], 8000) - 500) <= 2 and abs(_peak_hz(out[1], 8000) - 2000) <= 2


def test_resample_bad_arguments():
    with pytest.raises(AudioError, match="new_sr must be a positive number of Hz, got 0"):
        audio.resample(sine(440, 16000, 0.1), 16000, 0)
    with pytest.raises(AudioError, match="orig_sr must be a positive"):
        audio.resample(sine(440, 16000, 0.1), -1, 16000)
    with pytest.raises(AudioError, match=r"resample\(wav\): 1 samples are NaN"):
        audio.resample(np.array([0.0, np.nan, 0.5]), 16000, 8000)


# ----------------------------------------------------------------------------- STFT

def test_stft_shape_and_perfect_reconstruction(speech22):
    x = speech22.wav.astype(np.float32)
    spec = audio.stft(x)
    assert spec.is_complex() and spec.shape == (1024 // 2 + 1, len(x) // 256 + 1)
    y = audio.istft(spec, length=len(x)).numpy()
    assert snr_db(x, y) > 60
    # other sizes, and a batch
    spec = audio.stft(np.stack([x, -x]), n_fft=512, hop=128, win=400)
    assert spec.shape == (2, 257, len(x) // 128 + 1)
    y = audio.istft(spec, n_fft=512, hop=128, win=400, length=len(x)).numpy()
    assert snr_db(x, y[0]) > 60 and snr_db(-x, y[1]) > 60


def test_stft_matches_numpy_for_one_frame():
    x = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    spec = audio.stft(x, n_fft=1024, hop=256)
    frame = 8  # centred framing: frame k covers samples k*hop - n_fft/2 ... k*hop + n_fft/2
    window = np.hanning(1025)[:-1]  # periodic Hann
    seg = x[frame * 256 - 512: frame * 256 + 512]
    np.testing.assert_allclose(spec[:, frame].numpy(), np.fft.rfft(seg * window), rtol=1e-3, atol=1e-3)


def test_stft_too_short():
    with pytest.raises(AudioError, match=r"stft\(wav\): 100 samples is shorter than the 513 samples required"):
        audio.stft(np.ones(100, np.float32))


@pytest.mark.parametrize("fn", [lambda x: audio.stft(x), lambda x: audio.log_mel(x, 16000),
                                lambda x: audio.mfcc(x, 16000), lambda x: audio.resample(x, 16000, 8000)],
                         ids=["stft", "log_mel", "mfcc", "resample"])
def test_features_name_stereo_as_stereo(fn):
    """``(samples, 2)``, the layout soundfile and ``load(mono=False)`` give, is called stereo,
    not "2 samples is too short" (nor resampled along its channel axis)."""
    stereo = np.stack([sine(440, 16000, 0.5), sine(220, 16000, 0.5)], 1)
    with pytest.raises(AudioError, match=r"looks like 2-channel audio of shape \(8000, 2\); expected mono"):
        fn(stereo)
    assert fn(stereo.T).shape[0] == 2                             # (channels, samples): a batch of two


def test_magnitude_db():
    spec = torch.tensor([[0.1 + 0j, 1j, 0j], [10.0, 0.0, 0.001]], dtype=torch.complex64)
    np.testing.assert_allclose(audio.magnitude_db(spec).numpy(), [[-20, 0, -100], [20, -100, -60]], atol=1e-4)
    np.testing.assert_allclose(audio.magnitude_db(spec.abs(), floor_db=-50).numpy(), [[-20, 0, -50], [20, -50, -50]],
                               atol=1e-4)


# ----------------------------------------------------------------------------- mel features

def test_mel_spectrogram_matches_librosa(speech22):
    x, sr = speech22.wav.astype(np.float32), speech22.sr
    mel = audio.mel_spectrogram(x, sr)
    ref = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=1024, hop_length=256, n_mels=80, power=1.0,
                                         center=True, htk=False, norm="slaney")
    assert mel.shape == ref.shape == (80, len(x) // 256 + 1)
    interior = slice(4, -4)  # frames within n_fft/2 of an edge depend on the padding mode
    a, b = mel.numpy()[:, interior], ref[:, interior]
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4
    assert np.abs(a - b).max() < 1e-4 * b.max()

    power = audio.mel_spectrogram(x, sr, power=2.0, fmin=50, fmax=8000, n_mels=40).numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=1024, hop_length=256, n_mels=40, power=2.0,
                                         fmin=50, fmax=8000)
    assert np.linalg.norm(power[:, interior] - ref[:, interior]) / np.linalg.norm(ref[:, interior]) < 1e-4


def test_mel_spectrogram_bad_band():
    with pytest.raises(AudioError, match=r"fmin < fmax <= sr/2 = 8000\.0 Hz, got fmin=0\.0, fmax=9000"):
        audio.mel_spectrogram(sine(440, 16000, 0.2), 16000, fmax=9000)
    with pytest.raises(AudioError, match="fmin=5000"):
        audio.mel_spectrogram(sine(440, 16000, 0.2), 16000, fmin=5000, fmax=4000)


def test_mel_batch_equals_single(speech16):
    x = speech16.wav.astype(np.float32)
    batch = audio.log_mel(torch.from_numpy(np.stack([x, 0.5 * x])), 16000)
    assert batch.shape == (2, 80, len(x) // 256 + 1)
    torch.testing.assert_close(batch[1], audio.log_mel(0.5 * x, 16000))


def test_log_mel_of_silence_is_the_floor():
    lm = audio.log_mel(np.zeros(4000, np.float32), 16000, floor=1e-5)
    assert torch.isfinite(lm).all()
    torch.testing.assert_close(lm, torch.full_like(lm, np.log(1e-5)))


def test_mfcc_shape_and_rate(speech16):
    x = speech16.wav.astype(np.float32)
    m = audio.mfcc(x, 16000)
    seconds = len(x) / 16000
    assert m.shape == (13, len(x) // 160 + 1)  # 10 ms hop by default
    assert abs(m.shape[-1] / seconds - 100) < 2
    assert torch.isfinite(m).all()
    assert audio.mfcc(sine(440, 22050, 0.5), 22050, n_mfcc=20).shape == (20, 11025 // 220 + 1)


@pytest.mark.parametrize("fn", ["stft", "mel_spectrogram", "log_mel", "mfcc"])
def test_features_stay_on_the_input_device_cpu(fn):
    x = torch.from_numpy(sine(440, 16000, 0.2).astype(np.float32))
    out = getattr(audio, fn)(x) if fn == "stft" else getattr(audio, fn)(x, 16000)
    assert out.device.type == "cpu"


@cuda
@pytest.mark.parametrize("fn", ["stft", "mel_spectrogram", "log_mel", "mfcc"])
def test_features_stay_on_the_input_device_cuda(fn):
    # broadband noise: no mel band sits near the log floor, where FFT round-off would dominate
    x = torch.from_numpy(0.1 * np.random.default_rng(0).standard_normal(3200).astype(np.float32))
    args = () if fn == "stft" else (16000,)
    gpu = getattr(audio, fn)(x.cuda(), *args)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), getattr(audio, fn)(x, *args), rtol=1e-3, atol=1e-3)


@cuda
def test_griffin_lim_and_mel_to_wave_on_cuda():
    x = torch.from_numpy(sine(440, 16000, 0.2).astype(np.float32)).cuda()
    assert audio.griffin_lim(audio.stft(x).abs(), n_iter=4).device.type == "cuda"
    assert audio.mel_to_wave(audio.log_mel(x, 16000), 16000, n_iter=4).device.type == "cuda"


# ----------------------------------------------------------------------------- normalisation

def _features(seed, frames, channels=4):
    rng = np.random.default_rng(seed)
    scales = np.array([0.1, 1.0, 10.0, 100.0])[:channels, None]
    means = np.array([-3.0, 0.0, 5.0, 1000.0])[:channels, None]
    return torch.from_numpy(rng.standard_normal((channels, frames)) * scales + means).float()


def test_normaliser_zero_mean_unit_std_and_exact_inverse():
    f = _features(0, 500)
    mean, std = audio.fit_normaliser(f)
    assert mean.shape == std.shape == (4, 1)
    z = audio.normalise(f, mean, std)
    np.testing.assert_allclose(z.mean(-1).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(np.std(z.numpy().astype(np.float64), axis=-1, ddof=1), 1, rtol=1e-4)
    torch.testing.assert_close(audio.denormalise(z, mean, std), f, rtol=1e-5, atol=1e-4)


def test_normaliser_list_of_different_lengths_and_batches():
    parts = [_features(1, 50), _features(2, 173), _features(3, 7)]
    whole = np.concatenate([p.numpy().astype(np.float64) for p in parts], axis=1)
    mean, std = audio.fit_normaliser(parts)
    np.testing.assert_allclose(mean[:, 0].numpy(), whole.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std[:, 0].numpy(), whole.std(1, ddof=1), rtol=1e-4)
    # a (batch, channels, frames) tensor pools batch and frames
    batch = torch.stack([_features(4, 60), _features(5, 60)])
    mean_b, std_b = audio.fit_normaliser(batch)
    pooled = np.concatenate(list(batch.numpy().astype(np.float64)), axis=1)
    np.testing.assert_allclose(mean_b[:, 0].numpy(), pooled.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std_b[:, 0].numpy(), pooled.std(1, ddof=1), rtol=1e-4)
    assert audio.normalise(batch, mean_b, std_b).shape == batch.shape


def test_normaliser_frames_first_layout():
    parts = [_features(6, 40).T.numpy(), _features(7, 90).T.numpy()]  # (frames_i, channels)
    mean, std = audio.fit_normaliser(parts, dim=0)
    whole = np.concatenate(parts, axis=0).astype(np.float64)
    np.testing.assert_allclose(mean[:, 0].numpy(), whole.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std[:, 0].numpy(), whole.std(0, ddof=1), rtol=1e-4)


def test_normaliser_constant_channel_and_nan():
    f = torch.ones(2, 10)
    mean, std = audio.fit_normaliser(f)
    assert torch.all(std > 0)  # no division by zero on a constant channel
    assert torch.isfinite(audio.normalise(f, mean, std)).all()
    f[0, 3] = float("nan")
    with pytest.raises(AudioError, match="fit_normaliser: features contain NaN or inf"):
        audio.fit_normaliser(f)



def test_normaliser_names_time_major_features():
    """``(frames, channels)`` against ``(channels, 1)`` statistics: torch said only "size of
    tensor a (30) must match the size of tensor b (80)"."""
    mean, std = audio.fit_normaliser(torch.randn(80, 30))
    for fn in (audio.normalise, audio.denormalise):
        with pytest.raises(AudioError, match=r"features of shape \(30, 80\) for statistics of 80 channels.*transpose"):
            fn(torch.randn(30, 80), mean, std)
    assert audio.normalise(torch.randn(4, 80, 30), mean, std).shape == (4, 80, 30)


# ----------------------------------------------------------------------------- Griffin-Lim

@pytest.fixture(scope="module")
def gl_case(speech22):
    x = speech22.wav.astype(np.float32)
    return x, audio.stft(x).abs()


def test_griffin_lim_recovers_the_spectrum(gl_case):
    x, mag = gl_case
    y = audio.griffin_lim(mag, n_iter=32, length=len(x))
    assert y.shape == (len(x),) and torch.isfinite(y).all()
    lsd_gl = log_spectral_distance(x, y.numpy())
    # the same magnitudes with random phases: what a phase-blind inversion would give
    phase = np.exp(2j * np.pi * np.random.default_rng(0).random(mag.shape))
    noisy = audio.istft(torch.from_numpy(mag.numpy() * phase).to(torch.complex64), length=len(x)).numpy()
    lsd_random = log_spectral_distance(x, noisy)
    # measured: 2.26 dB (32 iterations) vs 8.87 dB for random phases
    assert lsd_gl < 3.5
    assert lsd_gl < 0.5 * lsd_random


def test_griffin_lim_length_and_errors(gl_case):
    _, mag = gl_case
    frames = mag.shape[-1]
    assert audio.griffin_lim(mag, n_iter=2).shape == ((frames - 1) * 256,)
    assert audio.griffin_lim(mag, n_iter=2, length=frames * 256 + 100).shape == (frames * 256 + 100,)
    with pytest.raises(AudioError, match=r"expected 257 frequency bins for n_fft=512, got shape \(513, "):
        audio.griffin_lim(mag, n_fft=512)
    bad = mag.clone()
    bad[3, 3] = float("inf")
    with pytest.raises(AudioError, match="magnitude contains NaN or inf"):
        audio.griffin_lim(bad)
    np.testing.assert_array_equal(audio.griffin_lim(mag.numpy(), n_iter=2).numpy(), audio.griffin_lim(mag, n_iter=2).numpy())
    with pytest.raises(AudioError, match=r"got a complex spectrogram \(pass spec.abs\(\)\)"):
        audio.griffin_lim(mag * (1 + 0j))
    with pytest.raises(AudioError, match=r"2 frames or more, got shape \(513, 1\)"):
        audio.griffin_lim(mag[:, :1])


def test_istft_names_bad_spectrograms():
    spec = audio.stft(np.sin(np.arange(4096) / 10.0).astype(np.float32))
    with pytest.raises(AudioError, match=r"istft: expected a complex spectrogram \(as from stft\), got dtype torch.float32"):
        audio.istft(spec.abs())
    with pytest.raises(AudioError, match=r"istft: expected \(\.\.\., 513 bins, frames\) for n_fft=1024, got shape \(17, 513\)"):
        audio.istft(spec.T)
    spec[4, 2] = complex(float("nan"), 0.0)
    with pytest.raises(AudioError, match="istft: the spectrogram contains NaN or inf"):
        audio.istft(spec)


def test_mel_to_wave_names_a_time_major_or_broken_mel(speech22):
    mel = audio.log_mel(speech22.wav.astype(np.float32), speech22.sr)      # (80, 78)
    with pytest.raises(AudioError, match=r"expected \(\.\.\., 80 mel bands, frames\), got shape \(78, 80\) \(is it \(frames, n_mels\)\?\)"):
        audio.mel_to_wave(mel.T, speech22.sr, n_iter=1, n_mels=80)
    assert audio.mel_to_wave(mel, speech22.sr, n_iter=1, n_mels=80).shape == ((mel.shape[-1] - 1) * 256,)
    long = mel.repeat(1, 8)                                                # 624 frames: more than the 513 bins
    with pytest.raises(AudioError, match=r"624 mel bands is more than the 513 bins of n_fft=1024; is the mel \(frames, n_mels\)"):
        audio.mel_to_wave(long.T, speech22.sr, n_iter=1)                  # without n_mels, caught only when frames > bins
    mel[3, 3] = float("inf")
    with pytest.raises(AudioError, match="mel_to_wave: the mel contains NaN or inf"):
        audio.mel_to_wave(mel, speech22.sr, n_iter=1)


def test_mel_to_wave(speech22):
    x, sr = speech22.wav.astype(np.float32), speech22.sr
    y = audio.mel_to_wave(audio.log_mel(x, sr), sr, n_iter=32, length=len(x))
    assert y.shape == (len(x),) and torch.isfinite(y).all()
    # measured 6.7 dB from an 80-band log-mel (white noise scores ~31 dB)
    assert log_spectral_distance(x, y.numpy()) < 9.0
    # a linear (not log) mel works too, and batches keep their batch axis
    mel = audio.mel_spectrogram(np.stack([x, x]), sr)
    assert audio.mel_to_wave(mel, sr, n_iter=2, log=False, length=1000).shape == (2, 1000)
