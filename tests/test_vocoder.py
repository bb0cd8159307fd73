"""voicebook.vocoder: WORLD analysis/synthesis on a signal with a known F0, mel-cepstrum and
band-aperiodicity codings, continuous log-F0, and the encode/decode round trip.

Bounds on round trips were measured on the speech-like test signal (values in comments) and
widened by a margin; they catch a broken coding, not the last decimal.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook import vocoder
from voicebook.checks import AudioError
from voicebook.metrics import f0_rmse, mcd_dtw, vuv_error
from helpers_signals import sine

FRAME = 0.005  # s


# ----------------------------------------------------------------------------- alpha

def _pysptk_mcepalpha(fs, num_points=1000):
    """pysptk.util.mcepalpha, re-implemented from its published source (pysptk needs a compiler)."""
    step = fs / 2.0 / num_points
    mel = 1000.0 / np.log(2) * np.log(1 + step * np.arange(num_points) / 1000.0)
    mel /= mel[-1]
    omega = np.pi / num_points * np.arange(num_points)
    best, best_d = None, np.inf
    for alpha in np.arange(0.0, 1.0, 0.001):
        num = (1 - alpha * alpha) * np.sin(omega)
        den = (1 + alpha * alpha) * np.cos(omega) - 2 * alpha
        warp = np.arctan(num / den)
        warp[warp < 0] += np.pi
        warp /= warp[-1]
        d = np.sqrt(np.mean((mel - warp) ** 2))
        if d < best_d:
            best, best_d = alpha, d
    return best


def test_mcep_alpha_known_values():
    assert vocoder.mcep_alpha(16000) == pytest.approx(0.41, abs=1e-9)
    assert vocoder.mcep_alpha(22050) == pytest.approx(0.455, abs=1e-9)
    assert vocoder.mcep_alpha(44100) == pytest.approx(0.544, abs=1e-9)
    assert vocoder.mcep_alpha(48000) == pytest.approx(0.554, abs=1e-9)


@pytest.mark.parametrize("sr", [8000, 24000])
def test_mcep_alpha_matches_pysptk_formula(sr):
    assert vocoder.mcep_alpha(sr) == pytest.approx(_pysptk_mcepalpha(sr), abs=1.5e-3)


# ----------------------------------------------------------------------------- WORLD

@pytest.fixture(scope="module")
def world16(speech16):
    return vocoder.analyze(speech16.wav, speech16.sr)  # Harvest, the default


def test_analyze_recovers_the_known_f0(speech16, world16):
    w = world16
    n_frames = int(len(speech16.wav) / speech16.sr / FRAME) + 1
    assert w.f0.shape == (n_frames,)
    assert w.sp.shape == w.ap.shape == (n_frames, w.fft_size // 2 + 1)
    assert w.sr == 16000 and w.frame_period == 5.0
    times = np.arange(n_frames) * FRAME
    truth = speech16.true_f0(times)
    inner = (times > 0.02) & (times < 0.58)  # voiced, away from the onset/offset ramps
    assert np.mean(w.f0[inner] > 0) > 0.95
    rel = np.abs(w.f0[inner] - truth[inner]) / truth[inner]
    assert np.median(rel[w.f0[inner] > 0]) < 0.02  # measured 0.12 %
    silence = times > speech16.silence[0] + 0.03
    assert np.all(w.f0[silence] == 0)
    assert np.all((w.ap >= 0) & (w.ap <= 1)) and np.all(w.sp >= 0)


def test_analyze_dio_also_tracks_f0(speech16):
    w = vocoder.analyze(speech16.wav, speech16.sr, f0_method="dio")
    times = np.arange(len(w.f0)) * FRAME
    inner = (times > 0.02) & (times < 0.58) & (w.f0 > 0)
    truth = speech16.true_f0(times[inner])
    assert inner.sum() > 100
    assert np.median(np.abs(w.f0[inner] - truth) / truth) < 0.02  # measured 0.11 %
    with pytest.raises(ValueError, match="f0_method must be 'harvest' or 'dio', got 'yin'"):
        vocoder.analyze(speech16.wav, speech16.sr, f0_method="yin")


def test_synthesize_length_and_pitch(speech16, world16):
    y = vocoder.synthesize(world16)
    sr = speech16.sr
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(len(y) - len(speech16.wav)) <= FRAME * sr
    # the resynthesised voice has the same F0 as the original
    w2 = vocoder.analyze(y, sr, f0_method="dio")
    times = np.arange(len(w2.f0)) * FRAME
    inner = (times > 0.02) & (times < 0.58) & (w2.f0 > 0)
    truth = speech16.true_f0(times[inner])
    assert np.median(np.abs(w2.f0[inner] - truth) / truth) < 0.02


def test_synthesize_rejects_nan(world16):
    bad = vocoder.WorldFeatures(world16.f0.copy(), world16.sp, world16.ap, world16.sr)
    bad.f0[10] = np.nan
    with pytest.raises(AudioError, match="synthesize: f0 contains NaN or inf"):
        vocoder.synthesize(bad)


@pytest.mark.parametrize("case, message", [
    ("nan", "1 samples are NaN"),
    ("stereo", "2-channel audio"),
    ("silence", "silent"),
    ("short", "shorter than the 0.050 s"),
    ("batch", r"expected one mono clip \(samples,\), got shape \(2, 8000\)"),
])
def test_analyze_bad_input(case, message):
    x = sine(150, 16000, 0.5)
    if case == "nan":
        x[100] = np.nan
    elif case == "stereo":
        x = np.stack([x, x], 1)
    elif case == "silence":
        x = np.zeros_like(x)
    elif case == "short":
        x = x[:400]
    elif case == "batch":
        x = np.stack([x, x])
    with pytest.raises(AudioError, match=message):
        vocoder.analyze(x, 16000)
    with pytest.raises(AudioError, match=message):
        vocoder.encode(x, 16000)



def test_analyze_scales_integer_pcm_and_names_bad_settings():
    """int16 samples (what a WAV reader gives) are read at their level: the envelope matches
    the float clip's, where unscaled it was 32768^2 times too large. A pitch range upside down
    or no sample rate is named (they ended in pyworld's MemoryError or a TypeError)."""
    x = sine(150, 16000, 0.5)
    f, i = vocoder.analyze(x, 16000), vocoder.analyze(np.round(x * 32767).astype(np.int16), 16000)
    np.testing.assert_allclose(i.sp.sum(1), f.sp.sum(1), rtol=0.01)       # per-frame energy; unscaled: 1e9 x
    with pytest.raises(AudioError, match="need 0 < f0_floor < f0_ceil, got 500 and 100 Hz"):
        vocoder.analyze(x, 16000, f0_floor=500, f0_ceil=100)
    with pytest.raises(AudioError, match="sr must be a positive number of Hz, got None"):
        vocoder.analyze(x, None)

# ----------------------------------------------------------------------------- mel-cepstrum

def test_flat_spectrum_has_only_c0():
    # log P = 2 * sum_m c_m cos(m w~): a flat power P gives c_0 = ln(P) / 2 and nothing else
    mc = vocoder.sp_to_mcep(np.full((3, 513), 4.0), 16000, order=39)
    assert mc.shape == (3, 40) and mc.dtype == np.float64
    np.testing.assert_allclose(mc[:, 0], np.log(2.0), rtol=1e-5)
    np.testing.assert_allclose(mc[:, 1:], 0.0, atol=1e-5)
    np.testing.assert_allclose(vocoder.mcep_to_sp(mc, 16000, 1024), 4.0, rtol=1e-4)
    np.testing.assert_array_equal(vocoder.sp_to_mcep(np.full((3, 513), 4.0), 16000, fft_size=1024), mc)
    with pytest.raises(AudioError, match=r"expected 513 bins for fft_size=1024 in the last axis, got shape \(513, 3\) \(is it \(bins, frames\)\?\)"):
        vocoder.sp_to_mcep(np.full((513, 3), 4.0), 16000, fft_size=1024)


def test_mcep_round_trip_log_spectral_error(world16):
    sp = world16.sp
    mc = vocoder.sp_to_mcep(sp, 16000, order=39)
    back = vocoder.mcep_to_sp(mc, 16000, world16.fft_size)
    assert back.shape == sp.shape
    err_db = np.abs(10 * np.log10(back) - 10 * np.log10(sp))
    assert err_db.mean() < 2.0  # measured 1.22 dB at order 39 (a smooth all-pole envelope)
    # the tensor path gives the same numbers and keeps the type
    t = vocoder.sp_to_mcep(torch.from_numpy(sp), 16000, order=39)
    assert isinstance(t, torch.Tensor) and t.shape == mc.shape
    np.testing.assert_allclose(t.double().numpy(), mc, rtol=1e-4, atol=1e-4)
    back_t = vocoder.mcep_to_sp(t, 16000, world16.fft_size)
    assert isinstance(back_t, torch.Tensor)


# ----------------------------------------------------------------------------- aperiodicity

def _mel(f):
    return 1127.0 * np.log1p(np.asarray(f) / 700.0)


def test_band_edges_are_mel_spaced():
    edges = vocoder.band_edges(16000, 5)
    assert edges[0] == 0 and edges[-1] == pytest.approx(8000)
    np.testing.assert_allclose(np.diff(_mel(edges)), _mel(8000) / 5, rtol=1e-9)


def test_ap_to_bap_hand_value():
    # 5 bins at 0, 2, 4, 6, 8 kHz; 2 mel bands split at mel(8000)/2 ~ 1.3 kHz: bin 0 alone, then the rest
    split = 700 * np.expm1(_mel(8000) / 2 / 1127)
    assert 0 < split < 2000
    ap = np.array([[0.1, 0.01, 0.001, 0.01, 0.1]])
    bap = vocoder.ap_to_bap(ap, 16000, n_bands=2)
    np.testing.assert_allclose(bap, [[-20.0, (-40 - 60 - 40 - 20) / 4]])
    # values outside [1e-4, 1] are clipped before the log
    np.testing.assert_allclose(vocoder.ap_to_bap(np.array([[0.0, 2.0, 2.0, 2.0, 2.0]]), 16000, 2), [[-80.0, 0.0]])


def test_bap_to_ap_interpolates_between_band_centres():
    sr, fft = 16000, 1024
    edges = 700 * np.expm1(np.linspace(0, _mel(8000), 3) / 1127)
    centres = (edges[:-1] + edges[1:]) / 2
    ap = vocoder.bap_to_ap(np.array([[-20.0, -40.0]]), sr, fft)
    freqs = np.arange(fft // 2 + 1) * sr / fft
    assert ap.shape == (1, 513)
    np.testing.assert_allclose(ap[0, freqs <= centres[0]], 0.1)
    np.testing.assert_allclose(ap[0, freqs >= centres[1]], 0.01)
    k = np.searchsorted(freqs, (centres[0] + centres[1]) / 2)
    expected_db = -20 - 20 * (freqs[k] - centres[0]) / (centres[1] - centres[0])
    assert 20 * np.log10(ap[0, k]) == pytest.approx(expected_db)


def test_constant_aperiodicity_survives_round_trip():
    ap = np.full((4, 513), 0.3)
    bap = vocoder.ap_to_bap(ap, 16000, n_bands=5)
    np.testing.assert_allclose(bap, 20 * np.log10(0.3), rtol=1e-12)
    np.testing.assert_allclose(vocoder.bap_to_ap(bap, 16000, 1024), ap, rtol=1e-12)


def test_too_many_bands():
    with pytest.raises(AudioError, match="ap_to_bap: 3 bands is too many for 3 frequency bins at 16000 Hz"):
        vocoder.ap_to_bap(np.full((1, 3), 0.5), 16000, n_bands=3)
    with pytest.raises(AudioError, match="too many"):
        vocoder.ap_to_bap(np.full((1, 513), 0.5), 16000, n_bands=200)


# ----------------------------------------------------------------------------- F0

def test_continuous_log_f0_interpolates_and_holds_edges():
    f0 = np.array([0.0, 100.0, 0.0, 0.0, 200.0, 0.0, 0.0])
    lf0, vuv = vocoder.continuous_log_f0(f0)
    a, b = np.log(100), np.log(200)
    np.testing.assert_allclose(lf0, [a, a, a + (b - a) / 3, a + 2 * (b - a) / 3, b, b, b])
    np.testing.assert_array_equal(vuv, [0, 1, 0, 0, 1, 0, 0])
    with pytest.raises(AudioError, match="no voiced frame"):
        vocoder.continuous_log_f0(np.zeros(10))


def test_log_f0_to_f0_inverts():
    f0 = np.array([0.0, 0.0, 120.0, 130.0, 0.0, 150.0, 0.0])
    np.testing.assert_allclose(vocoder.log_f0_to_f0(*vocoder.continuous_log_f0(f0)), f0, rtol=1e-12)
    # a soft V/UV prediction is thresholded at 0.5
    np.testing.assert_allclose(vocoder.log_f0_to_f0(np.log([100.0, 100.0]), np.array([0.4, 0.6])), [0, 100])


def test_log_f0_stats_hand_value():
    mean, std = vocoder.log_f0_stats([np.array([0.0, 100.0]), np.array([400.0, 0.0])])
    assert mean == pytest.approx(np.log(200)) and std == pytest.approx(np.log(2))
    with pytest.raises(AudioError, match="at least two voiced frames"):
        vocoder.log_f0_stats(np.array([0.0, 100.0, 0.0]))


def test_convert_f0_moves_to_target_statistics():
    rng = np.random.default_rng(0)
    f0 = np.exp(rng.normal(np.log(110), 0.15, 300))
    f0[rng.random(300) < 0.3] = 0.0
    source = vocoder.log_f0_stats(f0)
    target = (np.log(210.0), 0.22)
    out = vocoder.convert_f0(f0, source, target)
    np.testing.assert_array_equal(out == 0, f0 == 0)  # V/UV untouched
    mean, std = vocoder.log_f0_stats(out)
    assert mean == pytest.approx(target[0], abs=1e-12) and std == pytest.approx(target[1], abs=1e-12)


# ----------------------------------------------------------------------------- acoustic features

def test_acoustic_features_stack_unstack():
    rng = np.random.default_rng(0)
    feats = vocoder.AcousticFeatures(rng.standard_normal((20, 25)), rng.standard_normal(20),
                                     (rng.random(20) > 0.5).astype(float), rng.standard_normal((20, 5)),
                                     16000, 1024)
    m = feats.stack()
    assert m.shape == (20, 24 + 3 + 5)
    back = vocoder.AcousticFeatures.unstack(m, 16000, 1024, order=24)
    for name in ("mcep", "lf0", "vuv", "bap"):
        np.testing.assert_array_equal(getattr(back, name), getattr(feats, name))
    assert (back.sr, back.fft_size, back.frame_period) == (16000, 1024, 5.0)
    with pytest.raises(AudioError, match=r"expected \(frames, 25 mcep \+ log-F0 \+ V/UV \+ >= 1 BAP band\), got shape \(32, 20\)"):
        vocoder.AcousticFeatures.unstack(m.T, 16000, 1024, order=24)


@pytest.mark.parametrize("fixture, method, mcd_bound, f0_bound", [
    # measured: MCD-DTW 2.44 dB, F0 RMSE 1.8 Hz, V/UV error 0 %
    ("speech16", "dio", 3.5, 5.0),
    # measured: MCD-DTW 2.28 dB, F0 RMSE 6.3 Hz, V/UV error 3.9 %
    ("speech22", "harvest", 3.5, 12.0),
])
def test_encode_decode_round_trip(request, fixture, method, mcd_bound, f0_bound):
    s = request.getfixturevalue(fixture)
    a = vocoder.encode(s.wav, s.sr, f0_method=method)
    n = int(len(s.wav) / s.sr / FRAME) + 1
    assert a.stack().shape == (n, 40 + 2 + 5) and a.fft_size == (1024 if s.sr == 16000 else 2048)
    y = vocoder.decode(a)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(len(y) - len(s.wav)) <= FRAME * s.sr
    b = vocoder.encode(y, s.sr, f0_method=method)
    assert mcd_dtw(a.mcep, b.mcep) < mcd_bound
    m = min(len(a.lf0), len(b.lf0))
    f0_a, f0_b = vocoder.log_f0_to_f0(a.lf0, a.vuv)[:m], vocoder.log_f0_to_f0(b.lf0, b.vuv)[:m]
    assert f0_rmse(f0_a, f0_b) < f0_bound
    assert vuv_error(f0_a, f0_b) < 0.08
