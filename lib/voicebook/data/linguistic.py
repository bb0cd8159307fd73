"""Frame-level linguistic features from phoneme timings (chapter 3; Li & Zen, sections 2-3).

The multilingual model reads, every 5 ms, a vector built from the utterance's phonemes with
oracle durations (the paper's choice): which phone is spoken, as a one-hot over the *union*
of all languages' inventories (a language's missing phones stay zero, section 2), its stress,
where the frame sits inside the phone (3 coarse-coded features, section 3) and the phone's
duration, and where the phone sits in its phrase and the phrase in the utterance (counted
forward and backward). Phrases are the stretches between pauses; espeak marks no word
boundaries in English, so word and syllable positions are not derived here.

Input: an :class:`~voicebook.data.speech.Utterance` (or its ``phonemes``: ``(phone, start_s,
end_s)`` tuples in espeak's symbols). Output: ``(frames, len(inventory) + len(EXTRA))`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .phonemes import SILENCE, _timed, normalise

__all__ = ["COARSE_CENTRES", "EXTRA", "Segment", "segments", "feature_names", "frame_features"]

#: Relative positions (0 = start, 1 = end of the phone) of the coarse-coding triangles.
COARSE_CENTRES = (0.0, 0.5, 1.0)
#: The features after the phone one-hot, in order.
EXTRA = ("stress_primary", "stress_secondary", "pos_in_phone_start", "pos_in_phone_mid", "pos_in_phone_end",
         "phone_seconds", "phone_in_phrase_fwd", "phone_in_phrase_bwd", "phrase_phones",
         "phrase_in_utt_fwd", "phrase_in_utt_bwd", "utt_position")


@dataclass(frozen=True)
class Segment:
    """One timed phone: ``phone`` normalised, ``stress`` 1 primary / 2 secondary / 0 none,
    ``phrase`` the index of its phrase (-1 for pauses), ``index`` its position in the phrase."""

    phone: str
    start: float
    end: float
    stress: int
    phrase: int
    index: int


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
    return out


def feature_names(inventory: Sequence[str]) -> list[str]:
    """Column names of :func:`frame_features`: ``phone=<p>`` for each phone, then :data:`EXTRA`."""
    return [f"phone={p}" for p in inventory] + list(EXTRA)


def frame_features(utt, inventory: Sequence[str], hop_s: float, n_frames: int, *,
                   keep_length: bool = True) -> np.ndarray:
    """``(n_frames, len(inventory) + 12)`` features; frame ``t`` is the instant ``t * hop_s`` s.

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
        x[f, base + 5] = s.end - s.start
        x[f, base + 6:base + 9] = (s.index, length[s.phrase] - 1 - s.index, length[s.phrase])
        x[f, base + 9:base + 11] = (s.phrase, n_phr - 1 - s.phrase)
    return x
