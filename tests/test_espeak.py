"""espeak-ng through ctypes: speech-like output, phoneme timings, parameters, determinism."""

import ctypes
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import pyworld

from voicebook.data import espeak
from voicebook.data.espeak import SAMPLE_RATE, EspeakError, synthesize

PAUSES = {"_", "_:", "_!"}


def median_f0(wav: np.ndarray) -> float:
    x = wav.astype(np.float64)
    f0, t = pyworld.dio(x, SAMPLE_RATE, f0_floor=50, f0_ceil=500, frame_period=10)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    return float(np.median(f0[f0 > 0]))


def test_event_struct_matches_speak_lib_h():
    # int type, uint uid, int text_position, int length, int audio_position, int sample,
    # void* user_data, union {int; const char*; char[8]} id  -> 40 bytes on 64-bit
    assert ctypes.sizeof(espeak._Event) == 24 + 2 * ctypes.sizeof(ctypes.c_void_p)
    assert espeak._Event.user_data.offset == 24
    assert espeak._Event.id.offset == 24 + ctypes.sizeof(ctypes.c_void_p)


def test_output_is_speech_like():
    wav, phones = synthesize("Hello world, this is a test.", "en-us")
    assert wav.dtype == np.float32 and wav.ndim == 1
    duration = len(wav) / SAMPLE_RATE
    assert 1.0 < duration < 4.0
    assert 0.05 < np.abs(wav).max() <= 1.0
    assert np.sqrt(np.mean(wav ** 2)) > 0.02
    assert 80 < median_f0(wav) < 200  # a male-range default voice, voiced


def test_duration_grows_with_text():
    short, _ = synthesize("Hello.", "en-us")
    long, _ = synthesize("Hello. The quick brown fox jumps over the lazy dog near the river bank.", "en-us")
    assert len(long) > 3 * len(short)


def test_phonemes_are_contiguous_and_inside_the_audio():
    wav, phones = synthesize("The cat sat on the mat. It was quiet.", "en-us+f3")
    starts = [s for _, s, _ in phones]
    assert starts == sorted(starts)
    assert all(e >= s for _, s, e in phones)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(phones, phones[1:]))
    assert 0 <= phones[0][1] < 0.1
    assert phones[-1][2] == pytest.approx(len(wav) / SAMPLE_RATE)


def test_phonemes_of_a_known_word():
    _, phones = synthesize("hello", "en-us")
    assert [p for p, _, _ in phones if p not in PAUSES] == ["h", "@", "l", "'oU"]


def test_words_of_the_phones():
    wav, phones, words = espeak.synthesize_words("the quick brown fox", "en-us")
    plain_wav, plain_phones = synthesize("the quick brown fox", "en-us")
    assert np.array_equal(wav, plain_wav) and phones == plain_phones and len(words) == len(phones)
    spoken = [(p, w) for (p, _, _), w in zip(phones, words) if p not in PAUSES]
    assert [w for _, w in spoken] == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert [p for p, w in spoken if w == 2] == ["b", "r", "'aU", "n"]
    _, phones, words = espeak.synthesize_words("Raz w tygodniu.", "pl")       # a word without a vowel
    assert [p for (p, _, _), w in zip(phones, words) if w == 1] == ["f"]


def test_phoneme_times_line_up_with_the_sound():
    """Pauses espeak reports are near-silent in the audio; vowels are loud."""
    wav, phones = synthesize("Hello world. The cat sat on the mat.", "en-us")

    def rms(s, e):
        seg = wav[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(seg ** 2)))

    pauses = [rms(s, e) for p, s, e in phones if p == "_:" and e - s > 0.05]
    vowels = [rms(s, e) for p, s, e in phones if p.startswith("'") and e - s > 0.03]
    assert pauses and vowels
    assert max(pauses) < 0.1 * np.median(vowels)


def test_parameters_change_rate_and_pitch():
    text = "The old teacher reads a long letter in the garden."
    slow, _ = synthesize(text, "en-us", rate=120)
    fast, _ = synthesize(text, "en-us", rate=260)
    assert len(slow) > 1.6 * len(fast)
    low, _ = synthesize(text, "en-us+f2", pitch=20)
    high, _ = synthesize(text, "en-us+f2", pitch=80)
    assert median_f0(high) > 1.3 * median_f0(low)
    female, _ = synthesize(text, "en-us+f2")
    male, _ = synthesize(text, "en-us+m2")
    assert median_f0(female) > 1.5 * median_f0(male)


@pytest.mark.parametrize("voice", ["en-us", "en", "fr", "it", "de", "es", "pl", "pt-br"])
def test_every_corpus_language_speaks(voice):
    wav, phones = synthesize("Un, dos, tres. Hello.", voice)
    assert np.abs(wav).max() > 0.05 and len(phones) > 5


def test_same_call_same_bytes_whatever_came_before():
    text = "Hello world. The cat sat on the mat, quietly."
    a, pa = synthesize(text, "en-us+f3")  # f3 has breath noise: exercises the seeded generator
    synthesize("Something entirely different to move espeak's state along.", "de+m2", pitch=80)
    b, pb = synthesize(text, "en-us+f3")
    assert np.array_equal(a, b) and pa == pb
    c, _ = synthesize(text, "en-us+f3", seed=1)
    assert not np.array_equal(a, c)


def test_same_bytes_in_another_process():
    code = ("import hashlib; from voicebook.data.espeak import synthesize; "
            "w, _ = synthesize('Hello world. The cat sat on the mat.', 'en-us+f3'); "
            "print(hashlib.sha256(w.tobytes()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    wav, _ = synthesize("Hello world. The cat sat on the mat.", "en-us+f3")
    assert other == hashlib.sha256(wav.tobytes()).hexdigest()


def test_errors_say_what_is_wrong():
    with pytest.raises(EspeakError, match="no voice 'xx-nope'"):
        synthesize("hello", "xx-nope")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("  ", "en-us")
    with pytest.raises(ValueError, match="rate=5"):
        synthesize("hello", "en-us", rate=5)
