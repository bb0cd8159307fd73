"""Shared fixtures: speech-like test signals with a known F0 (see helpers_signals.py)."""

from __future__ import annotations

import os

import pytest

from helpers_signals import speech_like

# The suite pins CPU behaviour (exact resume, bit-for-bit workers): on a machine with a GPU,
# ``fit`` would otherwise pick CUDA and bf16. VOICEBOOK_DEVICE=cuda runs it there on purpose.
os.environ.setdefault("VOICEBOOK_DEVICE", "cpu")


@pytest.fixture(scope="session")
def speech22():
    """Speech-like clip at 22050 Hz: 0.6 s voiced (F0 100->200 Hz), noise burst, silence."""
    return speech_like(22050)


@pytest.fixture(scope="session")
def speech16():
    """The same clip generated at 16000 Hz."""
    return speech_like(16000)


@pytest.fixture(scope="session")
def tiny_songs(tmp_path_factory):
    """Generated songs of 4 s: two labelled, two karaoke, one test (voicebook.data.songs)."""
    from voicebook.data import songs

    saved = dict(songs.SIZES)
    songs.SIZES["tiny"] = {"labelled": 2, "karaoke": 2, "test": 1, "seconds": 4.0}
    try:
        root = tmp_path_factory.mktemp("songs")
        yield root, songs.generate_songs(root, "tiny", seed=0, workers=1)
    finally:
        songs.SIZES.clear()
        songs.SIZES.update(saved)


@pytest.fixture(scope="session")
def tiny_vads(tiny_songs):
    """The two activity detectors of section 2.1.1 (``separation.voice_activity_detectors``),
    small, trained 80 steps on the two labelled tiny songs, whole 4-s songs per window; shared
    by test_vad.py and test_separation.py (the training is the slow part of both)."""
    from voicebook import separation

    _, ss = tiny_songs
    return separation.voice_activity_detectors([s.stems() for s in ss.split("labelled")], steps=80, seconds=4.0,
                                               batch_size=2, lr=3e-3, channels=8, hidden=16, progress=False,
                                               device="cpu", log_every=10)


@pytest.fixture(scope="session")
def chapter05(tmp_path_factory):
    """Chapter 5 executed at preset=smoke, seed 0 -> ``(its folder, its metrics)`` (used by
    test_chapter05.py and by the book test in test_chapters.py)."""
    from pathlib import Path

    from voicebook.runner import run_chapter

    out = tmp_path_factory.mktemp("05_you_said_that")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "05_you_said_that.md"
    return out, run_chapter(notebook, out, preset="smoke", seed=0)
