"""Chapter 1 (notebooks/01_cycle_autovc.md) at preset=smoke: bounds on its metrics; on a VCTK copy,
a run and its resumed rerun.

The smoke run is the session fixture ``chapter01``; how its bounds were set: helpers_chapters.py.
"""

from __future__ import annotations

import math

import pytest

from helpers_chapters import notebook, vctk_copy_of_english_speech
from voicebook.runner import run_chapter

NOTEBOOK = notebook("01_cycle_autovc")

pytestmark = pytest.mark.slow


def test_cycle_autovc_chapter_metrics(chapter01):
    """Bounds around the smoke run measured on 2 CPU cores (seed 0; values in NOTES.md)."""
    _, m = chapter01
    assert m["preset"] == "smoke" and m["seeds"] == [0]
    j = m["judges"]
    assert j["speaker_accuracy"] > 0.85               # measured 0.97 (chance 0.045)
    assert j["phoneme_error_rate"] < 0.35             # measured 0.18
    assert m["encoder_cos_same"] > m["encoder_cos_other"] + 0.2   # GE2E separates speakers (measured 0.98 vs 0.33)
    systems = m["systems"]
    assert len(systems) == 8                          # 4 AutoVC bottlenecks, 2 CycleAutoVC, - style, fine-tuned
    for name, scores in systems.items():
        for key, (mean, std, n) in scores.items():
            assert math.isfinite(mean) and std is None and n == 1, (name, key)
        assert 0 <= scores["speaker_accuracy"][0] <= 1 and 0 < scores["mcd_dtw_db"][0] < 25
    runs = {f"{r['system']} n{r['neck'][0]}f{r['neck'][1]}": r for r in m["runs"]}   # one seed: one run each
    assert len(m["runs"]) == len(systems) and set(runs) == set(systems) and {r["seed"] for r in m["runs"]} == {0}
    assert all(runs[name][key] == pytest.approx(scores[key][0]) for name, scores in systems.items() for key in scores)
    narrow, wide = systems["AutoVC n2f32"], systems["AutoVC n64f2"]
    assert wide["reconstruction_mse"][0] < 0.85 * narrow["reconstruction_mse"][0]   # measured 0.60 vs 1.17
    assert narrow["speaker_leakage"][0] < 0.3 < wide["speaker_leakage"][0]          # measured 0.12 vs 0.43
    assert m["claim_4_2"] == {"reconstruction_improves_with_width": True, "leakage_grows_with_width": True}
    assert set(m["verdicts"]) == {"cycle_beats_autovc_wide_speaker", "cycle_beats_autovc_wide_mcd",
                                  "style_loss_helps_speaker", "scratch_beats_finetuned_mcd"}
    assert m["convert_4s_seconds"] < 1.0              # measured 0.07 s on the CPU


def test_cycle_autovc_chapter_on_a_vctk_copy_and_its_rerun_resumes(tmp_path):
    """data_dir pointing at a VCTK copy: the chapter trains and converts its speakers (the
    content judge, which needs phoneme timings VCTK lacks, comes from the generated corpus).
    A rerun in the same folder resumes every model from its finished checkpoint (no training)
    and gets exactly the first run's scores. Two bottlenecks and fewer steps than smoke
    (``overrides``): the smoke run's numbers are checked on the generated corpus above."""
    root = vctk_copy_of_english_speech(tmp_path / "VCTK-Corpus")
    overrides = {"necks": [[2, 32], [32, 8]], "cycle_necks": [[32, 8]], "autovc_steps": 60, "cycle_steps": [30, 20],
                 "n_sentences": 1}
    run = dict(preset="smoke", seed=0, data_dir=root, parameters={"overrides": overrides})
    m = run_chapter(NOTEBOOK, tmp_path / "out", **run)
    assert m["corpus"] == "vctk" and m["n_speakers"] == 16
    assert m["judges"]["speaker_accuracy"] > 0.8                    # measured 0.95 (chance 1/16)
    assert set(m["systems"]) == {"AutoVC n2f32", "AutoVC n32f8", "CycleAutoVC n32f8", "CycleAutoVC − style n32f8",
                                 "CycleAutoVC fine-tuned n32f8"}
    assert all(math.isfinite(v[0]) for s in m["systems"].values() for v in s.values())
    again = run_chapter(NOTEBOOK, tmp_path / "out", **run)
    assert again["systems"] == m["systems"] and again["judges"] == m["judges"]
    assert again["chapter_seconds"] < m["chapter_seconds"]
