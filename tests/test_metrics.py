"""voicebook.metrics against hand-computed values and a brute-force DTW."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicebook import metrics
from voicebook.checks import AudioError

K = 10 / math.log(10) * math.sqrt(2)  # MCD's constant, written out independently


# ----------------------------------------------------------------------------- MCD

def test_mcd_hand_value():
    ref = np.array([[5.0, 1.0, 2.0], [-1.0, 0.0, 0.0]])
    est = np.array([[9.0, 1.0, 0.0], [3.0, 3.0, 4.0]])  # c0 differs a lot: it must not count
    # frame 0: sqrt(0 + 4) = 2; frame 1: sqrt(9 + 16) = 5
    assert metrics.mcd(ref, est) == pytest.approx(K * (2 + 5) / 2)
    assert metrics.MCD_CONST == pytest.approx(K)


def test_mcd_identical_is_zero_and_symmetric():
    x = np.random.default_rng(0).standard_normal((30, 25))
    y = x + 0.1 * np.random.default_rng(1).standard_normal((30, 25))
    assert metrics.mcd(x, x) == 0.0
    assert metrics.mcd(x, y) == pytest.approx(metrics.mcd(y, x))


def test_mcd_errors():
    with pytest.raises(AudioError, match=r"mcd: shapes differ \(3, 4\) vs \(5, 4\); align them first or use mcd_dtw"):
        metrics.mcd(np.zeros((3, 4)), np.zeros((5, 4)))
    with pytest.raises(AudioError, match=r"mcd\(est\): contains NaN"):
        metrics.mcd(np.zeros((3, 4)), np.full((3, 4), np.nan))
    with pytest.raises(AudioError, match=r"mcd\(ref\): expected \(frames, coefficients\) with frames > 0, got shape \(4,\)"):
        metrics.mcd(np.zeros(4), np.zeros(4))
    with pytest.raises(AudioError, match="frames > 0"):
        metrics.mcd_dtw(np.zeros((0, 4)), np.zeros((3, 4)))


# ----------------------------------------------------------------------------- DTW

def brute_force_dtw(a, b):
    """Plain O(NM) DTW with steps (1,0), (0,1), (1,1) and Euclidean local cost.

    Returns (total cost, path as a list of (i, j) from (0, 0) to (N-1, M-1)).
    """
    n, m = len(a), len(b)
    local = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                acc[i, j] = local[0, 0]
                continue
            best = min(acc[i - 1, j] if i > 0 else np.inf,
                       acc[i, j - 1] if j > 0 else np.inf,
                       acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf)
            acc[i, j] = local[i, j] + best
    i, j, path = n - 1, m - 1, [(n - 1, m - 1)]
    while (i, j) != (0, 0):
        steps = [(acc[i - 1, j - 1], i - 1, j - 1) if i > 0 and j > 0 else (np.inf, 0, 0),
                 (acc[i - 1, j], i - 1, j) if i > 0 else (np.inf, 0, 0),
                 (acc[i, j - 1], i, j - 1) if j > 0 else (np.inf, 0, 0)]
        _, i, j = min(steps, key=lambda s: s[0])
        path.append((i, j))
    return acc[-1, -1], path[::-1]


@pytest.mark.parametrize("seed, n, m", [(0, 7, 7), (1, 9, 13), (2, 15, 6), (3, 1, 5)])
def test_dtw_path_is_optimal(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, 4)), rng.standard_normal((m, 4))
    path = metrics.dtw_path(a, b)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}
    cost = np.linalg.norm(a[path[:, 0]] - b[path[:, 1]], axis=1).sum()
    best, best_path = brute_force_dtw(a, b)
    assert cost == pytest.approx(best, rel=1e-9)
    assert [tuple(p) for p in path] == best_path  # random inputs: the optimum is unique


@pytest.mark.parametrize("seed, n, m", [(4, 8, 11), (5, 12, 9)])
def test_mcd_dtw_matches_brute_force(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, 6)), rng.standard_normal((m, 6))
    a[:, 0] += 100.0  # c0 is excluded from the alignment as well as from the distance
    best, path = brute_force_dtw(a[:, 1:], b[:, 1:])
    assert metrics.mcd_dtw(a, b) == pytest.approx(K * best / len(path), rel=1e-9)


def test_mcd_dtw_ignores_time_stretch():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 13))
    repeats = rng.integers(1, 4, size=40)  # each frame held for 1-3 frames
    stretched = np.repeat(x, repeats, axis=0)
    assert len(stretched) > len(x)
    assert metrics.mcd_dtw(x, stretched) == pytest.approx(0.0, abs=1e-12)
    # a constant cepstral offset costs the same with and without the stretch
    offset = np.zeros(13)
    offset[1:4] = [0.05, -0.02, 0.04]
    expected = K * np.linalg.norm(offset[1:])
    assert metrics.mcd(x, x + offset) == pytest.approx(expected)
    assert metrics.mcd_dtw(x, stretched + offset) == pytest.approx(expected)


# ----------------------------------------------------------------------------- F0 and V/UV

def test_f0_rmse_hand_values():
    ref = np.array([100.0, 200.0, 0.0, 150.0, 100.0])
    est = np.array([110.0, 190.0, 120.0, 0.0, 100.0])
    # voiced in both: frames 0, 1, 4 -> errors 10, -10, 0
    assert metrics.f0_rmse(ref, est) == pytest.approx(math.sqrt(200 / 3))
    # an octave up is 1200 cents
    assert metrics.f0_rmse([100.0, 200.0], [200.0, 200.0], cents=True) == pytest.approx(math.sqrt(1200 ** 2 / 2))
    assert math.isnan(metrics.f0_rmse([0.0, 100.0], [100.0, 0.0]))
    with pytest.raises(AudioError, match=r"f0_rmse: contours differ in length \(2,\) vs \(3,\)"):
        metrics.f0_rmse([1.0, 2.0], [1.0, 2.0, 3.0])


def test_vuv_error_hand_value():
    ref = [0, 100, 100, 0, 120, 0, 0, 90]
    est = [0, 100, 0, 80, 120, 0, 0, 0]
    assert metrics.vuv_error(ref, est) == pytest.approx(3 / 8)
    assert metrics.vuv_error(ref, ref) == 0.0
    with pytest.raises(AudioError, match="vuv_error: contours differ in length"):
        metrics.vuv_error([0, 1], [0])


# ----------------------------------------------------------------------------- signals

def test_snr_hand_value():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    noise = rng.standard_normal(1000)
    noise *= 0.1 * np.linalg.norm(ref) / np.linalg.norm(noise)  # noise energy = ref energy / 100
    assert metrics.snr_db(ref, ref + noise) == pytest.approx(20.0)
    assert metrics.snr_db(ref, 0.5 * ref) == pytest.approx(10 * math.log10(1 / 0.25))
    assert metrics.snr_db(ref, ref) == pytest.approx(10 * math.log10(np.sum(ref ** 2) / 1e-20))  # finite
    with pytest.raises(AudioError, match="snr_db: shapes differ"):
        metrics.snr_db(ref, ref[:-1])
    with pytest.raises(AudioError, match=r"snr_db: ref is silent \(all zeros\), so the SNR is undefined"):
        metrics.snr_db(np.zeros(1000), ref)                               # was -inf with a warning
    bad = ref.copy()
    bad[10] = np.nan
    with pytest.raises(AudioError, match="snr_db: est contains NaN or inf"):
        metrics.snr_db(ref, bad)


def test_log_spectral_distance():
    x = 0.1 * np.random.default_rng(0).standard_normal(8000)
    assert metrics.log_spectral_distance(x, x) == 0.0
    for gain in (0.5, 2.0, 10.0):
        # scaling by g changes every bin's power by exactly 20 log10 g dB
        assert metrics.log_spectral_distance(x, gain * x) == pytest.approx(abs(20 * math.log10(gain)), rel=1e-6)
    with pytest.raises(AudioError, match="log_spectral_distance: shapes differ"):
        metrics.log_spectral_distance(x, x[:100])
    stereo = np.stack([x, x], 1)                                   # STFT along the 2-long axis gave 4.79 dB
    with pytest.raises(AudioError, match=r"log_spectral_distance\(ref\): looks like 2-channel audio"):
        metrics.log_spectral_distance(stereo, stereo)
    with pytest.raises(AudioError, match=r"log_spectral_distance\(ref\): 100 samples is shorter than the 513"):
        metrics.log_spectral_distance(x[:100], x[:100])          # used to be 0.0
