"""voicebook.data.linguistic: frame-level linguistic features of an utterance with known phonemes."""

from __future__ import annotations

import numpy as np
import pytest

from voicebook.data import linguistic as L

PHONES = (("h", 0.0, 0.1), ("'E", 0.1, 0.3), ("l", 0.3, 0.4), ("_|", 0.4, 0.4), ("_:", 0.4, 0.6),
          (",oU", 0.6, 0.9))
INV = ["sil", "E", "h", "l", "oU", "x"]            # "x": a phone of another language, never on here
B = len(INV)
COL = {name: B + i for i, name in enumerate(L.EXTRA)}


@pytest.fixture(scope="module")
def feats():
    return L.frame_features(PHONES, INV, 0.05, 20)


def test_shape_and_names(feats):
    assert feats.shape == (20, B + 26) and feats.dtype == np.float32
    names = L.feature_names(INV)
    assert len(names) == feats.shape[1] and names[1] == "phone=E" and names[-1] == "utt_position"
    np.testing.assert_array_equal(feats[:, :B].sum(1), 1.0)           # exactly one phone per frame
    assert feats[:, INV.index("x")].sum() == 0                         # the other language's phone stays zero


def test_a_frame_inside_a_stressed_vowel(feats):
    f = feats[3]                                                       # t = 0.15 s: a quarter into 'E
    assert f[INV.index("E")] == 1 and f[COL["stress_primary"]] == 1 and f[COL["stress_secondary"]] == 0
    np.testing.assert_allclose([f[COL["pos_in_phone_start"]], f[COL["pos_in_phone_mid"]], f[COL["pos_in_phone_end"]]],
                               [0.5, 0.5, 0.0], atol=1e-6)
    assert f[COL["phone_seconds"]] == pytest.approx(0.2)
    # second of the three phones of phrase 0, first of two phrases
    assert (f[COL["phone_in_phrase_fwd"]], f[COL["phone_in_phrase_bwd"]], f[COL["phrase_phones"]]) == (1, 1, 3)
    assert (f[COL["phrase_in_utt_fwd"]], f[COL["phrase_in_utt_bwd"]]) == (0, 1)
    assert f[COL["utt_position"]] == pytest.approx(0.15 / 0.9)
    assert f[COL["is_vowel"]] == 1 and f[COL["syllable_stressed"]] == 1 and f[COL["phrase_syllables"]] == 1
    assert feats[7, COL["is_vowel"]] == 0 and feats[7, COL["syllable_stressed"]] == 1   # l: coda of 'E


def test_syllables_follow_the_vowels():
    # "s t 'a R y n ,a u" as one phrase: vowels a, y, a, u -> 4 syllables; onsets join the next vowel
    phones = [(p, 0.1 * i, 0.1 * (i + 1)) for i, p in enumerate("s t 'a R y n ,a u n".split())]
    segs = L.segments(phones)
    assert [s.syllable for s in segs] == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    inv = ["sil", "R", "a", "n", "s", "t", "u", "y"]
    x = L.frame_features(phones, inv, 0.1, 9)
    col = {name: len(inv) + i for i, name in enumerate(L.EXTRA)}
    np.testing.assert_array_equal(x[:, col["syllable_in_phrase_fwd"]], [0, 0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(x[:, col["syllable_in_phrase_bwd"]], [3, 3, 3, 2, 2, 1, 1, 0, 0])
    np.testing.assert_array_equal(x[:, col["syllable_stressed"]], [1, 1, 1, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(x[:, col["is_vowel"]], [0, 0, 1, 0, 1, 0, 1, 1, 0])
    assert x[0, col["phrase_syllables"]] == 4
    assert L.is_vowel("@") and L.is_vowel("&U~") and L.is_vowel("Y") and not L.is_vowel("w")
    assert not L.is_vowel("sil") and not L.is_vowel("ts;")


def test_words_split_syllables_and_count_positions():
    # Polish "Raz w tygodniu" as espeak says it, in one phrase: words 0 "R 'a s", 1 "f" (no vowel),
    # 2 "t y g 'O d n^ ; u"; the "s" of word 0 closes its syllable instead of opening "f t y"'s
    names = "R 'a s f t y g 'O d n^ ; u".split()
    words = [0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    phones = [(p, 0.1 * i, 0.1 * (i + 1), w) for i, (p, w) in enumerate(zip(names, words))]
    segs = L.segments(phones)
    assert [s.word for s in segs] == words
    assert [s.syllable for s in segs] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3]
    no_words = L.segments([p[:3] for p in phones])              # one phrase = one word: onsets first
    assert [s.syllable for s in no_words] == [0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3] and no_words[0].word == -1
    inv = ["sil", ";", "O", "R", "a", "d", "f", "g", "n^", "s", "t", "u", "y"]
    x = L.frame_features(phones, inv, 0.1, 12)
    col = {name: len(inv) + i for i, name in enumerate(L.EXTRA)}

    def feature(name):
        return x[:, col[name]].tolist()

    assert feature("phone_in_word_fwd") == [0, 1, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert feature("phone_in_word_bwd") == [2, 1, 0, 0, 7, 6, 5, 4, 3, 2, 1, 0]
    assert feature("word_phones") == [3, 3, 3, 1] + [8] * 8
    assert feature("syllable_in_word_fwd") == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert feature("syllable_in_word_bwd") == [0, 0, 0, 0, 2, 2, 1, 1, 0, 0, 0, 0]
    assert feature("word_syllables") == [1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3]
    assert feature("word_in_phrase_fwd") == [0, 0, 0, 1] + [2] * 8
    assert feature("word_in_phrase_bwd") == [2, 2, 2, 1] + [0] * 8
    assert feature("phrase_words") == [3] * 12
    assert feature("phrase_syllables") == [4] * 12
    unknown = L.frame_features([p[:3] for p in phones], inv, 0.1, 12)
    assert not unknown[:, col["phone_in_word_fwd"]:col["phrase_words"] + 1].any()   # no words: zero
    with pytest.raises(ValueError, match="3 word indices for 12 phones"):
        L.segments(type("U", (), {"phonemes": tuple(p[:3] for p in phones), "words": (0, 0, 0)})())


def test_pause_second_phrase_and_outside(feats):
    pause = feats[9]                                                    # t = 0.45 s: in the pause
    assert pause[INV.index("sil")] == 1 and pause[B:-1].sum() == 0
    o = feats[14]                                                       # t = 0.7 s: ,oU
    assert o[INV.index("oU")] == 1 and o[COL["stress_secondary"]] == 1
    assert (o[COL["phone_in_phrase_fwd"]], o[COL["phrase_phones"]], o[COL["phrase_in_utt_fwd"]]) == (0, 1, 1)
    assert feats[0, INV.index("h")] == 1 and feats[0, COL["pos_in_phone_start"]] == 1   # t = 0: start of h
    after = feats[19]                                                   # t = 0.95 s: after the last phone
    assert after[INV.index("sil")] == 1 and after[B:-1].sum() == 0


def test_missing_phone_and_no_timings_are_named():
    with pytest.raises(ValueError, match=r"phones \['oU'\] are not in the inventory"):
        L.frame_features(PHONES, ["sil", "E", "h", "l"], 0.05, 10)
    with pytest.raises(ValueError, match="no phoneme timings"):
        L.frame_features((), INV, 0.05, 10)


def test_on_a_generated_utterance():
    from voicebook.data import load_corpus
    from voicebook.data.phonemes import union, language_inventories

    corpus = load_corpus(None, size="smoke")
    inv = union(language_inventories(corpus).values())
    u = corpus.select(language="de").items[0]
    x = L.frame_features(u, inv, 0.005, int(u.duration / 0.005))
    assert x.shape[0] == int(u.duration / 0.005) and np.all(np.isfinite(x))
    assert x[:, :len(inv)].sum(0)[inv.index("sil")] > 0 and (x[:, :len(inv)].sum(0) > 0).sum() > 10
    col = {name: len(inv) + i for i, name in enumerate(L.EXTRA)}
    assert len(u.words) == len(u.phonemes)
    # espeak's words: the last one's index in the utterance is close to the text's word count
    assert abs(max(u.words) + 1 - len(u.text.split())) <= 2
    assert x[:, col["phrase_words"]].max() >= 2 and x[:, col["word_syllables"]].max() >= 2


def test_a_glottal_stop_does_not_end_the_phrase():
    # German "Geschichte | im": espeak's "_!" is a glottal closure inside the phrase; "_:" is a pause
    phones = (("t", 0.0, 0.1), ("'@", 0.1, 0.2), ("_!", 0.2, 0.23), ("'I", 0.23, 0.3), ("m", 0.3, 0.4),
              ("_:", 0.4, 0.6), ("'a", 0.6, 0.8))
    segs = [s for s in L.segments(phones) if s.phone != "sil"]
    assert [s.phrase for s in segs] == [0, 0, 0, 0, 1]
    assert [s.index for s in segs[:4]] == [0, 1, 2, 3]
    closure = next(s for s in L.segments(phones) if s.start == 0.2)
    assert closure.phone == "sil" and closure.phrase == -1


@pytest.mark.parametrize("phones, what", [
    ((("h", 0.3, 0.4), ("a", 0.0, 0.3)), "before the previous phone ends"),
    ((("h", 0.0, 0.2), ("a", 0.1, 0.3)), "before the previous phone ends"),
    ((("h", 0.0, float("nan")), ("a", 0.1, 0.3)), "need finite start <= end"),
    ((("h", 0.2, 0.1),), "need finite start <= end"),
])
def test_unsorted_overlapping_or_nan_timings_are_named(phones, what):
    with pytest.raises(ValueError, match=what):
        L.frame_features(phones, ["sil", "a", "h"], 0.05, 10)
