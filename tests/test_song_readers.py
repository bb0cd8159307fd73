"""voicebook.data.musdb18, .damp, .tracks and songs.load_song_sets: readers of the real music
corpora of chapter 4, on tiny fixtures written here in the published layouts (sines of known
frequency and level per stem, so the stems' content can be checked)."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicebook import audio
from voicebook.checks import CorpusError
from voicebook.data import damp, musdb18, songs, tracks

SR, MUSDB_SR = 16000, 44100
FFMPEG = tracks.ffmpeg_exe(required=False)
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg (imageio-ffmpeg ships one)")
#: MUSDB fixture: subset, track name, vocal frequency (Hz).
TRACKS = [("train", "Artist A - First Song", 440.0), ("train", "Artist B - Second Song", 523.0),
          ("test", "Artist C - Test Song", 660.0)]
ACC_HZ = {"drums": 110.0, "bass": 220.0, "other": 1000.0}   # each 0.1 in mono


def _sine(hz, seconds, sr, amp=1.0):
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _amplitude(x, hz, sr=SR, edge_s=0.1):
    """Least-squares amplitude of a ``hz`` sinusoid in ``x``, away from the ends."""
    n = np.arange(len(x))[int(edge_s * sr): len(x) - int(edge_s * sr)]
    basis = np.stack([np.sin(2 * np.pi * hz * n / sr), np.cos(2 * np.pi * hz * n / sr)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x[n], rcond=None)
    return float(np.hypot(*coef))


def _musdb_stems(vocal_hz, seconds=2.0):
    """Stereo stems (samples, 2): vocals 0.4 left / 0.2 right (mono 0.3); drums 0.1 both; bass
    0.2 left only (mono 0.1); other 0.1 both."""
    v, d = _sine(vocal_hz, seconds, MUSDB_SR), _sine(ACC_HZ["drums"], seconds, MUSDB_SR, 0.1)
    b, o = _sine(ACC_HZ["bass"], seconds, MUSDB_SR, 0.2), _sine(ACC_HZ["other"], seconds, MUSDB_SR, 0.1)
    return {"vocals": np.stack([0.4 * v, 0.2 * v], 1), "drums": np.stack([d, d], 1),
            "bass": np.stack([b, 0 * b], 1), "other": np.stack([o, o], 1)}


def write_musdb_hq(root: Path) -> Path:
    for subset, name, hz in TRACKS:
        folder = root / subset / name
        folder.mkdir(parents=True)
        stems = _musdb_stems(hz)
        for stem, x in {**stems, "mixture": sum(stems.values())}.items():
            sf.write(folder / f"{stem}.wav", x, MUSDB_SR, subtype="PCM_16")
    return root


def _ffmpeg(*args):
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def write_musdb_stems(hq: Path, root: Path) -> Path:
    """The compressed layout of the same tracks: one five-stream AAC .stem.mp4 per track."""
    for subset, name, _ in TRACKS:
        (root / subset).mkdir(parents=True, exist_ok=True)
        order = ("mixture", "drums", "bass", "other", "vocals")          # musdb's stem ids 0-4
        inputs = [a for s in order for a in ("-i", hq / subset / name / f"{s}.wav")]
        maps = [a for i in range(5) for a in ("-map", f"{i}:a")]
        _ffmpeg(*inputs, *maps, "-c:a", "aac", "-b:a", "192k", root / subset / f"{name}.stem.mp4")
    return root


@pytest.fixture(scope="module")
def musdb_hq(tmp_path_factory):
    return write_musdb_hq(tmp_path_factory.mktemp("musdb18hq"))


def write_damp(root: Path, real: bool = True) -> Path:
    """Two performances. ``real``: DAMP-VSEP's layout and formats (vocal.ogg at 22.05 / 48 kHz
    mono, background.m4a AAC at 44.1 kHz stereo, mix.m4a); else the plain one in wav / flac."""
    perfs = [("10/US/en/1000_2001", 22050, 330.0, 2.0), ("18/IT/en/1000_2002", 48000, 392.0, 2.5)]
    for i, (rel, vocal_sr, hz, back_s) in enumerate(perfs):
        folder = root / (rel if real else rel.split("/")[-1])
        folder.mkdir(parents=True)
        back = np.stack([_sine(150.0, back_s, MUSDB_SR, 0.3), _sine(150.0, back_s, MUSDB_SR, 0.1)], 1)
        if real:
            sf.write(folder / "vocal.ogg", _sine(hz, 2.0, vocal_sr, 0.3), vocal_sr, format="OGG", subtype="VORBIS")
            sf.write(folder / "source.wav", back, MUSDB_SR)
            for name in ("background", "mix"):
                _ffmpeg("-i", folder / "source.wav", "-c:a", "aac", "-b:a", "192k", folder / f"{name}.m4a")
            (folder / "source.wav").unlink()
        else:
            sf.write(folder / "vocal.wav", _sine(hz, 2.0, vocal_sr, 0.3), vocal_sr)
            sf.write(folder / "background.flac", back, MUSDB_SR)
    return root


# ----------------------------------------------------------------------------- MUSDB18


def _check_musdb_content(song, vocal_hz, tol):
    stems = song.stems()
    assert stems.shape == (2, 2 * SR) and stems.dtype == np.float32
    assert _amplitude(stems[0], vocal_hz) == pytest.approx(0.3, abs=tol)          # mono: (0.4 + 0.2) / 2
    assert all(_amplitude(stems[0], hz) < tol for hz in ACC_HZ.values())
    assert all(_amplitude(stems[1], hz) == pytest.approx(0.1, abs=tol) for hz in ACC_HZ.values())
    assert _amplitude(stems[1], vocal_hz) < tol
    np.testing.assert_allclose(song.mixture(), stems.sum(0), atol=1e-7)
    return stems


def test_musdb18_hq_splits_and_stems(musdb_hq):
    got = musdb18.read_musdb18(musdb_hq)
    assert [(s.split, s.id) for s in got] == [("labelled", TRACKS[0][1]), ("labelled", TRACKS[1][1]),
                                            ("test", TRACKS[2][1])]
    assert all(s.seconds == pytest.approx(2.0) and s.path.is_dir() for s in got)
    assert [s.id for s in musdb18.read_musdb18(musdb_hq, subsets=("test",))] == [TRACKS[2][1]]
    for song, (subset, name, hz) in zip(got, TRACKS):
        stems = _check_musdb_content(song, hz, tol=2e-3)
        folder = musdb_hq / subset / name                  # accompaniment: drums + bass + other, mono, 16 kHz
        acc = sum(sf.read(folder / f"{s}.wav", dtype="float32")[0] for s in ACC_HZ).mean(axis=1)
        np.testing.assert_allclose(stems[1], audio.resample(acc, MUSDB_SR, SR), atol=1e-5)
        vocals = sf.read(folder / "vocals.wav", dtype="float32")[0].mean(axis=1)
        np.testing.assert_allclose(stems[0], audio.resample(vocals, MUSDB_SR, SR), atol=1e-5)


@needs_ffmpeg
def test_musdb18_stem_mp4_layout_matches_the_wav_layout(musdb_hq, tmp_path):
    root = write_musdb_stems(musdb_hq, tmp_path / "musdb18")
    got = musdb18.read_musdb18(root)
    assert [(s.split, s.id) for s in got] == [(s.split, s.id) for s in musdb18.read_musdb18(musdb_hq)]
    assert all(s.path.name.endswith(".stem.mp4") and s.seconds is None for s in got)
    for song, (_, _, hz) in zip(got, TRACKS):
        _check_musdb_content(song, hz, tol=1e-2)           # AAC: lossy, same content


def _stand_in_stempeg():
    """stempeg's reading API on soundfile: musdb's own code runs although ffprobe is missing."""
    class Info:
        def __init__(self, filename):
            self._info = sf.info(str(filename))

        def samples(self, idx):
            return self._info.frames

        def duration(self, idx):
            return self._info.duration

        def rate(self, idx):
            return self._info.samplerate

    def read_stems(filename, stem_id=None, start=0, duration=None, info=None, sample_rate=None, **_):
        assert start == 0 and duration is None and sample_rate is None
        return sf.read(str(filename), dtype="float32", always_2d=True)

    return types.SimpleNamespace(Info=Info, read_stems=read_stems, write_audio=None)


@pytest.mark.skipif(importlib.util.find_spec("musdb") is None, reason="musdb is not installed (`make test` does)")
def test_musdb18_reader_agrees_with_the_musdb_package(musdb_hq):
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("musdb", "stempeg")}
    for k in saved:
        del sys.modules[k]
    sys.modules["stempeg"] = _stand_in_stempeg()
    try:
        db = importlib.import_module("musdb").DB(root=str(musdb_hq), is_wav=True)
        theirs = {(t.subset, t.name): t for t in db.tracks}
        ours = musdb18.read_musdb18(musdb_hq)
        assert [(s.split, s.id) for s in ours] == [(musdb18.SPLITS[sub], name) for sub, name in theirs]
        for song, track in zip(ours, theirs.values()):
            vocals, acc = (track.targets[t].audio.mean(axis=1) for t in ("vocals", "accompaniment"))
            expected = np.stack([audio.resample(x, int(track.rate), SR) for x in (vocals, acc)])
            np.testing.assert_allclose(song.stems(), expected, atol=1e-6)
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in ("musdb", "stempeg")]:
            del sys.modules[k]
        sys.modules.update(saved)


# ----------------------------------------------------------------------------- DAMP


def _check_damp(got, ids):
    assert [s.id for s in got] == ids and {s.split for s in got} == {"karaoke"}
    first, second = (s.stems() for s in got)
    assert first.shape == (2, 2 * SR) and second.shape == (2, int(2.5 * SR))   # backing 2.5 s: vocal padded
    assert first.dtype == second.dtype == np.float32
    assert _amplitude(first[0], 330.0) == pytest.approx(0.3, abs=1e-2) and _amplitude(first[0], 150.0) < 1e-2
    assert _amplitude(second[0][: 2 * SR], 392.0) == pytest.approx(0.3, abs=1e-2)
    assert not second[0][2 * SR + 200:].any()
    assert _amplitude(first[1], 150.0) == pytest.approx(0.2, abs=1e-2)         # mono: (0.3 + 0.1) / 2
    assert _amplitude(first[1], 330.0) < 1e-2
    np.testing.assert_allclose(got[1].mixture(), second.sum(0), atol=1e-7)


@needs_ffmpeg
def test_damp_vsep_layout_ogg_and_m4a(tmp_path):
    root = write_damp(tmp_path / "DAMP-VSEP", real=True)
    assert damp.find_root(root) == root and damp.find_root(root / "10") is None
    got = damp.read_damp(root)
    _check_damp(got, ["1000_2001", "1000_2002"])
    assert got[0].vocal.name == "vocal.ogg" and got[0].background.name == "background.m4a"
    assert got[0].seconds == pytest.approx(2.0)


def test_damp_style_layout(tmp_path):
    root = write_damp(tmp_path / "damp", real=False)
    got = damp.read_damp(root)
    _check_damp(got, ["1000_2001", "1000_2002"])
    assert got[1].background.suffix == ".flac"


# ----------------------------------------------------------------------------- load_song_sets


@pytest.fixture()
def tiny_cache(tiny_songs, tmp_path):
    """A cache dir holding conftest's tiny generated songs where load_songs(size="tiny") looks."""
    root, generated = tiny_songs
    cache = tmp_path / "cache"
    shutil.copytree(root, cache / "songs" / f"tiny-seed0-v{songs.VERSION}")
    return cache, generated


def test_load_song_sets_mixes_real_and_generated_sets(musdb_hq, tiny_cache, tmp_path):
    cache, generated = tiny_cache
    got = songs.load_song_sets(musdb_hq, size="tiny", cache_dir=cache, workers=1)
    assert got.sources == {"labelled": f"musdb18:{musdb_hq}", "karaoke": "generated:tiny",
                           "test": f"musdb18:{musdb_hq}"}
    assert [s.id for s in got.split("labelled")] == [TRACKS[0][1], TRACKS[1][1]]
    assert [s.id for s in got.split("test")] == [TRACKS[2][1]]
    assert [s.id for s in got.split("karaoke")] == [s.id for s in generated.split("karaoke")]
    assert got.split("karaoke")[0].stems().shape == (2, 4 * SR) and got.root == musdb_hq

    train_only = tmp_path / "train-only"                  # a half-copied MUSDB18: its test set is generated, and said so
    shutil.copytree(musdb_hq / "train", train_only / "train")
    with pytest.warns(UserWarning, match=r"train-only: the MUSDB18 copy has no test songs; that set is the generated one"):
        got = songs.load_song_sets(train_only, size="tiny", cache_dir=cache, workers=1)
    assert got.sources["test"] == "generated:tiny" and got.sources["labelled"] == f"musdb18:{train_only}"

    both = tmp_path / "corpora"                       # a folder holding both, found by layout not by name
    shutil.copytree(musdb_hq, both / "a")
    write_damp(both / "b", real=False)
    empty_cache = tmp_path / "unused-cache"
    got = songs.load_song_sets(both, size="tiny", cache_dir=empty_cache)
    assert got.sources == {"labelled": f"musdb18:{both / 'a'}", "karaoke": f"damp:{both / 'b'}",
                           "test": f"musdb18:{both / 'a'}"}
    assert [len(got.split(s)) for s in songs.SETS] == [2, 2, 1] and not empty_cache.exists()

    got = songs.load_song_sets(both / "b", size="tiny", cache_dir=cache)      # DAMP only
    assert got.sources == {"labelled": "generated:tiny", "karaoke": f"damp:{both / 'b'}", "test": "generated:tiny"}
    assert [s.id for s in got.split("test")] == [s.id for s in generated.split("test")]
    assert songs.load_song_sets(size="tiny", cache_dir=cache).sources == {s: "generated:tiny" for s in songs.SETS}


# ----------------------------------------------------------------------------- errors


def test_a_folder_that_is_no_corpus_is_named(tmp_path):
    (tmp_path / "music" / "x").mkdir(parents=True)
    (tmp_path / "music" / "x" / "song.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"music: not a music corpus.*MUSDB18.*DAMP"):
        songs.load_song_sets(tmp_path / "music")
    with pytest.raises(CorpusError, match="nowhere: no such folder"):
        songs.load_song_sets(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="not a MUSDB18 copy"):
        musdb18.read_musdb18(tmp_path / "music")
    with pytest.raises(CorpusError, match="not a DAMP-VSEP or DAMP-style folder"):
        damp.read_damp(tmp_path / "music")


def test_missing_and_corrupt_files_are_named(musdb_hq, tmp_path):
    root = shutil.copytree(musdb_hq, tmp_path / "musdb")
    track = root / "train" / TRACKS[1][1]
    (track / "drums.wav").unlink()
    with pytest.raises(CorpusError, match=r"Second Song/drums\.wav: missing"):
        songs.load_song_sets(root)
    (track / "drums.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(CorpusError, match=r"Second Song/drums\.wav: cannot read"):
        musdb18.read_musdb18(root)

    perf = tmp_path / "damp" / "perf1"
    perf.mkdir(parents=True)
    sf.write(perf / "vocal.wav", _sine(300.0, 0.5, SR, 0.3), SR)
    with pytest.raises(CorpusError, match="perf1: has vocal.wav but no background track"):
        damp.read_damp(tmp_path / "damp")
    (perf / "background.wav").write_bytes(b"garbage")
    with pytest.raises(CorpusError, match=r"perf1/background\.wav: cannot read"):
        damp.read_damp(tmp_path / "damp")


@needs_ffmpeg
def test_corrupt_m4a_is_named_when_decoded(tmp_path):
    perf = tmp_path / "damp" / "perf1"
    perf.mkdir(parents=True)
    sf.write(perf / "vocal.wav", _sine(300.0, 0.5, SR, 0.3), SR)
    (perf / "background.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A garbage")
    (song,) = damp.read_damp(tmp_path / "damp")       # AAC headers are checked when decoded
    with pytest.raises(CorpusError, match=r"perf1/background\.m4a: ffmpeg could not decode"):
        song.stems()


def test_aac_without_ffmpeg_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(tracks, "ffmpeg_exe", lambda required=True: "ffmpeg")     # reading needs one, decoding is later
    (tmp_path / "musdb" / "test").mkdir(parents=True)
    (tmp_path / "musdb" / "test" / "Artist - Song.stem.mp4").write_bytes(b"\x00" * 64)
    (song,) = musdb18.read_musdb18(tmp_path / "musdb")
    assert (song.id, song.split) == ("Artist - Song", "test")
    perf = tmp_path / "damp" / "perf1"
    perf.mkdir(parents=True)
    sf.write(perf / "vocal.ogg", _sine(300.0, 0.5, SR, 0.3), SR, format="OGG", subtype="VORBIS")
    (perf / "background.m4a").write_bytes(b"\x00" * 64)
    damp.read_damp(tmp_path / "damp")
    monkeypatch.setattr(tracks, "ffmpeg_exe", lambda required=True: None)
    no_ffmpeg = r"soundfile cannot read .* files and no ffmpeg was found: install ffmpeg .*imageio-ffmpeg"
    with pytest.raises(CorpusError, match=rf"Song\.stem\.mp4: {no_ffmpeg}.*MUSDB18-HQ's wav layout"):
        musdb18.read_musdb18(tmp_path / "musdb")                 # said when read, and again if decoded
    with pytest.raises(CorpusError, match=rf"Song\.stem\.mp4: {no_ffmpeg}.*MUSDB18-HQ's wav layout"):
        song.stems()
    with pytest.raises(CorpusError, match=rf"perf1/background\.m4a: {no_ffmpeg}.*convert the file to wav"):
        damp.read_damp(tmp_path / "damp")
