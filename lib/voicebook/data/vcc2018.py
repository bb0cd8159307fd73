"""Reader of a local copy of the Voice Conversion Challenge 2018 data, as a
:class:`~voicebook.data.speech.SpeechCorpus`.

Accepted layout (the published archives, unpacked side by side)::

    vcc2018_training/VCC2SF1/10001.wav ...    -> split "train"
    vcc2018_evaluation/VCC2SF1/30001.wav ...  -> split "test"
    vcc2018_reference/VCC2TF1/30001.wav ...   -> split "test" (the targets' evaluation speech)

Speaker folders are ``VCC2`` + ``S`` (source) or ``T`` (target) + ``F`` (female) or ``M``
(male) + a number; sex and role come from the name. A file's number is its sentence: the same
number means the same sentence for every speaker (parallel data, e.g. 10001-10081 for the HUB
task's sources and targets). Audio stays at its own rate (22050 Hz). VCC2018 ships no
transcripts: ``text`` is read from an optional ``NNNNN.txt`` beside the wav, else ``""``.
Phoneme timings are empty. Language: ``en-us``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..checks import CorpusError
from .speech import Speaker, SpeechCorpus, file_utterance

__all__ = ["LAYOUT", "find_root", "read_vcc2018"]

FOLDERS = {"vcc2018_training": "train", "vcc2018_evaluation": "test", "vcc2018_reference": "test"}
LAYOUT = "vcc2018_training/VCC2SF1/10001.wav (and vcc2018_evaluation/, vcc2018_reference/)"
_SPEAKER = re.compile(r"^VCC2(?P<role>[ST])(?P<sex>[FM])\d+$")


def find_root(path: str | Path) -> Path | None:
    """The folder holding the ``vcc2018_*`` folders: ``path`` itself, or its parent when
    ``path`` is one of them; None if neither."""
    path = Path(path)
    for candidate in (path, path.parent):
        if any((candidate / name).is_dir() for name in FOLDERS):
            return candidate
    return None


def _speaker(name: str) -> Speaker | None:
    m = _SPEAKER.match(name)
    if m is None:
        return None
    return Speaker(name, m["sex"], "en-us", role="source" if m["role"] == "S" else "target")


def read_vcc2018(root: str | Path) -> SpeechCorpus:
    """Every utterance of a VCC2018 copy at ``root`` (see the module doc for the layout)."""
    root = Path(root)
    if find_root(root) != root:
        raise CorpusError(f"{root}: not a VCC2018 copy (expected {LAYOUT})")
    items, speakers = [], {}
    for folder, split in FOLDERS.items():
        for spk_dir in sorted(p for p in (root / folder).glob("VCC2*") if p.is_dir()):
            if (spk := _speaker(spk_dir.name)) is None:
                continue
            speakers[spk.id] = spk
            for wav in sorted(spk_dir.glob("*.wav")):
                txt = wav.with_suffix(".txt")
                items.append(file_utterance(
                    wav, id=f"{spk.id}_{wav.stem}", speaker=spk.id, language=spk.language,
                    text=txt.read_text(errors="replace").strip() if txt.is_file() else "",
                    sentence_id=f"vcc2018-{wav.stem}", sex=spk.sex, split=split))
    if not items:
        raise CorpusError(f"{root}: no VCC2SF1-style speaker folders with wav files (expected {LAYOUT})")
    used = {u.speaker for u in items}
    return SpeechCorpus(items, {k: s for k, s in speakers.items() if k in used}, root, "vcc2018")
