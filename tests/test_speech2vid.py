"""voicebook.models.speech2vid (Chung et al. section 3): MFCC windows centred on each video frame,
encoder/decoder shapes for one and five stills, gradients, skip connections that carry the
identity, the deblurring CNN's residual path and its training, sliding-window generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.checks import AudioError
from voicebook.face_metrics import sharpness
from voicebook.models.speech2vid import (SIZE, WINDOW, Deblur, Identity, Speech2Vid, blur, deblur_loss,
                                         generate_video, l1_loss, max_video_frames, mfcc_windows, speech2vid_loss,
                                         stills_tensor)
from voicebook.train import fit

W = 0.125          # channel width for the tests (2 CPU cores)


def _noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    return (0.01 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _tone_burst(wav: np.ndarray, sr: int, t0: float, freq: float = 1500.0, dur: float = 0.03) -> np.ndarray:
    n = int(dur * sr)
    i0 = int(round(t0 * sr)) - n // 2
    t = np.arange(n) / sr
    out = wav.copy()
    out[i0:i0 + n] += (0.5 * np.hanning(n) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return out


def _stills(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3 * n, SIZE, SIZE, generator=g)


def _model(**kw) -> Speech2Vid:
    torch.manual_seed(0)
    return Speech2Vid(width=W, **kw)


def _calibrated(model: Speech2Vid) -> Speech2Vid:
    """Eval mode with batch-norm statistics from one random batch, as if trained (a fresh
    model's unit running statistics let the signal fade to a constant frame)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None                                              # cumulative average
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.train()(20 * torch.randn(8, 1, 12, 35, generator=g),
                      torch.rand(8, 3 * model.n_stills, SIZE, SIZE, generator=g))
    return model.eval()


# ----------------------------------------------------------------------------- MFCC windows (3.1)

def test_mfcc_windows_are_12_by_35_one_per_frame():
    wav = _noise(2.0, 16000)
    w = mfcc_windows(wav, 16000)
    assert w.shape == (50, 1, 12, 35) and w.dtype == torch.float32       # 2 s at 25 fps
    assert mfcc_windows(wav, 16000, n_frames=7).shape == (7, 1, 12, 35)
    assert torch.isfinite(w).all()


def test_frames_beyond_the_audio_by_more_than_one_frame_are_refused():
    """3.1: frame t is centred on t / fps s; a video longer than its audio by more than one
    frame would get the last MFCC step repeated, so it must be trimmed by the caller."""
    wav = _noise(2.0, 16000)                                          # 2 s: 50 frames at 25 fps
    assert max_video_frames(len(wav), 16000, 25.0) == 51
    assert max_video_frames(len(wav) - 1, 16000, 25.0) == 50
    assert mfcc_windows(wav, 16000, n_frames=51).shape == (51, 1, 12, 35)   # one frame past the end: fine
    assert mfcc_windows(_noise(1.99, 16000), 16000, n_frames=50).shape[0] == 50   # ceil(duration * fps)
    with pytest.raises(ValueError, match=r"52 video frames at 25 fps \(2.080 s\) need more audio than the "
                                         r"2.000 s given, which covers at most 51 frames"):
        mfcc_windows(wav, 16000, n_frames=52)
    with pytest.raises(ValueError, match="at most 26 frames"):
        generate_video(_model(), wav[:16000], 16000, np.zeros((SIZE, SIZE, 3), np.uint8), n_frames=50)


def test_mfcc_windows_do_not_depend_on_the_clips_sample_rate():
    """The same sound at 16 kHz and at 44.1 kHz (resampled) gives the same windows: the FFT
    spans 32 ms at any rate (a fixed 512 points would be 11.6 ms at 44.1 kHz)."""
    from voicebook import audio

    t = np.arange(2 * 16000) / 16000                    # a buzz gliding around 150 Hz, 24 harmonics
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 1.5 * t)) / 16000
    wav = (0.2 * sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.6 + 0.4 * np.sin(6 * np.pi * t)))
    wav = wav.astype(np.float32)
    at16 = mfcc_windows(wav, 16000)
    at44 = mfcc_windows(audio.resample(wav, 16000, 44100), 44100)
    assert at44.shape == at16.shape
    err = (at44 - at16).abs().mean() / at16.abs().mean()
    assert float(err) < 0.02, float(err)             # measured 0.003; a 512-point FFT at 44.1 kHz: 1.04


@pytest.mark.parametrize("sr", [16000, 22050])
def test_window_of_frame_t_is_centred_at_t_over_25_seconds(sr):
    frame = 20                                                             # 0.8 s
    wav = _tone_burst(_noise(2.0, sr), sr, frame / 25)
    w = mfcc_windows(wav, sr)[:, 0].numpy()                                # (frames, 12, 35)

    def burst_column(win):                                                 # the most unusual step
        return int(np.argmax(np.abs(win - np.median(win, axis=1, keepdims=True)).sum(0)))

    assert burst_column(w[frame]) == WINDOW // 2                           # the centre column, 17
    assert burst_column(w[frame + 1]) == WINDOW // 2 - 4                   # 40 ms later: 4 steps earlier
    assert burst_column(w[frame - 3]) == WINDOW // 2 + 12


def test_windows_at_the_ends_repeat_the_edge_steps():
    w = mfcc_windows(_noise(1.0, 16000), 16000)
    first = w[0, 0]
    assert torch.equal(first[:, :WINDOW // 2], first[:, :1].expand(-1, WINDOW // 2))


@pytest.mark.parametrize("wav, match", [
    (np.full(int(0.2 * 16000), 0.1, np.float32), "shorter than one Speech2Vid window"),
    (np.zeros(16000, np.float32), "silent"),
    (np.array([0.1, np.nan] * 8000, np.float32), "NaN"),
    (np.full((16000, 2), 0.1, np.float32), "2-channel"),
])
def test_bad_audio_raises_audio_error(wav, match):
    with pytest.raises(AudioError, match=match):
        mfcc_windows(wav, 16000)
    with pytest.raises(AudioError, match=match):
        generate_video(_model(), wav, 16000, np.zeros((SIZE, SIZE, 3), np.uint8))


# ----------------------------------------------------------------------------- the model (3.2, Fig. 6)

@pytest.mark.parametrize("n_stills", [1, 5])
def test_encoder_and_decoder_shapes(n_stills):
    model = _model(n_stills=n_stills).eval()
    audio = torch.randn(3, 1, 12, 35)
    with torch.no_grad():
        ident = model.encode_identity(_stills(n_stills, 0))
        a = model.audio_encoder(audio)
        frames = model.decode(audio, ident)
        also = model(audio, _stills(n_stills, 0).reshape(1, n_stills, 3, SIZE, SIZE))   # 5-d stills work too
    c14, c7 = model.identity_encoder.channels
    assert a.shape == (3, 256) and ident.fc7.shape == (1, 256)
    assert ident.skip7.shape == (1, c7, 7, 7) and ident.skip14.shape == (1, c14, 14, 14)
    assert frames.shape == (3, 3, SIZE, SIZE) and 0 <= frames.min() and frames.max() <= 1
    torch.testing.assert_close(also, frames)
    with pytest.raises(ValueError, match=f"expected stills \\(batch, {3 * n_stills}"):
        model.encode_identity(torch.rand(1, 3 * n_stills + 3, SIZE, SIZE))


def test_gradient_reaches_every_parameter():
    model = _model(n_stills=5).train()
    audio, stills, target = torch.randn(2, 1, 12, 35), torch.rand(2, 15, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    speech2vid_loss(model, (audio, stills, target)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_skip_connections_carry_the_identity():
    """Same audio, same fc7 identity vector; only the skip maps come from another still. With
    the skips the frame changes; built without them (Fig. 11 b) it cannot. Zeroing the fc7
    path entirely, the still still shows through the skips."""
    audio = torch.randn(4, 1, 12, 35)
    for skips in (True, False):
        model = _calibrated(_model(skips=skips))
        with torch.no_grad():
            a, b = model.encode_identity(_stills(1, 1)), model.encode_identity(_stills(1, 2))
            same = model.decode(audio, a)
            mixed = model.decode(audio, Identity(a.fc7, b.skip7, b.skip14))
            zero_a = model.decode(audio, Identity(torch.zeros_like(a.fc7), a.skip7, a.skip14))
            zero_b = model.decode(audio, Identity(torch.zeros_like(a.fc7), b.skip7, b.skip14))
        if skips:
            assert (same - mixed).abs().mean() > 1e-3
            assert (zero_a - zero_b).abs().mean() > 1e-3
        else:
            assert torch.equal(same, mixed) and torch.equal(zero_a, zero_b)
    n_with = sum(p.numel() for p in _model(skips=True).decoder.parameters())
    assert n_with > sum(p.numel() for p in _model(skips=False).decoder.parameters())


def test_l1_loss_is_eq1_up_to_the_mean():
    pred, target = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    target[0] = -1.0
    assert float(l1_loss(pred, target)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- generation (3.2)

def test_generation_slides_the_window_and_caches_the_identity():
    sr = 16000
    wav = _tone_burst(_noise(1.0, sr), sr, 0.5)
    still = (np.random.default_rng(0).uniform(0, 255, (SIZE, SIZE, 3))).astype(np.uint8)
    model = _calibrated(_model())
    video = generate_video(model, wav, sr, still, batch=7)
    assert video.shape == (25, SIZE, SIZE, 3) and video.dtype == np.float32
    assert 0 <= video.min() and video.max() <= 1
    assert video.std(axis=(1, 2, 3)).min() > 1e-3 and np.abs(video[12] - video[0]).mean() > 1e-4
    with torch.no_grad():                                                  # frame by frame, no cache
        ref = model(mfcc_windows(wav, sr)[[0, 12, 24]], stills_tensor(still).expand(3, -1, -1, -1))
    np.testing.assert_allclose(video[[0, 12, 24]], ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(generate_video(model, wav, sr, still, batch=64), video, atol=1e-5)


@pytest.mark.parametrize("stills, match", [
    (np.full((SIZE, SIZE, 3), 200.0, np.float32), r"float images must be in \[0, 1\], got values in \[200, 200\]"),
    (np.full((2, SIZE, SIZE, 3), -0.5, np.float64), r"got values in \[-0.5, -0.5\]"),
    (np.where(np.eye(SIZE, dtype=bool)[..., None], np.nan, np.full((SIZE, SIZE, 3), 0.5, np.float32)),
     "NaN or infinite"),
    (np.full((SIZE, SIZE, 3), np.inf, np.float32), "NaN or infinite"),
    (np.full((SIZE, SIZE, 3), 200, np.int64), "uint8 \\(0-255\\) or float in \\[0, 1\\], got dtype int64"),
    (torch.full((1, 3, SIZE, SIZE), 255.0), r"got values in \[255, 255\]"),
    (torch.full((1, 1, 3, SIZE, SIZE), float("nan")), "NaN or infinite"),
])
def test_stills_outside_0_1_are_refused(stills, match):
    with pytest.raises(ValueError, match=match):
        stills_tensor(stills)
    with pytest.raises(ValueError, match=match):
        generate_video(_model(), _noise(1.0, 16000), 16000, stills)


def test_stills_in_range_are_scaled_to_0_1():
    img = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    as_uint8, as_float = stills_tensor(img), stills_tensor(img.astype(np.float32) / 255)
    assert as_uint8.shape == (1, 3, SIZE, SIZE) and float(as_uint8.max()) <= 1.0
    torch.testing.assert_close(as_uint8, as_float)
    assert torch.equal(stills_tensor(torch.from_numpy(img).permute(2, 0, 1)[None]), as_uint8)
    stills_tensor(np.full((SIZE, SIZE, 3), 1.0005, np.float32))        # rounding slack of 1e-3 allowed


# ----------------------------------------------------------------------------- deblurring (3.3, Fig. 8)

def test_deblur_residual_path_is_exact():
    net = Deblur(channels=8)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 10
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 9
    torch.nn.init.zeros_(net.last.weight)
    torch.nn.init.zeros_(net.last.bias)
    x = torch.rand(2, 3, 20, 24)
    assert torch.equal(net(x), x)


def _sharp_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random colour fields plus sharp-edged rectangles, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size),
                                        mode="bicubic", align_corners=False)
    for i in range(n):
        for _ in range(3):
            y0, x0, h, w = torch.randint(0, size - 8, (4,), generator=g).tolist()
            x[i, :, y0:y0 + h // 2 + 3, x0:x0 + w // 2 + 3] = torch.rand(3, 1, 1, generator=g)
    return x.clamp(0, 1)


def test_blur_is_deterministic_and_blurs():
    sharp = _sharp_images(4, 32, 0)
    b1, b2 = blur(sharp, seed=3), blur(sharp, seed=3)
    assert torch.equal(b1, b2) and not torch.equal(b1, blur(sharp, seed=4))
    assert b1.shape == sharp.shape
    for s, b in zip(sharp, b1):
        assert sharpness(b.permute(1, 2, 0).numpy()) < 0.5 * sharpness(s.permute(1, 2, 0).numpy())


def test_deblur_trained_briefly_beats_its_blurred_input():
    train_sharp, test_sharp = _sharp_images(64, 32, 1), _sharp_images(16, 32, 2)
    train_blur, test_blur = blur(train_sharp, seed=1), blur(test_sharp, seed=2)
    torch.manual_seed(0)
    net = Deblur(channels=16)
    fit(net, list(zip(train_blur, train_sharp)), deblur_loss, steps=100, batch_size=8, lr=1e-3,
        device="cpu", progress=False, seed=0)
    with torch.no_grad():
        restored = net.eval()(test_blur)
    before, after = float(l1_loss(test_blur, test_sharp)), float(l1_loss(restored, test_sharp))
    assert after < 0.9 * before, (before, after)
