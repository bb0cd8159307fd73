"""Frame-level linguistic features from phoneme timings (chapter 3; Li & Zen, sections 2-3).

The multilingual model reads, every 5 ms, a vector built from the utterance's phonemes with
oracle durations (the paper's choice): which phone is spoken, as a one-hot over the *union*
of all languages' inventories (a language's missing phones stay zero, section 2), its stress,
where the frame sits inside the phone (3 coarse-coded features, section 3) and the phone's
duration, then positions and counts at four levels: the phone in its word, the syllable in its
word and in its phrase (and whether it is stressed), the word in its phrase, the phone in its
phrase and the phrase in the utterance, each counted forward and backward.

Phrases are the stretches between pauses. espeak's ``"_!"`` is not a pause but German's glottal
stop before a vowel-initial word ("Geschichte | im"): its frames are silence in the one-hot
(:func:`voicebook.data.phonemes.normalise`) with zero positions, and it does not end a phrase. Words are espeak's (the corpus' ``Utterance.words``,
from its word events, :func:`voicebook.data.espeak.synthesize_words`). Syllables are counted by
their vowels (:func:`is_vowel`): a consonant joins the syllable of the next vowel of its word
(onsets first), a word's final consonants its last syllable, and a word without a vowel (Polish
"w", "z") the next vowel of its phrase. Where words are unknown (phone tuples without a word
index), each phrase counts as one word for syllabification and the word features are zero.

Input: an :class:`~voicebook.data.speech.Utterance`, or ``(phone, start_s, end_s)`` tuples in
espeak's symbols, optionally with a fourth element, the word index. Output:
``(frames, len(inventory) + len(EXTRA))`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .phonemes import SILENCE, _timed, normalise

__all__ = ["VERSION", "GLOTTAL_STOP", "COARSE_CENTRES", "EXTRA", "VOWEL_STARTS", "Segment", "is_vowel", "segments", "feature_names",
           "frame_features"]

#: Bumped whenever the features of an utterance change: chapter 3 keys its checkpoints on it,
#: so that models trained on older features are not loaded as if they were current.
VERSION = 2
#: espeak's glottal stop (German, before a vowel-initial word): a closure, not a phrase break.
GLOTTAL_STOP = "_!"
#: Relative positions (0 = start, 1 = end of the phone) of the coarse-coding triangles.
COARSE_CENTRES = (0.0, 0.5, 1.0)
#: The features after the phone one-hot, in order.
EXTRA = ("stress_primary", "stress_secondary", "pos_in_phone_start", "pos_in_phone_mid", "pos_in_phone_end",
         "phone_seconds", "is_vowel", "syllable_stressed", "syllable_in_phrase_fwd", "syllable_in_phrase_bwd",
         "phrase_syllables", "phone_in_phrase_fwd", "phone_in_phrase_bwd", "phrase_phones",
         "phone_in_word_fwd", "phone_in_word_bwd", "word_phones", "syllable_in_word_fwd", "syllable_in_word_bwd",
         "word_syllables", "word_in_phrase_fwd", "word_in_phrase_bwd", "phrase_words",
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
    ``syllable`` the index of its syllable in the phrase, ``word`` the index of its word in
    the phrase (-1 for pauses, and where words are unknown)."""

    phone: str
    start: float
    end: float
    stress: int
    phrase: int
    index: int
    syllable: int = -1
    word: int = -1


def _stress(symbol: str) -> int:
    return 1 if symbol.startswith("'") else 2 if symbol.startswith(",") else 0


def _timed_words(utt) -> list[tuple[str, float, float, int]]:
    """``(phone, start_s, end_s, word)`` for each phoneme event; word -1 where unknown."""
    timed = _timed(utt)
    words = tuple(getattr(utt, "words", ()) or ())
    if words and len(words) != len(timed):
        raise ValueError(f"linguistic: {len(words)} word indices for {len(timed)} phones")
    return [(p[0], p[1], p[2], int(p[3]) if len(p) > 3 else int(words[i]) if words else -1)
            for i, p in enumerate(timed)]


def _check_timings(timed: list) -> list:
    """The ``(phone, start_s, end_s, word)`` events unchanged, or ``ValueError`` naming the first
    event whose times are not finite, end before they start, or start before the previous
    event's end (timings must be sorted and may touch but not overlap; 1 ms of slack)."""
    prev_end = -np.inf
    for k, (p, a, b, _) in enumerate(timed):
        if not (np.isfinite(a) and np.isfinite(b)) or b < a:
            raise ValueError(f"linguistic: phone {k} ({p!r}) has times {a}-{b} s: need finite start <= end")
        if a < prev_end - 1e-3:
            raise ValueError(f"linguistic: phone {k} ({p!r}) starts at {a} s, before the previous phone ends "
                             f"({prev_end} s): timings must be sorted and not overlap")
        prev_end = max(prev_end, b)
    return timed


def segments(utt, *, keep_length: bool = True) -> list[Segment]:
    """The utterance's phones with positive duration, stress, word, syllable and phrase
    positions; a pause (not the glottal stop ``"_!"``) ends a phrase. Raises ``ValueError`` if
    there are no timings (real corpora have none) or they are unsorted, overlapping or NaN."""
    timed = [t for t in _check_timings(_timed_words(utt)) if t[2] > t[1]]
    if not timed:
        raise ValueError("linguistic.segments: the utterance has no phoneme timings")
    out, phrase, index, in_phrase, words = [], 0, 0, False, []
    for p, a, b, w in timed:
        name = normalise(p, keep_length=keep_length)
        if name == SILENCE:
            if in_phrase and p.strip() != GLOTTAL_STOP:
                phrase, index, in_phrase, words = phrase + 1, 0, False, []
            out.append(Segment(name, float(a), float(b), 0, -1, -1))
            continue
        if w >= 0 and w not in words:
            words.append(w)
        out.append(Segment(name, float(a), float(b), _stress(p.strip()), phrase, index,
                           word=words.index(w) if w >= 0 else -1))
        index, in_phrase = index + 1, True
    return _with_syllables(out)


def _with_syllables(segs: list[Segment]) -> list[Segment]:
    """Number each phrase's syllables by their vowels: a consonant takes the syllable of the
    next vowel of its word, else its word's last syllable; a word without a vowel (or a phrase
    whose words are unknown) takes the next vowel of the phrase, else the phrase's last."""
    out = list(segs)
    for k in {s.phrase for s in segs if s.phrase >= 0}:
        idx = [i for i, s in enumerate(segs) if s.phrase == k]
        nuclei = [i for i in idx if is_vowel(segs[i].phone)]
        for i in idx:
            before = sum(1 for v in nuclei if v < i)             # vowels strictly before phone i
            word = [v for v in nuclei if segs[v].word == segs[i].word] if segs[i].word >= 0 else []
            if is_vowel(segs[i].phone) or any(v > i for v in (word or nuclei)):
                syl = before                                     # the next vowel's syllable
            else:
                syl = max(before - 1, 0)                         # the last vowel before it
            out[i] = Segment(**{**segs[i].__dict__, "syllable": syl})
    return out


def feature_names(inventory: Sequence[str]) -> list[str]:
    """Column names of :func:`frame_features`: ``phone=<p>`` for each phone, then :data:`EXTRA`."""
    return [f"phone={p}" for p in inventory] + list(EXTRA)


def _positions(segs: list[Segment]) -> np.ndarray:
    """``(len(segs), len(EXTRA))``: each phone's stress, duration and position features (the
    coarse-coded position in the phone and ``utt_position`` vary per frame and stay zero)."""
    col = {name: i for i, name in enumerate(EXTRA)}
    out = np.zeros((len(segs), len(EXTRA)), dtype=np.float32)
    n_phr = 1 + max(s.phrase for s in segs)
    stressed = {(s.phrase, s.syllable) for s in segs if s.phrase >= 0 and is_vowel(s.phone) and s.stress}
    phrases: dict[int, list[Segment]] = {}
    for s in segs:
        phrases.setdefault(s.phrase, []).append(s)
    for i, s in enumerate(segs):
        if s.phrase < 0:
            continue
        phrase = phrases[s.phrase]
        vals = {"stress_primary": s.stress == 1, "stress_secondary": s.stress == 2,
                "phone_seconds": s.end - s.start, "is_vowel": is_vowel(s.phone),
                "syllable_stressed": (s.phrase, s.syllable) in stressed}
        vals.update(_fwd_bwd("syllable_in_phrase", "phrase_syllables", s.syllable, [t.syllable for t in phrase]))
        vals.update(_fwd_bwd("phone_in_phrase", "phrase_phones", s.index, [t.index for t in phrase]))
        vals.update(_fwd_bwd("phrase_in_utt", None, s.phrase, list(range(n_phr))))
        if s.word >= 0:
            word = [t for t in phrase if t.word == s.word]
            vals.update(_fwd_bwd("phone_in_word", "word_phones", word.index(s), list(range(len(word)))))
            vals.update(_fwd_bwd("syllable_in_word", "word_syllables", s.syllable - word[0].syllable,
                                 [t.syllable - word[0].syllable for t in word]))
            vals.update(_fwd_bwd("word_in_phrase", "phrase_words", s.word, [t.word for t in phrase]))
        for name, v in vals.items():
            out[i, col[name]] = v
    return out


def _fwd_bwd(position: str, count: str | None, value: int, values: list[int]) -> dict[str, float]:
    """``{position_fwd: value - first, position_bwd: last - value, count: distinct values}``."""
    out = {f"{position}_fwd": value - min(values), f"{position}_bwd": max(values) - value}
    if count:
        out[count] = len(set(values))
    return out


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
    per_phone = _positions(segs)
    starts = np.array([s.start for s in segs])
    times = np.arange(int(n_frames)) * float(hop_s)
    idx = np.searchsorted(starts, times, side="right") - 1
    x = np.zeros((int(n_frames), len(inventory) + len(EXTRA)), dtype=np.float32)
    base, coarse = len(inventory), len(inventory) + EXTRA.index("pos_in_phone_start")
    for f, i in enumerate(idx):
        if i < 0 or times[f] >= segs[i].end:
            x[f, col[SILENCE]] = 1.0
            continue
        s = segs[i]
        x[f, col[s.phone]] = 1.0
        if s.phrase < 0:
            continue
        x[f, base:] = per_phone[i]
        rel = (times[f] - s.start) / (s.end - s.start)
        x[f, coarse:coarse + 3] = [max(0.0, 1 - abs(rel - c) / 0.5) for c in COARSE_CENTRES]
    x[:, -1] = times / max(segs[-1].end, 1e-9)
    return x
