"""Chapter 4 (notebooks/04_singing_voice_separation.md) at preset=smoke: bounds on its metrics, a
rerun that resumes to the same numbers, and the error for a folder that is no music corpus.

The smoke run is the session fixture ``chapter04``; how its bounds were set: helpers_chapters.py.
"""

from __future__ import annotations

import shutil

import pytest

from helpers_chapters import notebook
from voicebook.runner import run_chapter

NOTEBOOK = notebook("04_singing_voice_separation")
pytestmark = pytest.mark.slow


def test_separation_chapter_metrics(chapter04):
    """Bounds around the smoke run measured on 2 CPU cores (seed 0; values in NOTES.md)."""
    _, m = chapter04
    assert {k: v["songs"] for k, v in m["songs"].items()} == {"labelled": 6, "karaoke": 12, "test": 6}
    assert all(v["from"] == "generated:smoke" for v in m["songs"].values())
    for name, loss in m["train_loss"].items():          # every teacher learned: measured ratios 0.53-0.80
        assert loss["last"] < 0.9 * loss["first"], name
    assert len(m["table1"]) == 5 and len(m["table2"]) == 3
    for row in [*m["table1"].values(), *m["table2"].values()]:
        assert -10 < row["SDR(V)"] < 10 and -10 < row["SDR(A)"] < 10, row     # measured -4.1 .. 3.5 dB
    # the teacher: the best row of the smallest student's size (S at smoke), so students are not smaller
    assert m["teacher"] in m["table1"] and "karaoke" not in m["teacher"] and m["teacher"].split()[1] == "S"
    assert set(m["claims_table1"]) == {"longer input helps", "random mixing helps", "karaoke as labels hurts",
                                       "largest model beats smallest"}
    assert set(m["claims_table2"]) >= {"student beats teacher", "filtering helps", "top 25% is best"}
    poor = m["poor_frames"]
    assert set(poor) == {"karaoke, raw tracks", "karaoke, self-labelled", "clean (test songs)"}
    assert all(0 <= v["median"] <= 1 for v in poor.values())
    raw = poor["karaoke, raw tracks"]["mean"]                                  # Fig. 2's order; measured
    assert raw > poor["karaoke, self-labelled"]["mean"] + 0.1                  # 0.31 raw, 0.03 self-labelled,
    assert raw > poor["clean (test songs)"]["mean"] + 0.1                      # 0.00 clean test songs
    assert m["table2"]["student L top 25%"]["songs kept"] == 3                  # a quarter of 12
    assert m["speed"]["cpu"]["real-time factor"] > 1                          # measured 10.6x (smoke L student)


def test_separation_chapter_resumes_to_the_same_numbers(chapter04, tmp_path):
    """A rerun in the same folder loads every checkpoint (teachers, detectors, students) and
    gets exactly the first run's numbers; the pseudo-labels and test scores come from the
    caches keyed by each loaded model's weights, so a checkpoint that loaded wrong would be
    separated and scored afresh (and differ). It reruns in a copy of the folder (other tests
    read the first run's)."""
    first_out, first = chapter04
    out = tmp_path / "copy"
    shutil.copytree(first_out, out)
    again = run_chapter(NOTEBOOK, out, preset="smoke", seed=0)
    assert again["table1"] == first["table1"] and again["table2"] == first["table2"]
    assert again["poor_frames"] == first["poor_frames"]


def test_separation_chapter_names_a_folder_that_is_no_music_corpus(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    (tmp_path / "not-musdb" / "some folder").mkdir(parents=True)
    with pytest.raises(PapermillExecutionError, match="MUSDB18"):
        run_chapter(NOTEBOOK, tmp_path / "out", preset="smoke", seed=0, data_dir=tmp_path / "not-musdb")
