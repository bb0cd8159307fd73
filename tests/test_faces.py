"""voicebook.data.face_*: generated talking faces for chapter 5 (identities, visemes, landmarks, the set)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from voicebook.data import face_animation as A
from voicebook.data import face_geometry as G
from voicebook.data import faces as F
from voicebook.data.face_identity import SIZE, average_identity, draw_identity
from voicebook.data.face_render import FaceRenderer
from voicebook.data.phonemes import frame_phones
from voicebook.data.speech import load_corpus
from voicebook.files import sha256

CAVITY = np.array((62, 18, 26))


@pytest.fixture(scope="module")
def speech():
    return load_corpus(None, size="smoke", seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, speech):
    """A face set of 3 train and 2 test identities, one clip each, made twice in two folders."""
    F.SIZES["tiny"] = {"train": 3, "test": 2, "clips": 1, "max_seconds": 3.5, "speech": "smoke"}
    try:
        roots = [tmp_path_factory.mktemp(f"faces{k}") for k in range(2)]
        yield [F.generate_faces(r, "tiny", seed=0, workers=1, speech=speech) for r in roots]
    finally:
        del F.SIZES["tiny"]


def _english(speech, n=4):
    return [u for u in speech.select(language=["en-us", "en-gb"], split="train").items[:n]]


# ----------------------------------------------------------------------------- identities

def test_identities_differ_in_many_visible_parameters_and_are_deterministic():
    people = [draw_identity(i, seed=0, sex="FM"[i % 2], prefix="train") for i in range(24)]
    visible = ("face_w", "face_h", "skin", "hair", "hair_style", "eye_colour", "eye_gap", "eye_w", "brow_arch",
               "nose_w", "lip_colour", "lip_lo", "glasses", "beard", "background")
    for name in visible:
        assert len({getattr(p, name) for p in people}) > 1, name
    for a, b in zip(people, people[1:]):
        assert sum(getattr(a, n) != getattr(b, n) for n in visible) >= 10
    assert {p.hair_style for p in people} >= {"short", "long", "bob"} and {p.glasses for p in people} > {""}
    assert draw_identity(3, seed=0, sex="M", prefix="train") == people[3]
    assert draw_identity(3, seed=0, sex="M", prefix="test") != people[3]
    assert draw_identity(3, seed=1, sex="M", prefix="train") != people[3]
    assert dataclasses.replace(people[0]).from_params(people[0].params()) == people[0]


# ----------------------------------------------------------------------------- visemes

def test_every_phone_the_corpus_speaks_has_a_viseme(speech):
    phones = {p for u in speech for p, _, _ in u.phonemes}
    assert len(phones) > 150 and A.unknown_phones(phones) == set()
    assert A.phone_targets("_:") == [(A.CLOSED, A.DOMINANCE["sil"])] and A.phone_targets("m")[0][0][0] == 0
    (a, _), = A.phone_targets("'a")
    (i, _), = A.phone_targets("i:")
    (u, _), = A.phone_targets(",u:")
    assert a[0] > i[0] and i[1] > a[1] and u[2] > 0.9 > i[2]                 # open, spread, round
    assert [t[0][2] for t in A.phone_targets("'aU")] == [0.0, 0.7]          # a diphthong moves: a -> U
    assert A.unknown_phones(["Xq", "a"]) == {"Xq"}


def test_mouth_opens_for_open_vowels_and_closes_for_bilabials_and_silence(speech):
    opening = {"open": [], "bilabial": [], "sil": []}
    idn = draw_identity(0, seed=0, prefix="train")
    for utt in _english(speech):
        clip = F.render_clip(idn, utt.phonemes, utt.duration, seed=1)
        assert len(clip.frames) == int(np.ceil(utt.duration * 25)) == len(clip.mouth_open)
        labels = frame_phones(utt, 1 / 25, len(clip.frames))
        for phone, gap in zip(labels, clip.mouth_open):
            kind = "open" if phone in ("a", "A:", "aa", "aI", "aU", "V") else \
                "bilabial" if phone in ("p", "b", "m") else "sil" if phone == "sil" else None
            if kind:
                opening[kind].append(gap)
    means = {k: np.mean(v) for k, v in opening.items()}
    assert min(len(v) for v in opening.values()) >= 5, {k: len(v) for k, v in opening.items()}
    assert means["open"] > 5.0 and means["open"] > 2.5 * means["bilabial"] and means["open"] > 3 * means["sil"], means


def test_coarticulation_is_smooth_and_anticipates():
    phones = (("_", 0.0, 0.3), ("'a", 0.3, 0.5), ("m", 0.5, 0.58), ("'a", 0.58, 0.8), ("_", 0.8, 1.2))
    t = np.arange(0, 1.2, 0.005)
    jaw = A.mouth_track(phones, t, 1.2)[:, 0]
    assert jaw[t < 0.15].max() < 0.05 and jaw[np.abs(t - 0.54) < 0.01].max() < 0.35 < jaw[np.abs(t - 0.4) < 0.01].min()
    assert np.abs(np.diff(jaw)).max() < 0.1                                  # no jumps at 200 Hz
    assert jaw[np.abs(t - 0.27) < 0.005].mean() > 0.1                       # opens before the vowel starts


def test_blinks_head_motion_and_light_tracks():
    t = A.frame_times(A.n_frames(20.0))
    blink = A.blink_track(t, np.random.default_rng(0))
    starts = np.nonzero(np.diff((blink > 0.5).astype(int)) == 1)[0]
    assert 4 <= len(starts) <= 10 and blink.max() == 1.0 and 2 <= np.sum(blink > 0.5) / len(starts) <= 4
    pose = A.head_pose(t, np.random.default_rng(0))
    assert np.abs(pose[:, 0]).max() < 7 and np.abs(np.diff(pose[:, 2])).max() < 0.5 and pose[:, 2].std() > 0.2
    light = A.lighting_track(t, np.random.default_rng(0))
    assert light.shape == (len(t), 5) and np.all((light[:, :3] > 0.6) & (light[:, :3] < 1.4))
    assert light[:, 0].std() > 0.005


# ----------------------------------------------------------------------------- landmarks and pixels

def _blue_eyed(k: int, seed: int, prefix: str):
    """An identity with pure blue irises: no skin, lash or lip colour is that blue."""
    return dataclasses.replace(draw_identity(k, seed=seed, prefix=prefix), eye_colour=(0, 90, 255))


def _blue(pixels) -> np.ndarray:
    p = pixels.astype(int)
    return p[..., 2] - p[..., 0] > 80


def _around(img, xy, r: int = 1) -> np.ndarray:
    x, y = np.round(xy).astype(int)
    return img[y - r:y + r + 1, x - r:x + r + 1]


def test_landmarks_land_on_the_mouth_and_eyes_they_name():
    for k in range(6):
        idn = _blue_eyed(k, 3, "train")
        renderer = FaceRenderer(idn)
        img, lm = renderer.render((1.0, 0.2, 0.0, 0.6))
        assert lm.shape == (68, 2) and lm.dtype == np.float32
        cx, cy = np.round((lm[62] + lm[66]) / 2).astype(int)
        assert np.abs(img[cy, cx].astype(int) - CAVITY).max() < 12             # inside the open mouth
        assert G.mouth_opening(lm) > 8
        closed, lm0 = renderer.render((0, 0, 0, 0))
        assert G.mouth_opening(lm0) < 0.1
        x0, y0 = np.round(lm0[G.MOUTH_CORNERS, :].mean(0)).astype(int)
        assert np.linalg.norm(closed[y0, x0].astype(int) - idn.skin) > 30     # lips, not skin
        for centre in G.eye_centres(lm):
            assert _blue(_around(img, centre, 2)).sum() >= 3                    # the iris
        x0, x1, y0 = int(idn.cx - 0.8 * idn.face_w), int(idn.cx + 0.8 * idn.face_w), int(idn.eye_y)
        ys, xs = np.nonzero(_blue(img[y0 - 6:y0 + 7, x0:x1 + 1]))                # blue only at the eyes
        far = np.linalg.norm(np.stack([xs + x0, ys + y0 - 6], 1)[:, None] - G.eye_centres(lm)[None], axis=-1)
        assert far.min(axis=1).max() < 4.5


def test_blinks_close_the_eyes():
    for k in range(6):
        renderer = FaceRenderer(_blue_eyed(k, 5, "test"))
        for blink, shut in ((0.0, False), (0.3, False), (0.97, True), (1.0, True)):
            img, lm = renderer.render(blink=blink)
            seen = [_blue(_around(img, centre, 3)).sum() for centre in G.eye_centres(lm)]
            assert (max(seen) == 0) if shut else min(seen) >= 3, (k, blink, seen)
        upper, lower = lm[[37, 38, 43, 44], 1], lm[[41, 40, 47, 46], 1]
        assert np.abs(upper - lower).max() < 0.6                              # the lids meet


def test_landmarks_follow_the_head_and_register_the_face(speech):
    """Fig. 3's registration: a similarity from a frame's eye and nose landmarks to the
    canonical ones maps the frame back onto the canonical rendering."""
    utt = _english(speech, 1)[0]
    idn = draw_identity(2, seed=0, prefix="train")
    clip = F.render_clip(idn, utt.phonemes, utt.duration, seed=4)
    anim = A.animate(utt.phonemes, utt.duration, seed=4)
    canon = G.face_landmarks(idn, anim.mouth, anim.blink)
    moved = np.einsum("tij,tnj->tni", clip.affine[:, :, :2], canon) + clip.affine[:, None, :, 2]
    np.testing.assert_allclose(clip.landmarks, moved, atol=1e-3)
    assert np.ptp(clip.landmarks[:, G.NOSE_TIP], axis=0).max() > 1.0       # the head moves
    renderer = FaceRenderer(idn)
    face = (slice(30, 100), slice(30, 82))
    for k in np.linspace(0, len(clip.frames) - 1, 5).astype(int):
        m, _ = cv2.estimateAffinePartial2D(clip.landmarks[k, G.REGISTRATION], canon[k, G.REGISTRATION])
        back = cv2.warpAffine(clip.frames[k], m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        truth = renderer.image(anim.mouth[k], anim.blink[k], anim.gaze[k])
        registered, raw = _corr(back[face], truth[face]), _corr(clip.frames[k][face], truth[face])
        assert registered > 0.95 and registered > raw, (k, registered, raw)
    assert G.canonical_landmarks().shape == (68, 2) and average_identity().id == "canonical"


def _corr(a, b) -> float:
    a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(float).ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


# ----------------------------------------------------------------------------- the cached set

def test_train_and_test_hold_out_identities_voices_and_sentences(tiny):
    faces = tiny[0]
    train, test = faces.split("train"), faces.split("test")
    assert len(train) == 3 and len(test) == 2 and len(faces.identities) == 5
    assert not {c.identity for c in train} & {c.identity for c in test}
    assert {c.speaker for c in test} <= set(F.TEST_SPEAKERS) and not {c.speaker for c in train} & set(F.TEST_SPEAKERS)
    assert not {c.text for c in train} & {c.text for c in test}
    with pytest.raises(ValueError, match="unknown face set split"):
        faces.split("dev")


def test_clips_load_with_audio_and_are_identical_across_runs(tiny, speech):
    a, b = tiny
    assert [sha256(c.path) for c in a] == [sha256(c.path) for c in b]
    clip = a.split("test")[0]
    data = clip.load()
    t = clip.n_frames
    assert data.frames.shape == (t, SIZE, SIZE, 3) and data.frames.dtype == np.uint8
    assert t == np.ceil(clip.duration * 25)
    assert data.landmarks.shape == (t, 68, 2) and data.affine.shape == (t, 2, 3) and data.mouth.shape == (t, 4)
    assert data.mouth_open.shape == data.blink.shape == (t,) and data.fps == 25
    utt = next(u for u in speech if u.id == clip.utterance)
    np.testing.assert_allclose(data.audio, utt.load(), atol=1e-4)
    assert data.sr == utt.sr and clip.phonemes == utt.phonemes
    again = F.render_clip(a.identities[clip.identity], clip.phonemes, clip.duration, seed=clip.seed)
    assert np.array_equal(again.frames, data.frames) and np.array_equal(again.landmarks, data.landmarks)


def test_cache_repairs_deleted_and_corrupted_clips(tiny, speech):
    faces = tiny[0]
    gone, bad = faces.clips[0], faces.clips[1]
    digests = {c.id: sha256(c.path) for c in faces}
    gone.path.unlink()
    bad.path.write_bytes(b"not a zip")
    with pytest.raises(Exception, match="cannot read this face clip"):
        bad.load()
    again = F.generate_faces(faces.root, "tiny", seed=0, workers=1, speech=speech)
    assert {c.id: sha256(c.path) for c in again} == digests
    assert len(again.by_identity(gone.identity)) == 1
