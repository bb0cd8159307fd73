"""Readers of local VCTK and VCC2018 copies, on small fixtures written in the published layouts."""

import numpy as np
import pytest

from voicebook import audio
from voicebook.checks import CorpusError
from voicebook.data import load_corpus, read_vcc2018, read_vctk

SPEAKER_INFO = """ID  AGE  GENDER  ACCENTS  REGION
225  23  F    English    Southern  England
226  22  M    Scottish   Edinburgh
294  33  F    American   San Francisco
"""
SHARED = {"001": "Please call Stella.", "002": "Ask her to bring these things with her from the store."}


def tone(path, sr, seconds=0.25, freq=220.0):
    t = np.arange(int(sr * seconds)) / sr
    audio.save(path, 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32), sr)


def write_vctk(root, *, flac=False):
    """VCTK-Corpus (wav48/*.wav) or VCTK-Corpus-0.92 (wav48_silence_trimmed/*_mic1.flac + mic2)."""
    info = SPEAKER_INFO.replace("225 ", "p225").replace("226 ", "p226") if flac else SPEAKER_INFO
    root.mkdir(parents=True)
    (root / "speaker-info.txt").write_text(info)
    for spk in ("p225", "p226", "p294"):
        texts = {**SHARED, "003": f"A sentence only {spk} reads."}
        for num, text in texts.items():
            utt = f"{spk}_{num}"
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{utt}.txt").write_text(text + "\n")
            if flac:
                for mic in ("mic1", "mic2"):
                    tone(root / "wav48_silence_trimmed" / spk / f"{utt}_{mic}.flac", 48000)
            else:
                tone(root / "wav48" / spk / f"{utt}.wav", 48000)
    return root


def write_vcc2018(root):
    for folder, speakers, numbers in (("vcc2018_training", ("VCC2SF1", "VCC2TM1"), ("10001", "10002")),
                                      ("vcc2018_evaluation", ("VCC2SF1",), ("30001",)),
                                      ("vcc2018_reference", ("VCC2TM1",), ("30001",))):
        for spk in speakers:
            for num in numbers:
                tone(root / folder / spk / f"{num}.wav", 22050)
    (root / "vcc2018_training" / "README").write_text("not a speaker")
    return root


def test_vctk_original_layout(tmp_path):
    corpus = read_vctk(write_vctk(tmp_path / "VCTK-Corpus"))
    assert len(corpus) == 9 and sorted(corpus.speakers) == ["p225", "p226", "p294"]
    assert {s.id: (s.sex, s.language) for s in corpus.speakers.values()} == {
        "p225": ("F", "en-gb"), "p226": ("M", "en-gb"), "p294": ("F", "en-us")}
    u = next(u for u in corpus if u.id == "p226_002")
    assert u.text == SHARED["002"] and u.sr == 48000 and u.duration == pytest.approx(0.25)
    assert u.phonemes == () and u.load().shape == (12000,)
    parallel = corpus.parallel(u.sentence_id)
    assert sorted(x.speaker for x in parallel) == ["p225", "p226", "p294"]
    assert {x.split for x in parallel} == {"test"}
    assert {x.split for x in corpus if x.id.endswith("_003")} <= {"train", "dev"}
    assert len({x.sentence_id for x in corpus if x.id.endswith("_003")}) == 3
    assert len(corpus.pairs("p225", "p294")) == 2


def test_vctk_092_layout_picks_one_microphone(tmp_path):
    root = write_vctk(tmp_path / "VCTK-Corpus-0.92", flac=True)
    corpus = read_vctk(root)
    assert len(corpus) == 9 and all(u.path.name.endswith("_mic1.flac") for u in corpus)
    assert len(read_vctk(root, mic="mic2")) == 9
    assert load_corpus(tmp_path).name == "vctk"  # found as a sub-folder of data_dir


def test_vcc2018_layout(tmp_path):
    corpus = load_corpus(write_vcc2018(tmp_path))
    assert corpus.name == "vcc2018" and len(corpus) == 6
    assert {s.id: (s.sex, s.role) for s in corpus.speakers.values()} == {
        "VCC2SF1": ("F", "source"), "VCC2TM1": ("M", "target")}
    pairs = corpus.pairs("VCC2SF1", "VCC2TM1", split="train")
    assert [(a.sentence_id, b.sentence_id) for a, b in pairs] == [("vcc2018-10001",) * 2, ("vcc2018-10002",) * 2]
    test_pairs = corpus.pairs("VCC2SF1", "VCC2TM1")
    assert len(test_pairs) == 1 and test_pairs[0][1].path.parent.parent.name == "vcc2018_reference"
    assert all(u.sr == 22050 and u.text == "" and u.language == "en-us" for u in corpus)
    assert len(read_vcc2018(tmp_path)) == 6


def test_a_folder_that_is_neither_says_what_was_looked_for(tmp_path):
    (tmp_path / "wav48").mkdir()
    with pytest.raises(CorpusError, match=rf"{tmp_path}.*VCTK.*wav48.*VCC2018.*vcc2018_training"):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match="no such folder"):
        load_corpus(tmp_path / "missing")


def test_readers_name_the_missing_parts(tmp_path):
    with pytest.raises(CorpusError, match="not a VCTK copy"):
        read_vctk(tmp_path)
    with pytest.raises(CorpusError, match="not a VCC2018 copy"):
        read_vcc2018(tmp_path)
    (tmp_path / "speaker-info.txt").write_text(SPEAKER_INFO)
    (tmp_path / "wav48" / "p225").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no audio files"):
        read_vctk(tmp_path)
    (tmp_path / "vcc2018_training" / "VCC2SF1").mkdir(parents=True)
    with pytest.raises(CorpusError, match="VCC2SF1-style"):
        read_vcc2018(tmp_path)


def test_a_corrupt_file_is_reported_with_its_path(tmp_path):
    root = write_vctk(tmp_path / "VCTK-Corpus")
    bad = root / "wav48" / "p225" / "p225_001.wav"
    bad.write_bytes(b"RIFF....not a wave")
    with pytest.raises(CorpusError, match="p225_001.wav"):
        read_vctk(root)
