"""The chapters' smoke runs, shared by the tests of a chapter and the book test, and by the
pytest-xdist workers (see conftest.py); a generated corpus written in VCTK's layout.

The bounds that test_chapter0N.py put on a chapter's metrics were measured on the 2-core
CI-like machine (seed 0; the values and timings are in NOTES.md), then widened by a margin:
they catch a broken model, representation or corpus, not the last decimal. Each assertion
says what was measured.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicebook.files import locked
from voicebook.runner import load_metrics, run_chapter

ROOT = Path(__file__).resolve().parents[1]


def notebook(name: str) -> Path:
    """The chapter ``notebooks/<name>.md`` of this checkout."""
    return ROOT / "notebooks" / f"{name}.md"


def smoke_chapter(tmp_path_factory, name: str) -> tuple[Path, dict]:
    """``notebooks/<name>.md`` executed at preset=smoke, seed 0 -> ``(its folder, its metrics)``,
    once per test session: the first worker to ask runs it in a folder every worker sees, under a
    lock the others wait on; they then read its ``metrics.json``. A failed run leaves its error
    beside the folder, so the other workers fail at once instead of running it again. Tests must
    not write into the folder (copy it first)."""
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    out, failed = root / "chapters" / name, root / "chapters" / f"{name}.failed"
    with locked(out, f"the smoke run of {name}"):
        if failed.exists():
            pytest.fail(f"{name} at smoke failed in another test worker:\n{failed.read_text()}")
        if (out / "metrics.json").exists():
            return out, load_metrics(out)
        try:
            return out, run_chapter(notebook(name), out, preset="smoke", seed=0)
        except Exception as err:
            failed.write_text(f"{type(err).__name__}: {err}"[-5000:])
            raise


def vctk_copy_of_english_speech(root: Path) -> Path:
    """The generated smoke corpus' English speakers written in VCTK-Corpus's layout
    (wav48/pNNN/pNNN_MMM.wav at 48 kHz, txt/, speaker-info.txt), phoneme timings dropped."""
    from voicebook import audio
    from voicebook.data import load_corpus

    english = load_corpus(None, size="smoke", seed=0).select(language=["en-us", "en-gb"])
    ids = {spk: f"p{300 + i}" for i, spk in enumerate(sorted(english.speakers))}
    lines = ["ID  AGE  GENDER  ACCENTS  REGION"]
    for spk, pid in ids.items():
        accent = "American" if english.speakers[spk].language == "en-us" else "English"
        lines.append(f"{pid[1:]}  30  {english.speakers[spk].sex}    {accent}    Somewhere")
    (root).mkdir(parents=True)
    (root / "speaker-info.txt").write_text("\n".join(lines) + "\n")
    for spk, pid in ids.items():
        for k, u in enumerate(english.by_speaker(spk), start=1):
            name = f"{pid}_{k:03d}"
            audio.save(root / "wav48" / pid / f"{name}.wav", audio.resample(u.load(), u.sr, 48000), 48000)
            (root / "txt" / pid).mkdir(parents=True, exist_ok=True)
            (root / "txt" / pid / f"{name}.txt").write_text(u.text + "\n")
    return root
