"""voicebook.data.phonemes: normalising espeak symbols, sequences, inventories, frame labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voicebook.data import load_corpus
from voicebook.data import phonemes as ph
from voicebook.data.speech import Utterance

# "hello" as espeak times it, by hand: a leading pause, h, schwa, a zero-length l that espeak
# merged into the vowel, the diphthong, a final pause. Seconds.
HELLO = (("_", 0.00, 0.05), ("h", 0.05, 0.10), ("@", 0.10, 0.20), ("l", 0.20, 0.20),
         ("'oU", 0.20, 0.40), ("_:", 0.40, 0.50))


def utterance(phonemes, language="en-us", id="u1") -> Utterance:
    return Utterance(id=id, speaker="s1", language=language, text="hello", sentence_id="x", path=Path("x.wav"),
                     sr=22050, sex="F", split="train", phonemes=tuple(phonemes), duration=0.5)


@pytest.fixture(scope="module")
def smoke():
    return load_corpus(size="smoke")


@pytest.mark.parametrize("raw, keep, expected", [
    ("'aU", True, "aU"), (",aU", True, "aU"), ("%a", True, "a"), ("=I", True, "I"),
    ("'o:", True, "o:"), (",o:", False, "o"), ("3:", False, "3"), ("'A~", True, "A~"),
    ("tS", True, "tS"), ("n^", True, "n^"), (":", True, ":"), ("a#", False, "a#"),
    ("_", True, "sil"), ("_:", True, "sil"), ("_!", True, "sil"), ("_|", True, "sil"), ("sil", True, "sil"),
])
def test_normalise_known_espeak_symbols(raw, keep, expected):
    assert ph.normalise(raw, keep_length=keep) == expected


def test_normalise_rejects_what_is_not_a_phone():
    with pytest.raises(ValueError, match="no phone left"):
        ph.normalise("',")
    with pytest.raises(TypeError, match="str"):
        ph.normalise(3)


def test_phone_sequence_drops_pauses_and_zero_length_events():
    assert ph.phone_sequence(HELLO) == ["h", "@", "oU"]
    assert ph.phone_sequence(utterance(HELLO)) == ["h", "@", "oU"]
    assert ph.phone_sequence(HELLO, silence=True) == ["sil", "h", "@", "oU", "sil"]
    # runs of pauses merge into one silence; plain symbols (no times) are all kept
    assert ph.phone_sequence(["_:", "_", "'a", "l", "_|", "_:"], silence=True) == ["sil", "a", "l", "sil"]


def test_frame_labels_on_known_timings():
    # frames centred at 0, 0.05, ..., 0.55 s; the last two lie past the end of the phones
    assert ph.frame_phones(HELLO, 0.05, 12) == ["sil", "h", "@", "@", "oU", "oU", "oU", "oU",
                                                "sil", "sil", "sil", "sil"]
    late = (("t", 0.12, 0.2), ("'i:", 0.2, 0.3))  # nothing before 0.12 s: silence
    assert ph.frame_phones(late, 0.1, 4) == ["sil", "sil", "i:", "sil"]
    inv = ph.inventory([HELLO])
    assert inv == ["sil", "@", "h", "l", "oU"]
    labels = ph.frame_labels(utterance(HELLO), 0.1, 5, inv)
    assert labels.dtype == torch.long and labels.tolist() == [0, 1, 4, 4, 0]
    assert ph.frame_labels(HELLO, 0.05, 0, inv).shape == (0,)


def test_frame_labels_need_timings():
    with pytest.raises(ValueError, match="no phoneme timings"):
        ph.frame_phones(utterance(()), 0.01, 10)
    with pytest.raises(ValueError, match="hop_s"):
        ph.frame_phones(HELLO, 0.0, 10)


def test_encode_decode_and_unknown_phones():
    inv = ["sil", "a", "b", "c"]
    ids = ph.encode(["c", "a", "sil"], inv)
    assert ids.dtype == torch.long and ids.tolist() == [3, 1, 0]
    assert ph.encode(["c", "a"], inv, offset=1).tolist() == [4, 2]
    assert ph.decode([4, 2], inv, offset=1) == ["c", "a"]
    with pytest.raises(KeyError, match=r"\['x', 'y'\] not in the inventory"):
        ph.encode(["a", "y", "x"], inv)


def test_inventory_union_and_languages():
    en = utterance((("'a", 0, 0.1), ("b", 0.1, 0.2)), "en-us", "e")
    fr = utterance((("a", 0, 0.1), ("'y", 0.1, 0.2), ("_", 0.2, 0.3)), "fr", "f")
    real = utterance((), "en-us", "r")  # real corpora carry no phonemes
    langs = ph.language_inventories([fr, en, real])
    assert langs == {"en-us": ["sil", "a", "b"], "fr": ["sil", "a", "y"]}
    assert ph.union(langs.values()) == ["sil", "a", "b", "y"] == ph.inventory([en, fr, real])
    assert ph.inventory([real]) == ["sil"]


def test_the_generated_corpus(smoke):
    """Every phone of the smoke corpus normalises and encodes, the per-language sets unite to the
    corpus inventory, and the frame labels at AutoVC's 16 ms hop agree with the phone sequences."""
    inv = ph.inventory(smoke)
    langs = ph.language_inventories(smoke)
    assert len(langs) == 8 and ph.union(langs.values()) == inv
    assert inv[0] == ph.SILENCE and inv[1:] == sorted(inv[1:]) and len(set(inv)) == len(inv)
    assert not any(c in p for p in inv for c in ph.STRESS_MARKS)
    assert 60 < len(inv) < 160 and 30 < len(langs["en-us"]) < len(inv)
    assert len(ph.inventory(smoke, keep_length=False)) < len(inv)
    hop_s, speech_frames, total, runs, phones = 256 / 16000, 0, 0, 0, 0
    for u in smoke:
        seq = ph.phone_sequence(u)
        ph.encode(seq, inv)
        labels = ph.frame_labels(u, hop_s, int(u.duration / hop_s) + 1, inv)
        speech_frames += int((labels != 0).sum())
        total += len(labels)
        runs += int((labels[1:] != labels[:-1]).sum()) + 1
        phones += len(seq)
    assert 0.7 < speech_frames / total < 0.99
    # one run of frames per phone or pause; a few phones shorter than a hop fall between frames
    assert 0.9 * phones < runs < 1.6 * phones


def test_text_phonemes_reads_like_the_corpus_voices():
    """A real recording's transcript is read by espeak's plain voice; its phones are those a
    corpus voice variant of the same language is labelled with (variants change the sound only)."""
    from types import SimpleNamespace

    from voicebook.data.espeak import synthesize
    from voicebook.data.phonemes import text_phonemes
    from voicebook.judges import reference_phones

    text = "Please call Stella and ask her to bring these things."
    for language, variant in (("en-us", "en-us+f3"), ("en-gb", "en+m2")):
        ours = ph.phone_sequence(text_phonemes(text, language))
        assert len(ours) > 20 and ours == ph.phone_sequence(synthesize(text, variant)[1])
    real = SimpleNamespace(phonemes=(), text=text, language="en-us")
    assert reference_phones(real, True) == ph.phone_sequence(text_phonemes(text, "en-us"))
    with pytest.raises(ValueError, match="no phones"):
        reference_phones(SimpleNamespace(phonemes=(), text="", language="en-us"), True)
    with pytest.raises(ValueError, match="no text"):
        text_phonemes("  ", "en-us")
