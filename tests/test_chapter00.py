"""Chapter 0 (notebooks/00_voice_as_numbers.md) at preset=smoke: bounds on its metrics, and the
same numbers from a second run with the same seed.

The smoke run is the session fixture ``chapter00``; how its bounds were set: helpers_chapters.py.
"""

from __future__ import annotations

import math

import pytest

from helpers_chapters import notebook
from voicebook.runner import run_chapter

NOTEBOOK = notebook("00_voice_as_numbers")

pytestmark = pytest.mark.slow


def test_intro_chapter_metrics(chapter00):
    _, m = chapter00
    assert m["preset"] == "smoke"
    assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))
    assert m["stft_snr_db"] > 100                     # STFT -> iSTFT is exact up to float32
    assert m["gl_linear_lsd_db"] < 8                  # Griffin-Lim keeps the magnitude
    assert m["gl_mel_lsd_db"] < 12                    # mel pooling loses more
    assert m["gl_linear_lsd_db"] < m["gl_mel_lsd_db"]
    assert m["gl_linear_snr_db"] < 10                 # ...but not the phase: SNR is the wrong yardstick
    assert m["world_mcd_db"] < 4.0
    assert m["world_f0_rmse_hz"] < 30                 # measured 23.7 Hz (smoke, seed 0): a few octave slips
    assert m["world_vuv_error"] < 0.15
    assert m["n_languages"] >= 8 and m["n_speakers"] >= 20
    assert m["median_f0_female_hz"] > m["median_f0_male_hz"] * 1.3


def test_intro_chapter_is_deterministic(chapter00, tmp_path):
    """Same seed, same numbers on the CPU (the corpus comes from the cache the first run made)."""
    _, first = chapter00
    again = run_chapter(NOTEBOOK, tmp_path, preset="smoke", seed=0)
    for key, value in first.items():
        if key != "corpus_seconds":
            assert again[key] == value, key
