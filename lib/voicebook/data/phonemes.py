"""Phoneme inventories shared by chapters 1, 3 and 5.

The generated corpus carries espeak-ng's phoneme events (:attr:`Utterance.phonemes`: tuples of
``(phone, start_s, end_s)`` in seconds). espeak names phones with ASCII mnemonics that also
carry prosody:

* stress marks before the vowel: ``'`` primary, ``,`` secondary (``%`` unstressed and ``=``
  also exist in espeak's notation): ``"'aU"`` and ``",aU"`` are the same phone ``"aU"``;
* a length mark ``:`` (``"i:"``, ``"A:"``). In espeak's English and German sets a long vowel
  is a different phoneme from its short partner (``"3"`` vs ``"3:"``, ``"a"`` vs ``"A:"``),
  so by default it is kept; ``keep_length=False`` folds ``"X:"`` into ``"X"``;
* pauses ``"_"``, ``"_:"``, German's glottal stop before a vowel-initial word ``"_!"`` (a
  short closure, not a pause: chapter 3's phrases do not end there) and ``"_|"`` (a
  zero-length word boundary), all mapped to :data:`SILENCE`.

:func:`normalise` does that to one symbol; :func:`phone_sequence` turns an utterance into the
sequence a phoneme recogniser is trained on (chapter 1's content judge, CTC);
:func:`frame_labels` gives one label per spectrogram frame (chapter 3's linguistic inputs,
chapter 5's mouth shapes); :func:`inventory` / :func:`language_inventories` list the phones
of a corpus, one language at a time or as the union of all of them (chapter 3's shared input
layer). Inventories are plain lists: :data:`SILENCE` first, then the phones in sorted order,
so index 0 is always silence.
"""

from __future__ import annotations

import functools

from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = ["SILENCE", "STRESS_MARKS", "normalise", "normalise_all", "phone_sequence", "inventory",
           "language_inventories", "union", "encode", "decode", "frame_phones", "frame_labels"]

#: The symbol every pause (and every frame outside the phones) maps to; index 0 of an inventory.
SILENCE = "sil"
#: espeak's stress marks (primary, secondary, unstressed, stress-on-previous-syllable).
STRESS_MARKS = "',%="


def normalise(phone: str, *, keep_length: bool = True) -> str:
    """One espeak phone symbol without its stress marks; pauses become :data:`SILENCE`.

    ``"'aU"`` -> ``"aU"``, ``",o:"`` -> ``"o:"`` (``"o"`` if not ``keep_length``), ``"_:"``
    -> ``"sil"``. Raises ``ValueError`` for a symbol that is empty once its marks are gone.
    """
    if not isinstance(phone, str):
        raise TypeError(f"normalise: expected a phone symbol (str), got {type(phone).__name__}")
    p = phone.strip()
    if p.startswith("_") or p == SILENCE:
        return SILENCE
    p = p.lstrip(STRESS_MARKS)
    if not keep_length and len(p) > 1 and p.endswith(":"):
        p = p[:-1]
    if not p:
        raise ValueError(f"normalise: {phone!r} has no phone left once its stress/length marks are removed")
    return p


def _timed(utt_or_phonemes) -> tuple:
    """The ``(phone, start_s, end_s)`` tuples of an Utterance, or the tuples themselves."""
    phonemes = getattr(utt_or_phonemes, "phonemes", utt_or_phonemes)
    return tuple(phonemes)


def normalise_all(phones: Iterable, *, keep_length: bool = True) -> list[str]:
    """:func:`normalise` over symbols or ``(phone, start_s, end_s)`` tuples (the times are dropped)."""
    return [normalise(p if isinstance(p, str) else p[0], keep_length=keep_length) for p in phones]


def phone_sequence(utt, *, keep_length: bool = True, silence: bool = False) -> list[str]:
    """The phones an utterance's audio contains, in order: what a CTC recogniser is trained on.

    ``utt``: an :class:`~voicebook.data.speech.Utterance` or its ``phonemes`` tuple.
    Zero-length events are dropped (espeak's word boundaries ``"_|"`` and the post-vocalic
    ``l``/``r`` it merges into the vowel before it: no frame of :func:`frame_labels` carries
    them either). Silences are dropped unless ``silence``, in which case runs of them are
    merged into one :data:`SILENCE`. Plain symbols (no times) are kept, all of them.
    """
    out: list[str] = []
    for item in _timed(utt):
        if not isinstance(item, str) and item[2] <= item[1]:
            continue
        p = normalise(item if isinstance(item, str) else item[0], keep_length=keep_length)
        if p == SILENCE and (not silence or (out and out[-1] == SILENCE)):
            continue
        out.append(p)
    return out


def _sequences(source) -> Iterable[Sequence]:
    """Phone sequences of a corpus, of utterances, or of sequences (of symbols or timed tuples)."""
    for item in getattr(source, "items", source):
        yield _timed(item)


def inventory(source, *, keep_length: bool = True) -> list[str]:
    """The phones of ``source``: ``[SILENCE] + sorted(other phones)``.

    ``source``: a :class:`~voicebook.data.speech.SpeechCorpus`, utterances, or phone sequences
    (symbols or ``(phone, start_s, end_s)`` tuples). Build it from the whole corpus (every
    split) so that test sentences hold no phone the inventory lacks.
    """
    phones = {p for seq in _sequences(source) for p in normalise_all(seq, keep_length=keep_length)}
    return [SILENCE] + sorted(phones - {SILENCE})


def language_inventories(source, *, keep_length: bool = True) -> dict[str, list[str]]:
    """``{language: inventory}`` for the utterances of ``source`` (a corpus or utterances),
    each as :func:`inventory` makes it; languages sorted. Utterances without phonemes (real
    corpora) are skipped."""
    by_language: dict[str, list] = {}
    for u in getattr(source, "items", source):
        if u.phonemes:
            by_language.setdefault(u.language, []).append(u.phonemes)
    return {lang: inventory(seqs, keep_length=keep_length) for lang, seqs in sorted(by_language.items())}


def union(inventories: Iterable[Sequence[str]]) -> list[str]:
    """One inventory holding every phone of ``inventories`` (e.g. the values of
    :func:`language_inventories`): the shared input layer of the multilingual model (ch. 3)."""
    phones = {p for inv in inventories for p in inv}
    return [SILENCE] + sorted(phones - {SILENCE})


def encode(phones: Iterable[str], inventory: Sequence[str], *, offset: int = 0) -> torch.Tensor:
    """Normalised phone symbols -> int64 ids ``(len,)``: ``inventory.index(p) + offset``.

    ``offset=1`` leaves id 0 free for a CTC blank. Raises ``KeyError`` naming the phones the
    inventory lacks (build it from the whole corpus, or normalise with the same settings).
    """
    index = {p: i for i, p in enumerate(inventory)}
    phones = list(phones)
    missing = sorted({p for p in phones if p not in index})
    if missing:
        raise KeyError(f"encode: {missing} not in the inventory of {len(index)} phones "
                       f"({', '.join(list(index)[:12])}{', ...' if len(index) > 12 else ''}); were they normalised "
                       f"(voicebook.data.phonemes.normalise) with the inventory's settings?")
    return torch.tensor([index[p] + offset for p in phones], dtype=torch.long)


def decode(ids: Iterable[int], inventory: Sequence[str], *, offset: int = 0) -> list[str]:
    """Inverse of :func:`encode`: ids -> phone symbols."""
    return [inventory[int(i) - offset] for i in ids]


def frame_phones(utt, hop_s: float, n_frames: int, *, keep_length: bool = True) -> list[str]:
    """The phone under each of ``n_frames`` frames ``hop_s`` seconds apart.

    Frame ``t`` is centred at ``t * hop_s`` seconds (a centred STFT: with ``hop`` samples at
    ``sr`` Hz, ``hop_s = hop / sr``; the times are in seconds, so the audio's rate does not
    matter). Its label is the phone whose ``[start_s, end_s)`` holds that instant, or
    :data:`SILENCE` before the first phone and after the last.
    """
    timed = _timed(utt)
    if not timed:
        raise ValueError("frame_phones: the utterance has no phoneme timings (real corpora have none)")
    if hop_s <= 0 or int(n_frames) < 0:
        raise ValueError(f"frame_phones: need hop_s > 0 s and n_frames >= 0, got {hop_s}, {n_frames}")
    starts = np.array([a for _, a, _ in timed], dtype=np.float64)
    ends = np.array([b for _, _, b in timed], dtype=np.float64)
    names = normalise_all(timed, keep_length=keep_length)
    times = np.arange(int(n_frames)) * float(hop_s)
    idx = np.searchsorted(starts, times, side="right") - 1  # the last phone starting at or before t
    inside = (idx >= 0) & (times < ends[np.clip(idx, 0, None)])
    return [names[i] if ok else SILENCE for i, ok in zip(idx, inside)]


def frame_labels(utt, hop_s: float, n_frames: int, inventory: Sequence[str], *,
                 keep_length: bool = True) -> torch.Tensor:
    """:func:`frame_phones` as int64 ids into ``inventory``: ``(n_frames,)``.

    E.g. for the 16 kHz AutoVC log-mel (hop 256): ``frame_labels(u, 256 / 16000, mel.shape[-1], inv)``.
    """
    return encode(frame_phones(utt, hop_s, n_frames, keep_length=keep_length), inventory)


#: espeak-ng voice that reads each corpus language's text (British English is espeak's "en").
_READER_VOICE = {"en-gb": "en"}


@functools.lru_cache(maxsize=4096)
def text_phonemes(text: str, language: str) -> tuple:
    """The ``(phone, start_s, end_s)`` tuples espeak-ng reads ``text`` with, in ``language``'s
    default voice: the reference phones of a real recording (VCTK has text, no alignments),
    in the same symbols the generated corpus is labelled with."""
    from .espeak import synthesize

    if not text or not text.strip():
        raise ValueError(f"text_phonemes: no text to read (language {language!r})")
    return tuple(synthesize(text, _READER_VOICE.get(language, language))[1])
