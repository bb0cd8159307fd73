"""Chapter 5 ("You said that?", notebooks/05_you_said_that.md) executed by papermill at
preset=smoke, with bounds on its metrics, and its refusal of a data_dir that is no video corpus.

Bounds were measured on the 2-core CI-like machine (seed 0, OMP_NUM_THREADS=1, CPU, another
chapter running at the same time: 2 min 34 s wall, chapter_seconds 146; the numbers are the
same run to run on this CPU) and then widened by a margin; each assertion says what was
measured. They catch a broken pipeline, not the last decimal.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from papermill.exceptions import PapermillExecutionError

from helpers_chapters import notebook
from voicebook.data.videos import read_video
from voicebook.runner import run_chapter

CHAPTER = notebook("05_you_said_that")
pytestmark = pytest.mark.slow

VARIANTS = ("no skips, 1 still", "skips, 1 still", "skips, 5 stills")


# the chapter05 fixture (the smoke run) lives in conftest.py: the book test uses it too


def test_data_registration_and_pretraining(chapter05):
    _, m = chapter05
    assert m["preset"] == "smoke" and m["data"]["corpus"] == "generated"
    assert m["data"]["train"]["people"] == 12 and m["data"]["test"]["people"] == 4      # smoke face set
    assert m["data"]["test"]["voices"] == 4                                             # the held-out voices
    r = m["registration"]
    assert r["after"] < 0.2 * r["eyes_nose_motion_px_before"]       # measured 0.04 px vs 0.65 px
    # points the fit never saw (contour at eye level, brows): measured 0.12 px vs 0.70 px; blinks are the rest
    assert r["held_out_motion_px_after"] < 0.3 * r["held_out_motion_px_before"]
    p = m["identity_pretraining"]
    assert p["loss_last"] < 0.2 * p["loss_first"]                   # measured 0.067 vs 1.48
    assert p["train_accuracy"] > 0.9                                # measured 1.00 (12 people)
    assert p["test_retrieval"] > 2 * p["test_retrieval_chance"]     # measured 1.00 vs chance 0.14
    assert 0 < p["test_retrieval_chance"] < 0.5
    pre, fresh = p["retrieval"]["pre-trained recogniser"], p["retrieval"]["untrained encoder"]
    assert pre["top-1 (face only)"] > 2 * p["test_retrieval_chance"]   # measured 0.75: the face alone tells people apart
    assert pre["AUC (face only)"] > 0.7 and fresh["AUC (face only)"] > 0.75   # measured 0.91 and 1.00 (4 people)
    assert pre["AUC (whole frame)"] >= pre["AUC (face only)"]        # measured 1.00 vs 0.91: background helps it


def test_losses_fell(chapter05):
    _, m = chapter05
    t = m["training"]
    assert set(t) == set(VARIANTS)
    for name, h in t.items():
        assert h["loss_last"] < 0.85 * h["loss_first"], name       # measured ratios 0.70, 0.48, 0.50
    for name in VARIANTS[1:]:
        assert t[name]["loss_last"] < 0.7 * t[name]["loss_first"], name
    d = m["deblur"]
    assert d["loss_last"] < 0.85 * d["loss_first"]                 # measured 0.016 vs 0.024
    assert d["psnr_restored_db"] > d["psnr_blurred_db"] + 1.0      # measured 32.6 vs 30.0 dB
    assert d["sharpness_restored"] > 2 * d["sharpness_blurred"]    # measured 5.2x


def test_every_table_cell_is_finite_and_the_measured_directions_hold(chapter05):
    _, m = chapter05
    table = m["table"]
    rows = [f"{n}{suffix}" for n in VARIANTS for suffix in ("", " + deblurring")]
    assert set(table) == set(rows) | {"the still, held", "true frames"}
    for row, cells in table.items():
        for key, value in cells.items():
            assert value is not None and math.isfinite(value), (row, key)
    for row in rows:
        c = table[row]
        assert set(c) >= {"l1_face", "psnr_face", "ssim_face", "l1_mouth", "psnr_mouth", "ssim_mouth", "sharpness",
                          "lip_sync", "offset_recovered", "abs_offset"}
        assert 0 < c["l1_face"] < 0.5 and 5 < c["psnr_face"] < 40 and -1 <= c["lip_sync"] <= 1
        assert 0 <= c["offset_recovered"] <= 1 and 0 <= c["abs_offset"] <= 10
    no_skip = table["no skips, 1 still"]
    for name in VARIANTS[1:]:                                      # skips carry the identity (4.1)
        assert table[name]["l1_face"] < 0.75 * no_skip["l1_face"], name        # measured 0.078, 0.074 vs 0.145
        assert table[name]["psnr_face"] > no_skip["psnr_face"] + 2.0, name     # measured 19.7, 20.1 vs 15.1 dB
    for name in VARIANTS:                                          # deblurring sharpens (3.3)
        assert table[f"{name} + deblurring"]["sharpness"] > 1.05 * table[name]["sharpness"], name  # measured 1.16-1.47x
    true = table["true frames"]
    assert true["lip_sync"] > 0.8 and true["offset_recovered"] >= 0.75         # measured 0.92 and 1.0
    assert set(m["verdicts"]) == set(m["claims"]) and len(m["verdicts"]) == 5
    assert set(m["verdicts"].values()) <= {"holds", "reversed", "mixed or not settled"}
    assert m["verdicts"]["deblurring sharpens (3.3)"] == "holds"


def test_redub_and_speed(chapter05):
    _, m = chapter05
    r = m["redub"]
    assert r["frames"] > 20 and r["target"] != r["audio_from"]
    # the pipeline carries a true moving mouth through (measured r 0.81 new, 0.03 old, amplitude 0.87);
    # a held frame hardly moves (0.10) but follows the target's own mouth (r -0.80): the blend's leak
    true, held = r["controls"]["control: the new sentence's true frames"], r["controls"]["control: one generated frame, held"]
    assert true["lip_sync_with_new_audio"] > 0.6 and abs(true["lip_sync_with_old_audio"]) < 0.3 and true["amplitude"] > 0.5
    assert held["amplitude"] < 0.3 and held["lip_sync_with_old_audio"] < -0.4
    # at smoke the generated mouth barely moves (amplitude 0.105 vs the held frame's 0.101) and its
    # correlations are the held frame's (new -0.06 vs -0.03, old -0.80 vs -0.80): they are the blend's
    # leak, not lip sync, so no claim of sync is tested here: only that both were measured
    assert all(-1 <= r[k] <= 1 for k in ("lip_sync_with_new_audio", "lip_sync_with_old_audio"))
    assert 0 < r["amplitude"] < 1
    speed = m["speed"]["cpu"]
    # width 0.125 on this CPU: measured 972 and 121 frames/s (5th session, busier: 475 and 46)
    assert speed["fps"] > 100 and speed["fps_with_deblurring"] > 15
    assert speed["fps_with_deblurring"] < speed["fps"]
    assert m["chapter_seconds"] > 0


def test_videos_with_sound_and_figures_are_in_the_executed_chapter(chapter05, tmp_path):
    out, _ = chapter05
    nb = json.loads((out / "05_you_said_that.ipynb").read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", [])) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    videos = re.findall(r"data:video/mp4;base64,([A-Za-z0-9+/=]+)", html)
    assert len(videos) >= 4                            # a training clip, two generated test clips, the re-dub
    path = tmp_path / "redub.mp4"
    path.write_bytes(base64.b64decode(videos[-1]))
    video = read_video(path)
    assert video.frames.shape[1:] == (112, 224, 3) and len(video.frames) > 20   # original | re-dubbed
    assert video.audio.size > 0.5 * video.sr                                      # it has its sound
    assert (out / "fig11.png").stat().st_size > 10_000 and (out / "fig9_deblurring.png").exists()


def test_a_data_dir_that_is_no_video_corpus_is_refused(tmp_path):
    bogus = tmp_path / "not_a_corpus"
    bogus.mkdir()
    (bogus / "notes.txt").write_text("no videos here")
    with pytest.raises(PapermillExecutionError, match="neither an LRW nor a VoxCeleb2 video folder"):
        run_chapter(CHAPTER, tmp_path / "out", preset="smoke", data_dir=bogus)


def _voxceleb2_copy_of_generated_faces(root: Path, n_train: int = 4, n_test: int = 2, size: int = 224) -> Path:
    """A VoxCeleb2-layout folder (``{dev,test}/mp4/idNNNNN/<11-char video>/00001.mp4``) of the
    smoke face set's clips, upscaled to ``size`` px (the Haar cascades, the fallback, miss 112-px faces) and
    encoded as H.264 + AAC with their speech: real files through the real-video path."""
    import cv2

    from voicebook import show
    from voicebook.data.faces import load_faces

    faces = load_faces(size="smoke", seed=0)
    for split, source, n, first in (("dev", "train", n_train, 10000), ("test", "test", n_test, 50000)):
        for k, person in enumerate(sorted({c.identity for c in faces.split(source)})[:n]):
            for j, clip in enumerate(faces.by_identity(person)):
                d = clip.load()
                frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in d.frames])
                path = root / split / "mp4" / f"id{first + k:05d}" / f"vid{j:08d}" / "00001.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(show.video_bytes(frames, d.fps, d.audio, d.sr))
    return root


def test_the_chapter_runs_on_a_voxceleb2_folder_of_real_video_files(tmp_path):
    """data_dir = a VoxCeleb2-layout folder of mp4 files: decoding, face tracking, registration,
    pre-training on its speakers and every later cell, with fewer steps than smoke. On the 2-core
    machine this test takes 42 s (4 + 2 people); the numbers in the comments are from a first run
    with 6 + 2 people (chapter 42 s, data 20 s, nothing skipped)."""
    root = _voxceleb2_copy_of_generated_faces(tmp_path / "vox")
    broken = root / "dev" / "mp4" / "id10000" / "vidbroken01" / "00001.mp4"   # one file of the corpus is damaged
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    overrides = {"steps": 40, "pretrain_steps": 15, "deblur_steps": 20, "speed_seconds": 1.0}
    m = run_chapter(CHAPTER, tmp_path / "out", preset="smoke", seed=0, data_dir=root,
                    parameters={"overrides": overrides})
    d = m["data"]
    assert d["corpus"] == "voxceleb2" and d["skipped"] == 1                  # the damaged file, and only it
    assert d["train"]["people"] == 4 and d["train"]["clips"] == 8 and d["test"]["people"] == 2
    assert d["train"]["frames"] > 8 * 60                          # every decoded frame kept (~75 per clip)
    assert m["registration"]["after"] < 0.2 * m["registration"]["eyes_nose_motion_px_before"]   # 0.0 vs 1.3 px
    assert m["identity_pretraining"]["loss_last"] < m["identity_pretraining"]["loss_first"]     # 0.25 vs 0.85
    for name in VARIANTS:
        assert m["training"][name]["loss_last"] < 0.9 * m["training"][name]["loss_first"], name  # ratios ~0.72-0.74
    for row, cells in m["table"].items():
        assert all(v is not None and math.isfinite(v) for v in cells.values()), row
    assert m["redub"]["frames"] > 20 and m["redub"]["target"].startswith("id5")    # a held-out (test) speaker
