"""voicebook.metrics: SDR as section 4.1 of Wang et al. computes it (BSS Eval v4, 1-s windows,
median per song), against hand values and against museval's own implementation."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from voicebook.checks import AudioError
from voicebook.metrics import sdr_windows, song_sdr

SR = 8000


def two_sources(seconds: float = 4.0, seed: int = 0):
    """A 'voice' (a gliding tone) and an 'accompaniment' (noise), with estimates that leak
    and distort by different amounts in different seconds; the voice rests in second 2."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voice = 0.5 * np.sin(2 * np.pi * (200 + 50 * t) * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    voice[2 * SR:3 * SR] = 0.0
    acc = 0.3 * rng.standard_normal(len(t))
    ref = np.stack([voice, acc])
    leak = np.linspace(0.05, 0.4, len(t))
    est = np.stack([voice + leak * acc + 0.01 * rng.standard_normal(len(t)),
                    acc + 0.2 * voice + 0.02 * rng.standard_normal(len(t))])
    return ref, est


def test_a_window_is_the_energy_ratio_of_the_reference_to_the_error():
    ref, est = two_sources()
    got = sdr_windows(ref, est, SR)
    assert got.shape == (2, 4)
    for j in range(2):
        for k in (0, 1, 3):
            w = slice(k * SR, (k + 1) * SR)
            expected = 10 * np.log10(np.sum(ref[j, w] ** 2) / np.sum((est[j, w] - ref[j, w]) ** 2))
            assert got[j, k] == pytest.approx(expected)
    assert np.isnan(got[:, 2]).all()                         # the voice rests: the window is skipped
    np.testing.assert_allclose(song_sdr(ref, est, SR), np.nanmedian(got, axis=1))
    assert song_sdr(ref, ref * 1.0 + 0, SR)[0] == np.inf       # a perfect estimate


def test_bad_input_is_named():
    ref, est = two_sources(2.0)
    with pytest.raises(AudioError, match="differ in shape"):
        sdr_windows(ref, est[:, :-1], SR)
    with pytest.raises(AudioError, match="NaN"):
        sdr_windows(ref, np.where(est > 0.4, np.nan, est), SR)
    with pytest.raises(AudioError, match="silent over the whole clip"):
        sdr_windows(np.stack([ref[0], 0 * ref[1]]), est, SR)
    with pytest.raises(AudioError, match=r"song_sdr\(references\): \d+ sources of 2 samples each.*transpose"):
        song_sdr(ref.T, est.T, SR)                               # (samples, sources): used to score silently


def _museval(tmp_path, monkeypatch):
    """museval, imported even where ffmpeg is missing: its package imports stempeg, which
    refuses to load without ffmpeg and ffprobe on PATH, although the metrics never call
    them. Stand-in executables that do nothing satisfy that check."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return pytest.importorskip("museval.metrics", reason="museval is not installed (`make test` installs it)")


@pytest.mark.parametrize("channels", [1, 2])
def test_agrees_with_museval(tmp_path, monkeypatch, channels):
    metrics = _museval(tmp_path, monkeypatch)
    ref, est = two_sources(4.0, seed=channels)
    if channels == 2:                                       # stereo: a delayed, scaled second channel
        ref = np.stack([ref, 0.8 * np.roll(ref, 3, axis=1)], axis=-1)
        est = np.stack([est, 0.7 * np.roll(est, 5, axis=1)], axis=-1)
    ours = sdr_windows(ref, est, SR)
    theirs, *_ = metrics.bss_eval(ref if channels == 2 else ref[..., None],
                                  est if channels == 2 else est[..., None], window=SR, hop=SR)
    assert theirs.shape == ours.shape
    np.testing.assert_array_equal(np.isnan(theirs), np.isnan(ours))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], rtol=1e-6, atol=1e-6)


def test_the_chapters_median_over_songs_is_museval_s(tmp_path, monkeypatch):
    """The whole of section 4.1's aggregation: :func:`voicebook.separation.evaluate` (median over
    1-s windows per song, then over songs) against museval's own stores (``TrackStore`` per
    track, ``EvalStore`` medians over frames, then over tracks), on three 4-s songs at 16 kHz
    with different leaks; in the first the vocals rest for a whole second (a NaN window both
    leave out, so its median is of three windows)."""
    museval_metrics = _museval(tmp_path, monkeypatch)
    import museval
    from voicebook import separation
    from voicebook.data.songs import SR as SONG_SR

    songs, estimates = [], []
    for k in range(3):
        ref, est = two_sources(8.0, seed=10 + k)             # 8 kHz signals, taken as 16 kHz samples
        if k == 0:
            ref[0, SONG_SR:2 * SONG_SR] = 0.0                  # a silent second of vocals
        songs.append(ref.astype(np.float32))
        estimates.append((ref + (k + 1) * (est - ref)).astype(np.float32))   # a worse estimate each song
    separated = iter(estimates)                                # evaluate separates the songs in order
    monkeypatch.setattr(separation, "separate_long", lambda model, mixture, sr: next(separated))
    monkeypatch.setattr(separation, "_digest", lambda *a, **k: "test")
    ours = separation.evaluate(None, songs, sr=SONG_SR)

    store = museval.EvalStore(frames_agg="median", tracks_agg="median")
    for k, (ref, est) in enumerate(zip(songs, estimates)):
        sdr, *_ = museval_metrics.bss_eval(ref[..., None], est[..., None], window=SONG_SR, hop=SONG_SR)
        track = museval.TrackStore(f"song {k}", win=1, hop=1)
        for j, target in enumerate(("vocals", "accompaniment")):
            track.add_target(target, {"SDR": sdr[j].tolist(), "SIR": sdr[j].tolist(), "ISR": sdr[j].tolist(),
                                      "SAR": sdr[j].tolist()})
        store.add_track(track)
    assert np.isnan(museval_metrics.bss_eval(songs[0][..., None], estimates[0][..., None], window=SONG_SR,
                                             hop=SONG_SR)[0]).sum() == 2   # the silent second, both sources
    theirs = store.agg_frames_tracks_scores()
    for target in ("vocals", "accompaniment"):
        assert ours[target] == pytest.approx(float(theirs[(target, "SDR")]), abs=1e-5)
