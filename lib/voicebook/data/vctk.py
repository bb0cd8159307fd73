"""Reader of a local copy of the CSTR VCTK corpus, as a :class:`~voicebook.data.speech.SpeechCorpus`.

Accepted layouts (the published ones):

- VCTK-Corpus (0.80): ``wav48/p225/p225_001.wav``, ``txt/p225/p225_001.txt``,
  ``speaker-info.txt`` (columns ``ID AGE GENDER ACCENTS REGION``);
- VCTK-Corpus-0.92: ``wav48_silence_trimmed/p225/p225_001_mic1.flac`` (and ``_mic2``), same
  ``txt/`` and ``speaker-info.txt``.

Audio stays at its own rate (48 kHz); resample with :func:`voicebook.audio.load`
(``resample_to_sr=True``). Phoneme timings are empty: VCTK has no alignments. ``sentence_id``
is derived from the normalised text, so the passages every speaker read (utterances 001-0xx)
are parallel; those sentences, spoken by at least half the speakers, form the ``test`` split,
one utterance in twenty of the rest (by a hash of its id) ``dev``, the others ``train``.
Utterances without a transcript keep ``text=""`` and a sentence id of their own. Language is
``en-us`` for American and Canadian speakers, ``en-gb`` for the others.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

from ..checks import CorpusError
from .speech import Speaker, SpeechCorpus, file_utterance

__all__ = ["LAYOUT", "find_root", "read_vctk"]

LAYOUT = ("speaker-info.txt + wav48/pNNN/pNNN_MMM.wav (or wav48_silence_trimmed/pNNN/pNNN_MMM_mic1.flac) "
          "+ txt/pNNN/pNNN_MMM.txt")
_AUDIO_DIRS = {"wav48": ".wav", "wav48_silence_trimmed": ".flac"}  # folder -> file suffix
_FILE = re.compile(r"^(?P<utt>(?P<spk>[a-z]*\d+)_(?P<num>\d+))(?:_(?P<mic>mic\d))?$")
_AMERICAN = {"american", "canadian"}


def find_root(path: str | Path) -> Path | None:
    """``path`` or its ``VCTK-Corpus*`` sub-folder if it looks like VCTK, else None."""
    path = Path(path)
    for candidate in [path, *sorted(path.glob("VCTK-Corpus*"))]:
        if (candidate / "speaker-info.txt").is_file() and any((candidate / d).is_dir() for d in _AUDIO_DIRS):
            return candidate
    return None


def _speaker_info(root: Path) -> dict[str, Speaker]:
    """Parse ``speaker-info.txt``: ``ID AGE GENDER ACCENTS REGION...`` (IDs with or without 'p')."""
    speakers = {}
    for line in (root / "speaker-info.txt").read_text(errors="replace").splitlines():
        cols = line.split()
        if len(cols) < 3 or cols[0].upper() == "ID" or cols[2].upper() not in ("F", "M"):
            continue
        spk = cols[0] if cols[0][0].isalpha() else f"p{cols[0]}"
        accent = cols[3] if len(cols) > 3 else ""
        language = "en-us" if accent.lower() in _AMERICAN else "en-gb"
        speakers[spk] = Speaker(spk, cols[2].upper(), language, role="vctk", accent=" ".join(cols[3:]))
    if not speakers:
        raise CorpusError(f"{root / 'speaker-info.txt'}: no speaker lines (expected 'ID AGE GENDER ACCENTS REGION', "
                          f"e.g. 'p225  23  F    English    Southern  England')")
    return speakers


def _audio_files(root: Path, mic: str) -> list[Path]:
    for folder, suffix in _AUDIO_DIRS.items():
        files = sorted((root / folder).glob("*/*" + suffix))
        files = [f for f in files if (m := _FILE.match(f.stem)) and m["mic"] in (None, mic)]
        if files:
            return files
    raise CorpusError(f"{root}: no audio files in wav48/ or wav48_silence_trimmed/ (expected {LAYOUT})")


def _sentence_key(text: str, utt: str) -> str:
    norm = " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
    return "vctk-" + (hashlib.sha1(norm.encode()).hexdigest()[:10] if norm else utt)


def _split(utt: str, sentence_speakers: int, n_speakers: int) -> str:
    if sentence_speakers >= max(2, (n_speakers + 1) // 2):
        return "test"
    return "dev" if int(hashlib.sha1(utt.encode()).hexdigest(), 16) % 20 == 0 else "train"


def read_vctk(root: str | Path, *, mic: str = "mic1") -> SpeechCorpus:
    """Every utterance of a VCTK copy at ``root`` (see the module doc for the layout);
    ``mic`` picks the microphone of VCTK 0.92's flac files."""
    root = Path(root)
    if find_root(root) != root:
        raise CorpusError(f"{root}: not a VCTK copy (expected {LAYOUT})")
    speakers = _speaker_info(root)
    rows = []
    for path in _audio_files(root, mic):
        m = _FILE.match(path.stem)
        if m["spk"] not in speakers:
            continue  # audio of a speaker that speaker-info.txt does not list: sex unknown, skip
        txt = root / "txt" / m["spk"] / f"{m['utt']}.txt"
        text = txt.read_text(errors="replace").strip() if txt.is_file() else ""
        rows.append((path, m["utt"], m["spk"], text, _sentence_key(text, m["utt"])))
    if not rows:
        raise CorpusError(f"{root}: no audio of the speakers in speaker-info.txt (expected {LAYOUT})")
    said_by = defaultdict(set)
    for _, _, spk, _, sid in rows:
        said_by[sid].add(spk)
    n_speakers = len({r[2] for r in rows})
    items = [file_utterance(path, id=utt, speaker=spk, language=speakers[spk].language, text=text,
                            sentence_id=sid, sex=speakers[spk].sex, split=_split(utt, len(said_by[sid]), n_speakers))
             for path, utt, spk, text, sid in rows]
    used = {u.speaker for u in items}
    return SpeechCorpus(items, {k: s for k, s in speakers.items() if k in used}, root, "vctk")
