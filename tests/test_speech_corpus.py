"""The generated speech corpus: requirements of the chapters, determinism, cache repair."""

import json
import os
import shutil
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import pyworld

from voicebook.checks import CorpusError
from voicebook.data import SPEAKERS, cache, generate_corpus, load_corpus, make_sentences, plan_corpus
from voicebook.data.speech import VERSION
from voicebook.files import sha256

TRAINING_LANGUAGES = {"en-us", "en-gb", "fr", "it", "de", "es"}
ADAPTATION_LANGUAGES = {"pl", "pt-br"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def corpus(cache_dir):
    return load_corpus(size="smoke", seed=0, cache_dir=cache_dir, workers=2)


def checksums(folder):
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*.wav"))}


def median_f0(utterances):
    values = []
    for u in list(utterances)[:2]:
        x = u.load().astype(np.float64)
        f0, t = pyworld.dio(x, u.sr, f0_floor=50, f0_ceil=500, frame_period=20)
        f0 = pyworld.stonemask(x, f0, t, u.sr)
        values.append(f0[f0 > 0])
    return float(np.median(np.concatenate(values)))


# ----------------------------------------------------------------------------- without audio

def test_speaker_table_meets_the_chapters_needs():
    assert len(SPEAKERS) >= 20
    assert len({s.id for s in SPEAKERS}) == len(SPEAKERS)
    assert len({(s.voice, s.pitch, s.rate) for s in SPEAKERS}) == len(SPEAKERS)
    assert {s.language for s in SPEAKERS} >= TRAINING_LANGUAGES | ADAPTATION_LANGUAGES
    sexes = [s.sex for s in SPEAKERS]
    assert sexes.count("F") >= 5 and sexes.count("M") >= 5
    tts = {(s.language, s.sex) for s in SPEAKERS if s.role == "tts"}
    assert {(lang, "F") for lang in TRAINING_LANGUAGES} <= tts
    assert {("en-us", "M"), ("en-gb", "M")} <= tts
    assert {(s.language, s.sex) for s in SPEAKERS if s.role == "adapt"} == {("pl", "F"), ("pt-br", "F")}
    english = [s for s in SPEAKERS if s.language.startswith("en")]
    assert sum(s.sex == "F" for s in english) >= 6 and sum(s.sex == "M" for s in english) >= 6


def test_standard_plan_is_parallel_on_test_and_non_parallel_on_train():
    jobs = list(plan_corpus("standard", seed=0).values())
    english_train = {j["text"] for j in jobs if j["language"].startswith("en") and j["split"] == "train"}
    assert len(english_train) >= 500
    speakers_of = defaultdict(set)
    for j in jobs:
        speakers_of[(j["split"], j["sentence_id"])].add(j["speaker"])
    for lang_prefix in ("en", "fr", "pl"):
        everyone = {s.id for s in SPEAKERS if s.language.startswith(lang_prefix)}
        tests = [spk for (split, sid), spk in speakers_of.items() if split == "test" and sid.startswith(lang_prefix)]
        assert len(tests) == 20 and all(spk == everyone for spk in tests)
    assert all(len(spk) == 1 for (split, _), spk in speakers_of.items() if split == "train")
    train = defaultdict(int)
    for j in jobs:
        train[j["speaker"]] += j["split"] == "train"
    assert train["en-us-f1"] > train["en-us-f2"] > train["pl-f1"] > 0  # tts > vc > adaptation data


def test_sentences_are_real_distinct_and_deterministic():
    for lang in ("en", "fr", "it", "de", "es", "pl", "pt"):
        many = make_sentences(lang, 300, seed=0)
        assert len(set(many)) == 300
        assert make_sentences(lang, 40, seed=0) == many[:40]
        assert make_sentences(lang, 40, seed=1) != many[:40]
        assert all(s[0].isupper() and s.endswith(".") and len(s.split()) >= 5 for s in many)


def test_unknown_size_is_refused():
    with pytest.raises(ValueError, match="unknown corpus size"):
        plan_corpus("huge")


# ----------------------------------------------------------------------------- the smoke corpus

def test_corpus_has_every_language_speaker_and_field(corpus):
    assert len(corpus.speakers) == len(SPEAKERS)
    assert set(corpus.languages) == TRAINING_LANGUAGES | ADAPTATION_LANGUAGES
    assert {u.split for u in corpus} == {"train", "dev", "test"}
    for u in corpus:
        assert u.text and u.phonemes and u.sr == 22050 and u.sex == corpus.speakers[u.speaker].sex
        assert 0 <= u.phonemes[0][1] and u.phonemes[-1][2] == pytest.approx(u.duration, abs=1e-5)
    wav = corpus[0].load()
    assert wav.dtype == np.float32 and len(wav) == round(corpus[0].duration * 22050)


def test_parallel_test_sentences_across_speakers(corpus):
    test = corpus.split("test")
    for sid in {u.sentence_id for u in test.by_language("fr")} | {u.sentence_id for u in test.by_language("en-gb")}:
        utts = corpus.parallel(sid)
        assert len({u.text for u in utts}) == 1
        lang = utts[0].language[:2]
        assert {u.speaker for u in utts} == {s.id for s in SPEAKERS if s.language.startswith(lang)}
    pairs = corpus.pairs("en-us-f2", "en-gb-m3")
    assert len(pairs) == 4 and all(a.text == b.text and a.speaker != b.speaker for a, b in pairs)
    train_a = {u.sentence_id for u in corpus.select(speaker="en-us-f2", split="train")}
    train_b = {u.sentence_id for u in corpus.select(speaker="en-gb-m3", split="train")}
    assert train_a and train_b and not train_a & train_b


def test_speakers_measurably_differ_as_configured(corpus):
    f0 = {s: median_f0(corpus.select(speaker=s, split="test")) for s in ("en-us-f2", "en-us-f3", "en-us-m2", "en-us-m3")}
    assert f0["en-us-f3"] > 1.2 * f0["en-us-f2"]  # same language, pitch 76 vs 38
    assert f0["en-us-m2"] > 1.2 * f0["en-us-m3"]  # pitch 76 vs 36
    women = [median_f0(corpus.select(speaker=s.id, split="test")) for s in SPEAKERS if s.sex == "F"][:6]
    men = [median_f0(corpus.select(speaker=s.id, split="test")) for s in SPEAKERS if s.sex == "M"][:6]
    assert np.mean(women) > 1.5 * np.mean(men)


def test_second_load_reuses_the_cache(corpus, cache_dir):
    before = {p: p.stat().st_mtime_ns for p in corpus.root.rglob("*.wav")}
    again = load_corpus(size="smoke", seed=0, cache_dir=cache_dir, workers=2)
    assert again.root == corpus.root and again.root.name == f"smoke-seed0-v{VERSION}"
    assert [u.id for u in again] == [u.id for u in corpus]
    assert {p: p.stat().st_mtime_ns for p in corpus.root.rglob("*.wav")} == before
    assert load_corpus(corpus.root).root == corpus.root  # a generated folder as data_dir


def test_same_seed_same_bytes_other_seed_differs_and_replaces(corpus, tmp_path):
    copy = generate_corpus(tmp_path / "copy", "smoke", seed=0, workers=2)
    assert checksums(copy.root) == checksums(corpus.root)
    assert (copy.root / "manifest.json").read_bytes() == (corpus.root / "manifest.json").read_bytes()
    other = generate_corpus(copy.root, "smoke", seed=1, workers=2)  # same folder: the seed-0 cache is stale
    assert cache.read_manifest(copy.root)["header"]["seed"] == 1
    assert set(checksums(other.root).values()).isdisjoint(checksums(corpus.root).values())
    assert [u.text for u in other] != [u.text for u in corpus]
    assert cache.folder_for("x", {"seed": 0, "generator": "speech"}) != cache.folder_for("x", {"seed": 1, "generator": "speech"})


def test_damaged_files_are_detected_and_regenerated(corpus, tmp_path):
    root = tmp_path / "damaged"
    shutil.copytree(corpus.root, root)
    good = checksums(root)
    wavs = sorted(root.rglob("*.wav"))
    truncated, flipped, deleted = wavs[3], wavs[10], wavs[20]
    truncated.write_bytes(truncated.read_bytes()[:1000])
    data = bytearray(flipped.read_bytes())
    data[5000:5010] = bytes(b ^ 0xFF for b in data[5000:5010])
    flipped.write_bytes(bytes(data))
    deleted.unlink()
    manifest = cache.read_manifest(root)
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert cache.verify(root, manifest) == sorted([rel(truncated), rel(flipped), rel(deleted)])
    others = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in wavs if p not in (truncated, flipped, deleted)}
    generate_corpus(root, "smoke", seed=0, workers=1)
    assert checksums(root) == good
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in others} == others


def test_a_folder_that_is_not_a_corpus_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"header": {"generator": "songs"}, "files": {}}))
    with pytest.raises(CorpusError, match="VCTK.*VCC2018"):
        load_corpus(tmp_path)


# ----------------------------------------------------------------------------- the generic cache

def make_text(folder, rel, job):
    """A toy generator: writes the job's text; fails on demand (to simulate an interruption)."""
    if job == "boom":
        raise RuntimeError("interrupted")
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(job)
    return {"length": len(job)}


def test_cache_resumes_after_an_interruption_and_rejects_other_headers(tmp_path):
    header = cache.describe("toy", 1, {"n": 3}, seed=0)
    jobs = {f"f{i}.txt": f"text {i}" for i in range(6)}
    with pytest.raises(RuntimeError, match="interrupted"):
        cache.fill(tmp_path, header, {**jobs, "z.txt": "boom"}, make_text, workers=1)
    manifest = cache.read_manifest(tmp_path, header)
    assert sorted(manifest["files"]) == sorted(jobs)  # the good files were recorded
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("f*.txt")}
    manifest = cache.fill(tmp_path, header, jobs, make_text, workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("f*.txt")} == stamps
    assert manifest["files"]["f2.txt"]["meta"] == {"length": 6}
    assert cache.read_manifest(tmp_path, cache.describe("toy", 2, {"n": 3}, seed=0))["files"] == {}
    os.utime(tmp_path / "f0.txt", ns=(0, 0))
    cache.fill(tmp_path, cache.describe("toy", 1, {"n": 3}, seed=7), jobs, make_text, workers=1)
    assert (tmp_path / "f0.txt").stat().st_mtime_ns != 0  # another seed: everything made again


def test_two_fills_of_one_folder_take_turns_and_make_each_file_once(tmp_path):
    """A second process (here a thread: the lock is per open file, so it works the same) that
    fills a folder another is filling waits, then finds every file made."""
    header = cache.describe("toy", 1, {"n": 4}, seed=0)
    jobs = {f"f{i}.txt": f"text {i}" for i in range(4)}
    made, started = [], threading.Event()

    def slow_make(folder, rel, job):
        started.set()
        made.append(rel)
        time.sleep(0.2)
        return make_text(folder, rel, job)

    first = threading.Thread(target=cache.fill, args=(tmp_path / "c", header, jobs, slow_make), kwargs={"workers": 1})
    first.start()
    started.wait(5)
    second = cache.fill(tmp_path / "c", header, jobs, slow_make, workers=1)
    first.join()
    assert sorted(made) == sorted(jobs)              # each file made once, by the first fill
    assert sorted(second["files"]) == sorted(jobs)   # the second one waited and found them all


def test_fill_forks_its_workers_unless_cuda_has_started_then_uses_a_fork_server(tmp_path, monkeypatch):
    """A forked child of a process that has started CUDA cannot use it and may hang; the pool
    then starts its workers from a clean fork server, and the files come out the same."""
    import torch

    assert cache.process_pool(2)._mp_context.get_start_method() == "fork"
    header = cache.describe("toy", 1, {"n": 8}, seed=0)
    jobs = {f"f{i}.txt": f"text {i}" for i in range(8)}
    forked = cache.fill(tmp_path / "forked", header, jobs, make_text, workers=2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert cache.process_pool(2)._mp_context.get_start_method() == "forkserver"
    served = cache.fill(tmp_path / "served", header, jobs, make_text, workers=2)
    assert served["files"] == forked["files"] and len(served["files"]) == 8
