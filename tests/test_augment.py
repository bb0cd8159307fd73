"""voicebook.data.augment: the separator's training windows and the data noise of Wang et al. 2.1.2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.data.augment import Augment, SeparationCrops

SR = 8000


def songs(n=3, seconds=3.0):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, int(seconds * SR))).astype(np.float32) * (k + 1) for k in range(n)]


def test_plain_windows_are_aligned_cuts_of_one_song():
    pool = songs()
    data = SeparationCrops(pool, SR, 1.0, None, seed=1)
    for i in range(5):
        mix, src = data[i]
        assert mix.shape == (SR,) and src.shape == (2, SR)
        torch.testing.assert_close(mix, src.sum(0))
        hits = [(k, s) for k, song in enumerate(pool) for s in range(song.shape[1] - SR + 1)
                if np.array_equal(song[0, s:s + SR], src[0].numpy())]
        assert len(hits) == 1
        k, s = hits[0]
        assert np.array_equal(pool[k][1, s:s + SR], src[1].numpy())          # same song, same window
    a, b = data[3], data[3]
    assert torch.equal(a[1], b[1])                                          # a function of (seed, i)
    assert not torch.equal(SeparationCrops(pool, SR, 1.0, None, seed=2)[3][1], a[1])


def test_random_mixing_and_gain():
    pool = songs()
    data = SeparationCrops(pool, SR, 1.0, Augment(p_mix=1.0, gain_db=0.0, p_shift=0, p_lowpass=0, p_eq=0), seed=0)
    mixed = 0
    for i in range(20):
        _, src = data[i]
        voc_song = [k for k, s in enumerate(pool) if np.isclose(np.std(s[0]), src[0].std().item(), rtol=0.2)]
        acc_song = [k for k, s in enumerate(pool) if np.isclose(np.std(s[1]), src[1].std().item(), rtol=0.2)]
        mixed += voc_song != acc_song
    assert mixed == 20                                      # random mixing always picks another song's backing
    gained = SeparationCrops(pool, SR, 1.0, Augment(p_mix=0, gain_db=12.0, p_shift=0, p_lowpass=0, p_eq=0))
    ratios = [float(s[0].std() / s[1].std()) / 1.0 for _, s in (gained[i] for i in range(20))]
    assert max(ratios) / min(ratios) > 2                    # the vocals' level varies, the backing's not


def test_pitch_shift_low_pass_and_padding():
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    pool = [np.stack([tone, 0.1 * tone])]
    shifted = SeparationCrops(pool, SR, 1.0, Augment(p_mix=0, gain_db=0, semitones=2, p_shift=1.0, p_lowpass=0,
                                                     p_eq=0), seed=0)
    steps = set()
    for i in range(8):
        _, src = shifted[i]
        x = src[0].numpy()[1000:-1000]
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        f0 = np.argmax(spec) * SR / len(x)
        k = 12 * np.log2(f0 / 440)
        assert abs(k - round(k)) < 0.25 and -2 <= round(k) <= 2, f0      # a whole number of semitones
        steps.add(round(k))
    assert len(steps) >= 2                                  # several shifts were drawn
    low = SeparationCrops([np.stack([np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)] * 2)], SR,
                          1.0, Augment(p_mix=0, gain_db=0, p_shift=0, p_lowpass=1.0, lowpass_hz=(500.0, 500.0), p_eq=0))
    _, src = low[0]
    spec = np.abs(np.fft.rfft(src[0].numpy())) ** 2
    hz = np.arange(len(spec)) * SR / 2 / (len(spec) - 1)
    assert spec[hz > 2000].mean() < 0.02 * spec[hz < 250].mean()   # 2nd order: -24 dB per octave
    short = SeparationCrops([np.ones((2, SR // 2), np.float32)], SR, 1.0, None)
    _, src = short[0]
    assert src.shape == (2, SR) and float(src[:, SR // 2:].abs().max()) == 0.0
    with pytest.raises(ValueError, match="not \\(2, samples\\) stems"):
        SeparationCrops([np.ones(10)], SR, 1.0)


def test_pitch_shift_moves_a_tone_by_whole_semitones_at_16k():
    from voicebook.data.augment import _ratio, pitch_shift

    sr = 16000
    tone = torch.sin(2 * np.pi * 440 * torch.arange(2 * sr) / sr)
    for steps in (-3, -1, 2, 4):
        assert abs(1200 * np.log2(float(_ratio(steps))) - 100 * steps) < 5     # the fraction: within 5 cents
        y = pitch_shift(tone, steps).numpy()
        assert y.shape == tone.shape
        x = y[2000:-2000]
        f0 = np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * sr / len(x)
        assert abs(1200 * np.log2(f0 / 440) - 100 * steps) < 15, (steps, f0)   # bin width ~0.6 Hz


def _f0_steps(x: np.ndarray, ref_hz: float = 440.0) -> int:
    """The semitones between a tone's peak frequency (a ``(samples,)`` window at SR) and ``ref_hz``."""
    x = x[1000:-1000]
    f0 = np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * SR / len(x)
    return round(12 * np.log2(f0 / ref_hz))


def test_random_mixing_never_pairs_a_song_with_itself():
    """With p_mix = 1 every window's backing comes from another song, each other song in turn
    (it used to draw the vocals' own song a third of the time in a pool of three), and a pool
    of one song cannot be mixed."""
    pool = [np.stack([np.full(2 * SR, k + 1.0), np.full(2 * SR, 10.0 * (k + 1))]).astype(np.float32) for k in range(3)]
    off = Augment(p_mix=1.0, gain_db=0.0, p_shift=0, p_lowpass=0, p_eq=0)
    data = SeparationCrops(pool, SR, 1.0, off, seed=0)
    pairs = set()
    for i in range(40):
        _, src = data[i]
        voc, acc = int(src[0, 0]) - 1, int(src[1, 0]) // 10 - 1     # the songs the two sources came from
        assert voc != acc, i
        pairs.add((voc, acc))
    assert len(pairs) == 6                                  # every ordered pair of two songs
    _, src = SeparationCrops(pool[:1], SR, 1.0, off)[0]
    assert torch.equal(src[1], torch.full((SR,), 10.0))


def test_one_song_is_shifted_as_one_and_a_random_mix_source_by_source():
    """Section 2.1.2's pitch shift: without random mixing the vocals and the accompaniment of a
    window get the same shift (the accompaniment, a tenth of the vocals, stays a tenth of them,
    in the same key), drawn per window; with random mixing each source gets its own."""
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    pool = [np.stack([tone, 0.1 * tone])] * 2
    shift = dict(gain_db=0, semitones=2, p_lowpass=0, p_eq=0)
    same = SeparationCrops(pool, SR, 1.0, Augment(p_mix=0.0, p_shift=0.5, **shift), seed=0)
    steps = []
    for i in range(12):
        _, src = same[i]
        torch.testing.assert_close(src[1], 0.1 * src[0], atol=2e-3, rtol=0)   # ~1e-4: the phase vocoder's rounding
        steps.append(_f0_steps(src[0].numpy()))
    assert 0 in steps and len(set(steps)) >= 3              # shifted in some windows, by several amounts
    mixed = SeparationCrops(pool, SR, 1.0, Augment(p_mix=1.0, p_shift=1.0, **shift), seed=0)
    pairs = [(_f0_steps(src[0].numpy()), _f0_steps(src[1].numpy())) for _, src in (mixed[i] for i in range(12))]
    assert all(-2 <= a <= 2 and -2 <= b <= 2 for a, b in pairs)
    assert sum(a != b for a, b in pairs) >= 6               # independent: 4 in 5 pairs differ


def test_stems_with_nan_or_inf_are_named_at_construction():
    """A NaN or infinite sample is refused when the windows are set up, naming the song and the
    source (it used to surface steps later as a non-finite loss)."""
    pool = songs(3)
    pool[1][1, 100] = np.nan
    with pytest.raises(ValueError, match=r"SeparationCrops: song 1, accompaniment: 1 samples are NaN or infinite"):
        SeparationCrops(pool, SR, 1.0, Augment())
    pool = songs(3)
    pool[2][0, :5] = np.inf
    with pytest.raises(ValueError, match=r"SeparationCrops: song 2, vocals: 5 samples are NaN or infinite"):
        SeparationCrops(pool, SR, 1.0, None)
