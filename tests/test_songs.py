"""voicebook.data.midi_render, .singing and .songs: the generated songs of chapter 4."""

from __future__ import annotations

import numpy as np
import pytest

from voicebook import vocoder
from voicebook.data import midi_render as R
from voicebook.data import singing as S
from voicebook.data import songs

SR = 16000


def _arrangement(seed=3):
    return R.arrangement(tonic=60, minor=False, tempo=120, seconds=4.0, voice_range=(57, 76), seed=seed)


def test_arrangement_has_drums_bass_and_chords_in_the_voice_range():
    pm = _arrangement()
    names = {i.name: i for i in pm.instruments}
    assert set(names) == {"drums", "bass", "chords"} and names["drums"].is_drum
    assert all(57 <= n.pitch <= 76 for n in names["chords"].notes)
    assert all(n.pitch < 57 for n in names["bass"].notes)
    c_major = {0, 2, 4, 5, 7, 9, 11}
    assert {n.pitch % 12 for n in names["chords"].notes} <= c_major
    assert {n.pitch for n in names["drums"].notes} == {36, 38, 42}


def test_every_instrument_sounds_and_rendering_is_deterministic():
    pm = _arrangement()
    full = R.render(pm, SR, 4.0)
    assert full.shape == (4 * SR,) and full.dtype == np.float32 and np.isfinite(full).all()
    assert np.array_equal(full, R.render(_arrangement(), SR, 4.0))
    for inst in list(pm.instruments):
        pm.instruments = [inst]
        alone = R.render(pm, SR, 4.0)
        assert np.sqrt(np.mean(alone ** 2)) > 1e-3, inst.name
    pm.instruments = []
    with pytest.raises(ValueError, match="no notes"):
        R.render(pm, SR, 1.0)


def test_melody_stays_in_key_and_range():
    rng = np.random.default_rng(0)
    notes = S.melody(tonic=62, minor=True, tempo=100, seconds=20, voice_range=(45, 64), rng=rng)
    d_minor = {(62 + s) % 12 for s in R.MINOR}
    assert len(notes) > 10 and all(45 <= p <= 64 and p % 12 in d_minor for p, _, _ in notes)
    assert all(a < b for _, a, b in notes) and all(n[2] <= m[1] + 1e-9 for n, m in zip(notes, notes[1:]))
    with pytest.raises(ValueError, match="fewer than 3 notes"):
        S.melody(tonic=60, minor=False, tempo=100, seconds=5, voice_range=(60, 61), rng=rng)


def test_sung_pitch_follows_the_melody_and_rests_are_silent():
    from voicebook.data.espeak import SAMPLE_RATE, synthesize

    speech, _ = synthesize("The old teacher sings a quiet song at school every morning.", "en-us+f3", seed=1)
    rng = np.random.default_rng(2)
    notes = [(69, 0.5, 1.5), (72, 1.5, 2.5), (67, 3.5, 4.5)]       # A4, C5, rest, G4
    out = S.sing(speech, SAMPLE_RATE, notes, 5.0, SR, rng)
    assert out.shape == (5 * SR,)
    w = vocoder.analyze(out, SR, f0_method="dio")
    t = np.arange(len(w.f0)) * w.frame_period / 1000
    for pitch, a, b in notes:
        inside = (t > a + 0.35) & (t < b - 0.1) & (w.f0 > 0)       # past the glide, inside the note
        assert inside.sum() > 10
        cents = 1200 * np.log2(np.median(w.f0[inside]) / S.midi_to_hz(pitch))
        assert abs(cents) < 50, (pitch, cents)
    rest = out[int(2.6 * SR):int(3.4 * SR)]
    assert np.sqrt(np.mean(rest ** 2)) < 1e-3 * np.sqrt(np.mean(out ** 2)) + 1e-6


def test_sets_and_stems(tiny_songs):
    root, ss = tiny_songs
    assert [len(ss.split(s)) for s in songs.SETS] == [2, 2, 1]
    for song in ss.songs:
        stems = song.stems()
        assert stems.shape == (2, 4 * SR) and np.abs(song.mixture()).max() <= 0.91
        assert all(np.sqrt(np.mean(x ** 2)) > 1e-3 for x in stems)
    assert ss.split("test")[0].singer in songs.TEST_SINGERS
    assert not {s.singer for s in ss.split("labelled") + ss.split("karaoke")} & set(songs.TEST_SINGERS)
    with pytest.raises(ValueError, match="unknown song set"):
        ss.split("train")


def test_karaoke_tracks_bleed_into_each_other(tiny_songs):
    """The vocal track of a karaoke song carries the backing track (correlated with it);
    a labelled song's vocals do not."""
    _, ss = tiny_songs

    def corr(song):
        v, a = song.stems()
        return abs(np.corrcoef(v, a)[0, 1])

    assert min(corr(s) for s in ss.split("karaoke")) > 2 * max(corr(s) for s in ss.split("labelled"))


def test_generation_is_deterministic_and_repairs_a_damaged_file(tiny_songs, tmp_path):
    root, ss = tiny_songs
    song = ss.split("karaoke")[0]
    before = song.path.read_bytes()
    song.path.write_bytes(before[:1000])                           # truncate it
    again = songs.generate_songs(root, "tiny", seed=0, workers=1)
    assert again.split("karaoke")[0].path.read_bytes() == before
    assert songs.plan_songs("smoke", 0) == songs.plan_songs("smoke", 0)
    assert songs.plan_songs("smoke", 0) != songs.plan_songs("smoke", 1)
    with pytest.raises(ValueError, match="unknown song set size"):
        songs.plan_songs("huge")
