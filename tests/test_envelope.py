"""voicebook.envelope: the 32-band mel envelope of chapter 2 (section 4.1 of Ferro et al.)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from voicebook import envelope as E
from voicebook.checks import AudioError
from voicebook.data import features
from test_features import write_items

SR, FFT = 16000, 1024
BINS = FFT // 2 + 1


def test_filters_have_unit_sum_and_cover_the_band():
    w = E.band_weights(SR, FFT)
    assert w.shape == (32, BINS)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    centres = E.band_centres(SR)
    assert centres.shape == (32,) and np.all(np.diff(centres) > 0) and 0 < centres[0] < centres[-1] < SR / 2
    # each filter peaks at (the bin nearest) its centre
    peak_hz = np.argmax(w, axis=1) * SR / FFT
    assert np.all(np.abs(peak_hz - centres) <= SR / FFT)


def test_flat_envelope_gives_equal_bands_of_its_log_power():
    sp = np.full((7, BINS), 3e-4)
    bands = E.sp_to_bands(sp, SR)
    assert bands.shape == (32, 7) and bands.dtype == np.float32
    np.testing.assert_allclose(bands, np.log(3e-4), rtol=1e-5)
    np.testing.assert_allclose(E.bands_to_sp(bands, SR, FFT), 3e-4, rtol=1e-5)


def test_bands_are_unit_sum_weighted_means_of_the_envelope():
    """Against librosa's mel spectrogram of the envelope with the same (unnormalised) filters,
    divided by each filter's sum: the band value is the weighted mean power, in log."""
    rng = np.random.default_rng(0)
    sp = np.exp(rng.normal(-8, 1, size=(5, BINS)))
    fb = librosa.filters.mel(sr=SR, n_fft=FFT, n_mels=32, fmin=0, fmax=SR / 2, norm=None)
    expected = np.log(librosa.feature.melspectrogram(S=sp.T, sr=SR, n_fft=FFT, n_mels=32, fmin=0, fmax=SR / 2,
                                                     norm=None) / fb.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(E.sp_to_bands(sp, SR), expected, rtol=1e-5)


def test_an_envelope_linear_in_log_over_mel_survives_the_round_trip():
    """Between the outer centres, an envelope whose log power is linear in mel comes back exactly
    (the inverse interpolates linearly on the mel axis; the filters average a linear function
    almost exactly to its value at their centre)."""
    mel = librosa.hz_to_mel(np.linspace(0, SR / 2, BINS))
    sp = np.exp(-2.0 - 0.002 * mel)[None].repeat(3, axis=0)
    back = E.bands_to_sp(E.sp_to_bands(sp, SR), SR, FFT)
    inside = (mel > librosa.hz_to_mel(E.band_centres(SR)[0])) & (mel < librosa.hz_to_mel(E.band_centres(SR)[-1]))
    err_db = np.abs(10 * np.log10(back[:, inside] / sp[:, inside]))
    assert err_db.max() < 0.5


def test_non_finite_bands_are_refused():
    bands = np.zeros((32, 4))
    bands[3, 2] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        E.bands_to_sp(bands, SR, FFT)


def test_analysis_and_resynthesis_keep_the_envelope(speech16):
    m = E.analyze(speech16.wav, SR)
    frames = len(speech16.wav) / SR / 0.005
    assert m.bands.shape[0] == 32 and abs(m.bands.shape[1] - frames) <= 2
    assert m.f0.shape == (m.bands.shape[1],) and m.ap.shape == (m.bands.shape[1], BINS)
    wav = E.synthesize(m.bands, m.f0, m.ap, SR)
    assert wav.dtype == np.float32 and abs(len(wav) - len(speech16.wav)) < SR * 0.01
    again = E.analyze(wav[: int(0.6 * SR)], SR)                      # the voiced part
    n = min(again.bands.shape[1], int(0.6 / 0.005)) - 4
    diff_db = 10 / np.log(10) * np.abs(again.bands[:, 4:n] - m.bands[:, 4:n])
    assert np.median(diff_db) < 3.0


@pytest.mark.parametrize("bad, match", [
    (np.zeros(16000), "silent"),
    (np.stack([np.ones(16000), np.ones(16000)], axis=1) * 0.1, "channel"),
    (np.full(16000, np.nan), "NaN"),
    (np.full(400, 0.1), "shorter"),
])
def test_bad_input_to_analysis_is_named(bad, match):
    with pytest.raises(AudioError, match=match):
        E.analyze(bad, SR)


def test_synthesis_refuses_mismatched_frames_and_shapes():
    with pytest.raises(AudioError, match="frame counts differ"):
        E.synthesize(np.zeros((32, 10)), np.zeros(9), np.zeros((10, BINS)), SR)
    with pytest.raises(AudioError, match="expected bands"):
        E.synthesize(np.zeros(32), np.zeros(9), np.zeros((10, BINS)), SR)
    with pytest.raises(AudioError, match="expected a \\(frames, bins\\)"):
        E.sp_to_bands(np.zeros(BINS), SR)


def test_mel_envelopes_are_cached_and_match_a_direct_analysis(tmp_path, monkeypatch):
    items = write_items(tmp_path, SR)[:2]
    env = features.mel_envelopes(items, cache_dir=tmp_path, workers=1, progress=False)
    direct = E.analyze(items[0].load(), SR)
    np.testing.assert_allclose(env["u0"]["bands"].numpy(), direct.bands)
    np.testing.assert_allclose(env["u0"]["f0"].numpy(), direct.f0, rtol=1e-6)
    assert len(list((tmp_path / "features").glob("melenv-*.pt"))) == 1
    monkeypatch.setattr(features, "_envelope_of", lambda job: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = features.mel_envelopes(items, cache_dir=tmp_path, workers=1, progress=False)
    assert torch.equal(again["u1"]["bands"], env["u1"]["bands"])


def test_a_bad_utterance_is_named(tmp_path):
    import soundfile as sf

    silent = write_items(tmp_path, SR)[0]
    sf.write(silent.path, np.zeros(8000, np.float32), SR)                  # the file now holds silence
    with pytest.raises(AudioError, match="utterance u0: .*silent"):
        features.mel_envelopes([silent], cache_dir=tmp_path, workers=1, progress=False)


def test_mel_envelopes_in_worker_processes_match_one_process(tmp_path):
    """The process pool (after torch has run in this process) returns what one process computes."""
    items = write_items(tmp_path, 22050)[:2]               # resampled to 16 kHz with torch first
    torch.ones(64, 64) @ torch.ones(64, 64)                # torch has run here before the fork
    one = features.mel_envelopes(items, cache_dir=tmp_path / "a", workers=1, progress=False)
    two = features.mel_envelopes(items, cache_dir=tmp_path / "b", workers=2, progress=False)
    for uid in one:
        assert torch.equal(one[uid]["bands"], two[uid]["bands"]) and torch.equal(one[uid]["f0"], two[uid]["f0"])
