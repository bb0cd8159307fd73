"""Speech from the espeak-ng library shipped inside the ``espeakng-loader`` wheel, via ctypes.

No system install and no network: the wheel carries ``libespeak-ng.so`` and ``espeak-ng-data``
(about 100 languages and the voice variants ``+f1``..``+f5``, ``+m1``..``+m8``, ...).

Determinism. espeak-ng keeps synthesis state in static variables that survive between messages
(the pitch-flutter index, wave phase...), so in one loaded copy of the library the same text
comes out slightly differently depending on what was said before; ``espeak_Terminate`` +
``espeak_Initialize`` does not reset that, and initialisation seeds the noise generator from the
clock. :func:`synthesize` therefore loads the library, seeds the noise generator from its
``seed`` argument, speaks, terminates and unloads the library (``dlclose``) on every call: about
4 ms of overhead, and every call is a pure function of its arguments (byte-identical in any
process, in any order). This holds as long as nothing else in the process keeps its own handle
on the same ``libespeak-ng.so`` (a warning says so, once).

Phoneme timings come from espeak's phoneme events (type 7): each carries the phoneme name
(espeak's ASCII phoneme mnemonics, stress marks included, e.g. ``"'aU"``; ``"_"`` and ``"_:"``
are pauses) and the sample index where it starts. Words come from its word events (type 1),
which give the character position where each word starts; a phoneme event carries the
position of the word it was made from, so :func:`synthesize_words` numbers each phone's word.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
import warnings

import numpy as np

__all__ = ["SAMPLE_RATE", "synthesize", "synthesize_words", "EspeakError"]

SAMPLE_RATE = 22050  # Hz, what espeak_Initialize returns for the default (non-MBROLA) voices

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4  # espeak_PARAMETER
_LIMITS = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100)}


class EspeakError(RuntimeError):
    """The espeak-ng library failed (unknown voice, initialisation or synthesis error)."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (40 bytes on 64-bit: the union is pointer-aligned)."""

    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the message
        ("sample", ctypes.c_int),          # the same position in samples (more precise)
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()
_collected: dict = {"chunks": [], "events": [], "words": []}
_warned = {"still_loaded": False}


def _on_synth(wav, n, events) -> int:
    """espeak's callback: keep the audio block, the phoneme events (name, start sample, text
    position) and the text positions where words start."""
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        ev = events[i]
        if ev.type == _EVENT_PHONEME:
            _collected["events"].append((ev.id.string.decode("utf-8", "replace"), ev.sample, ev.text_position))
        elif ev.type == _EVENT_WORD:
            _collected["words"].append(ev.text_position)
        i += 1
    if n > 0:
        _collected["chunks"].append(np.ctypeslib.as_array(wav, (n,)).copy())
    return 0


_callback = _Callback(_on_synth)  # module-level so it is never garbage-collected


def _paths() -> tuple[str, str]:
    import espeakng_loader

    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def _open() -> ctypes.CDLL:
    """Load a fresh copy of the library (pristine static state) and initialise it."""
    lib_path, data_path = _paths()
    lib = ctypes.CDLL(lib_path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_PHONEME_EVENTS)
    if sr != SAMPLE_RATE:
        raise EspeakError(f"espeak_Initialize({data_path}) returned {sr}, expected {SAMPLE_RATE} Hz")
    lib.espeak_SetSynthCallback(_callback)
    return lib


def _close(lib: ctypes.CDLL) -> None:
    """Terminate and unload the library, so the next :func:`_open` starts from a clean state."""
    lib.espeak_Terminate()
    _ctypes.dlclose(lib._handle)
    if not _warned["still_loaded"] and _is_loaded(_paths()[0]):
        _warned["still_loaded"] = True
        warnings.warn("libespeak-ng.so is held open by another module: espeak output may depend on "
                      "what was synthesised before (not reproducible)", RuntimeWarning, stacklevel=3)


def _is_loaded(path: str) -> bool:
    try:
        ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return False
    return True


def _set_voice(lib, voice: str, rate, pitch, pitch_range, seed: int) -> None:
    lib.espeak_ng_SetRandSeed(int(seed))  # espeak_Initialize seeds it with time(NULL)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakError(f"espeak-ng has no voice {voice!r} (e.g. 'en-us', 'en-us+f3', 'fr+m2', 'pt-br+f4')")
    for name, param, value in (("rate", _PARAM_RATE, rate), ("pitch", _PARAM_PITCH, pitch),
                               ("pitch_range", _PARAM_RANGE, pitch_range)):
        if value is None:
            continue
        lo, hi = _LIMITS[name]
        if not lo <= int(value) <= hi:
            raise ValueError(f"synthesize: {name}={value} is outside espeak's range [{lo}, {hi}]")
        lib.espeak_SetParameter(param, int(value), 0)


def _phone_segments(events, n_samples: int) -> list[tuple[str, float, float]]:
    """Phoneme events ``(name, start_sample, text_position)`` -> ``(name, start_s, end_s)``; a
    phone ends where the next one starts, the last one at the end of the audio."""
    starts = [min(max(s, 0), n_samples) for _, s, _ in events]
    starts = np.maximum.accumulate(starts).tolist() if starts else []
    ends = starts[1:] + [n_samples]
    return [(name, a / SAMPLE_RATE, b / SAMPLE_RATE) for (name, _, _), a, b in zip(events, starts, ends)]


def synthesize(text: str, voice: str, *, rate: int | None = None, pitch: int | None = None,
               pitch_range: int | None = None, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Speak ``text`` with espeak-ng.

    Args:
        text: UTF-8 text in the voice's language (sentences, punctuation; no SSML).
        voice: espeak voice name with an optional variant, e.g. ``"en-us"``, ``"en-us+f3"``,
            ``"fr+m2"``.
        rate: speaking rate in words per minute (80..450; espeak's default is 175).
        pitch: base pitch, 0..100 (default 50), relative to the voice's own pitch.
        pitch_range: intonation range, 0..100 (default 50; 0 is monotone).
        seed: seed of espeak's noise generator (the breathiness of variants such as ``+f2``).

    Returns:
        ``(wav, phonemes)``: ``wav`` float32 ``(samples,)`` at :data:`SAMPLE_RATE` Hz in [-1, 1];
        ``phonemes`` a list of ``(phone, start_s, end_s)`` in seconds, contiguous and
        non-decreasing, covering the audio after the first phone's start.
    """
    wav, phonemes, _ = synthesize_words(text, voice, rate=rate, pitch=pitch, pitch_range=pitch_range, seed=seed)
    return wav, phonemes


def synthesize_words(text: str, voice: str, *, rate: int | None = None, pitch: int | None = None,
                     pitch_range: int | None = None, seed: int = 0) -> tuple[np.ndarray, list, list[int]]:
    """:func:`synthesize`, plus the word each phone belongs to.

    Returns ``(wav, phonemes, words)``: ``wav`` and ``phonemes`` as :func:`synthesize`;
    ``words[i]`` the index (0, 1, ... in the utterance) of the word that ``phonemes[i]`` was
    made from, as espeak splits the text into words (it may join a clitic to its neighbour),
    ``-1`` for a phone before the first word. Pauses carry the index of the word they follow
    or precede; :mod:`voicebook.data.linguistic` ignores it.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize: text must be a non-empty string, got {text!r}")
    data = text.encode("utf-8")
    with _lock:
        _collected["chunks"], _collected["events"], _collected["words"] = [], [], []
        lib = _open()
        try:
            _set_voice(lib, voice, rate, pitch, pitch_range, seed)
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            status = status or lib.espeak_Synchronize()
        finally:
            _close(lib)
        chunks, events, word_starts = _collected["chunks"], _collected["events"], sorted(_collected["words"])
        _collected["chunks"], _collected["events"], _collected["words"] = [], [], []
    if status != 0 or not chunks:
        raise EspeakError(f"espeak_Synth failed (status {status}) for voice {voice!r} and text {text[:60]!r}")
    wav = np.concatenate(chunks).astype(np.float32) / 32768.0
    words = (np.searchsorted(word_starts, [pos for _, _, pos in events], side="right") - 1).tolist()
    return wav, _phone_segments(events, len(wav)), words
