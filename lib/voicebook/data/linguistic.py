"""Frame-level linguistic features from phoneme timings (chapter 3; Li & Zen, sections 2-3).

The multilingual model reads, every 5 ms, a vector built from the utterance's phonemes with
oracle durations (the paper's choice): which phone is spoken, as a one-hot over the *union*
of all languages' inventories (a language's missing phones stay zero, section 2), its stress,
where the frame sits inside the phone (3 coarse-coded features, section 3) and the phone's
duration, where the phone's syllable sits in its phrase and whether that syllable is stressed,
and where the phone sits in its phrase and the phrase in the utterance (counted forward and
backward). Phrases are the stretches between pauses. Syllables are counted by their vowels
(:func:`is_vowel`), a consonant joining the syllable of the vowel after it (onsets first) and a
phrase's final consonants the last syllable. espeak's phoneme events mark no word boundaries
in most languages, so word positions are not derived.

Input: an :class:`~voicebook.data.speech.Utterance` (or its ``phonemes``: ``(phone, start_s,
end_s)`` tuples in espeak's symbols). Output: ``(frames, len(inventory) + len(EXTRA))`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .phonemes import SILENCE, _timed, normalise

__all__ = ["COARSE_CENTRES", "EXTRA", "VOWEL_STARTS", "Segment", "is_vowel", "segments", "feature_names",
           "frame_features"]

#: Relative positions (0 = start, 1 = end of the phone) of the coarse-coding triangles.
COARSE_CENTRES = (0.0, 0.5, 1.0)
#: The features after the phone one-hot, in order.
EXTRA = ("stress_primary", "stress_secondary", "pos_in_phone_start", "pos_in_phone_mid", "pos_in_phone_end",
         "phone_seconds", "is_vowel", "syllable_stressed", "syllable_in_phrase_fwd", "syllable_in_phrase_bwd",
         "phrase_syllables", "phone_in_phrase_fwd", "phone_in_phrase_bwd", "phrase_phones",
         "phrase_in_utt_fwd", "phrase_in_utt_bwd", "utt_position")
#: First characters of espeak's vowel mnemonics across the corpus' languages ("@" schwa, "3"
#: r-coloured schwa, "0" English "o" of "lot", "&" Portuguese "a", "V", "W", "Y" ...).
VOWEL_STARTS = "aeiouyAEIOUVWY@03&"


def is_vowel(phone: str) -> bool:
    """Is a normalised espeak phone a vowel (a syllable nucleus)?"""
    return phone != SILENCE and phone[:1] in VOWEL_STARTS


@dataclass(frozen=True)
class Segment:
    """One timed phone: ``phone`` normalised, ``stress`` 1 primary / 2 secondary / 0 none,
    ``phrase`` the index of its phrase (-1 for pauses), ``index`` its position in the phrase,
    ``syllable`` the index of its syllable in the phrase (-1 for pauses)."""

    phone: str
    start: float
    end: float
    stress: int
    phrase: int
    index: int
    syllable: int = -1


def _stress(symbol: str) -> int:
    return 1 if symbol.startswith("'") else 2 if symbol.startswith(",") else 0


def segments(utt, *, keep_length: bool = True) -> list[Segment]:
    """The utterance's phones with positive duration, stress and phrase positions; a pause ends
    a phrase. Raises ``ValueError`` if there are no timings (real corpora have none)."""
    timed = [(p, a, b) for p, a, b in _timed(utt) if b > a]
    if not timed:
        raise ValueError("linguistic.segments: the utterance has no phoneme timings")
    out, phrase, index, in_phrase = [], 0, 0, False
    for p, a, b in timed:
        name = normalise(p, keep_length=keep_length)
        if name == SILENCE:
            if in_phrase:
                phrase, index, in_phrase = phrase + 1, 0, False
            out.append(Segment(name, float(a), float(b), 0, -1, -1))
            continue
        out.append(Segment(name, float(a), float(b), _stress(p.strip()), phrase, index))
        index, in_phrase = index + 1, True
    return _with_syllables(out)


def _with_syllables(segs: list[Segment]) -> list[Segment]:
    """Number each phrase's syllables by their vowels: a consonant takes the syllable of the
    next vowel in its phrase, or the phrase's last syllable if no vowel follows."""
    out = list(segs)
    for k in {s.phrase for s in segs if s.phrase >= 0}:
        idx = [i for i, s in enumerate(segs) if s.phrase == k]
        nuclei = [i for i in idx if is_vowel(segs[i].phone)]
        for i in idx:
            after = sum(1 for v in nuclei if v < i)              # vowels strictly before phone i
            syl = after if is_vowel(segs[i].phone) or after < len(nuclei) else max(len(nuclei) - 1, 0)
            out[i] = Segment(**{**segs[i].__dict__, "syllable": syl})
    return out


def feature_names(inventory: Sequence[str]) -> list[str]:
    """Column names of :func:`frame_features`: ``phone=<p>`` for each phone, then :data:`EXTRA`."""
    return [f"phone={p}" for p in inventory] + list(EXTRA)


def frame_features(utt, inventory: Sequence[str], hop_s: float, n_frames: int, *,
                   keep_length: bool = True) -> np.ndarray:
    """``(n_frames, len(inventory) + len(EXTRA))`` features; frame ``t`` is the instant ``t * hop_s`` s.

    A frame outside every phone (before, after, or in a gap) is silence with zero positions. A
    phone missing from ``inventory`` raises ``ValueError`` naming it.
    """
    segs = segments(utt, keep_length=keep_length)
    col = {p: i for i, p in enumerate(inventory)}
    missing = sorted({s.phone for s in segs} - set(col))
    if missing:
        raise ValueError(f"frame_features: phones {missing} are not in the inventory of {len(inventory)}")
    if hop_s <= 0 or n_frames < 0:
        raise ValueError(f"frame_features: need hop_s > 0 and n_frames >= 0, got {hop_s}, {n_frames}")
    n_phr = 1 + max(s.phrase for s in segs)
    length = {k: sum(1 for s in segs if s.phrase == k) for k in range(n_phr)}
    n_syl = {k: 1 + max(s.syllable for s in segs if s.phrase == k) for k in range(n_phr)}
    stressed = {(s.phrase, s.syllable) for s in segs if s.phrase >= 0 and is_vowel(s.phone) and s.stress}
    starts = np.array([s.start for s in segs])
    times = np.arange(int(n_frames)) * float(hop_s)
    idx = np.searchsorted(starts, times, side="right") - 1
    x = np.zeros((int(n_frames), len(inventory) + len(EXTRA)), dtype=np.float32)
    x[:, -1] = times / max(segs[-1].end, 1e-9)
    base = len(inventory)
    for f, i in enumerate(idx):
        if i < 0 or times[f] >= segs[i].end:
            x[f, col[SILENCE]] = 1.0
            continue
        s = segs[i]
        x[f, col[s.phone]] = 1.0
        if s.phrase < 0:
            continue
        rel = (times[f] - s.start) / (s.end - s.start)
        x[f, base:base + 2] = (s.stress == 1, s.stress == 2)
        x[f, base + 2:base + 5] = [max(0.0, 1 - abs(rel - c) / 0.5) for c in COARSE_CENTRES]
        x[f, base + 5:base + 7] = (s.end - s.start, is_vowel(s.phone))
        x[f, base + 7:base + 10] = ((s.phrase, s.syllable) in stressed, s.syllable, n_syl[s.phrase] - 1 - s.syllable)
        x[f, base + 10] = n_syl[s.phrase]
        x[f, base + 11:base + 14] = (s.index, length[s.phrase] - 1 - s.index, length[s.phrase])
        x[f, base + 14:base + 16] = (s.phrase, n_phr - 1 - s.phrase)
    return x
