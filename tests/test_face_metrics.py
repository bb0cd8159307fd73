"""voicebook.face_metrics: PSNR by hand, SSIM against skimage, sharpness falls with blur, the
mouth crop, mouth opening from pixels, lip-sync correlation and offset recovery."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from voicebook import face_metrics as fm
from voicebook.faces_prep import CANONICAL_112


def test_psnr_hand_values():
    a = np.zeros((4, 4, 3))
    assert fm.psnr(a, a + 0.1) == pytest.approx(20.0)                     # 10 log10(1 / 0.01)
    u = np.full((4, 4, 3), 100, np.uint8)
    v = u.copy()
    v[1, 2, 0] = 151                                                       # one value off by 51 of 48
    assert fm.psnr(u, v) == pytest.approx(10 * math.log10(255 ** 2 / (51 ** 2 / 48)))
    assert fm.psnr(u, u) == math.inf
    video = np.stack([a, a])
    assert fm.psnr(video, np.stack([a + 0.1, a + 0.01])) == pytest.approx((20.0 + 40.0) / 2)   # mean over frames
    with pytest.raises(ValueError, match="uint8"):
        fm.psnr(u, u.astype(float))


def test_float_frames_left_in_0_255_are_refused_not_scored():
    """``frame.astype(float)`` keeps 0-255: scored with peak 1 it gave PSNR -13.9 dB for a pair
    at 34.2 dB. Such frames, and NaN, are refused with the range that was found."""
    img = data.astronaut()[:64, :64]
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    assert fm.psnr(img, noisy) == pytest.approx(fm.psnr(img / 255.0, noisy / 255.0))
    for fn, args in ((fm.psnr, (img.astype(float), noisy.astype(float))),
                     (fm.ssim, (img.astype(float), noisy.astype(float))), (fm.sharpness, (img.astype(float),))):
        with pytest.raises(ValueError, match=r"float images must be in \[0, 1\], got values in \[0, \d+\]"):
            fn(*args)
    with pytest.raises(ValueError, match=r"psnr\(est\): the image holds NaN"):
        fm.psnr(img / 255.0, np.full(img.shape, np.nan))


def test_ssim_is_one_on_itself_and_matches_skimage():
    img = data.astronaut()[100:228, 150:278]
    assert fm.ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(img, noisy, channel_axis=-1, data_range=255)
    assert fm.ssim(img, noisy) == pytest.approx(ref) and ref < 0.9
    f, g = img / 255.0, noisy / 255.0
    assert fm.ssim(f, g) == pytest.approx(structural_similarity(f, g, channel_axis=-1, data_range=1.0))


def test_sharpness_falls_with_blur():
    img = data.astronaut()[::4, ::4]
    soft = cv2.GaussianBlur(img, (0, 0), 1.5)
    assert fm.sharpness(soft) < 0.5 * fm.sharpness(img)
    assert fm.sharpness(img) == pytest.approx(fm.sharpness(img / 255.0))   # same scale for uint8 and float
    assert fm.sharpness(np.stack([img, soft])) == pytest.approx((fm.sharpness(img) + fm.sharpness(soft)) / 2)


def test_mouth_points_and_crop_on_the_canonical_face():
    mouth = fm.mouth_points_from_eyes_nose(CANONICAL_112)
    centre = mouth[:2].mean(0)
    assert centre[0] == pytest.approx(56.0) and 80 < centre[1] < 95        # below the nose (66.5), on the midline
    assert mouth[0, 0] < 56 < mouth[1, 0] and mouth[2, 1] < centre[1] < mouth[3, 1]
    frames = np.zeros((5, 112, 112, 3), np.uint8)
    crop = fm.mouth_crop(frames, mouth)
    x0, y0, x1, y1 = fm.mouth_box(mouth, (112, 112))
    assert crop.shape == (5, y1 - y0, x1 - x0, 3) and 20 < x1 - x0 < 60
    assert fm.mouth_box([[0, 0], [500, 500]], (112, 112)) == (0, 0, 112, 112)  # clipped


def _talking(openings: np.ndarray) -> np.ndarray:
    """Grey faces whose dark mouth ellipse opens by ``openings`` (0..1) -> (T, 112, 112, 3) uint8."""
    frames = np.full((len(openings), 112, 112, 3), 180, np.uint8)
    for f, o in zip(frames, openings):
        cv2.ellipse(f, (56, 87), (14, max(1, int(round(1 + 10 * o)))), 0, 0, 360, (40, 20, 20), -1)
    return frames


def _smooth_random(n: int, seed: int) -> np.ndarray:
    x = np.convolve(np.random.default_rng(seed).uniform(0, 1, n + 4), np.ones(5) / 5, mode="valid")
    return (x - x.min()) / (x.max() - x.min())


def test_mouth_opening_follows_the_drawn_mouth():
    o = _smooth_random(60, 0)
    measured = fm.mouth_opening(_talking(o), fm.mouth_points_from_eyes_nose(CANONICAL_112))
    assert measured.shape == (60,)
    assert fm.lip_sync_correlation(measured, o) > 0.95


def test_lip_sync_correlation():
    x = np.random.default_rng(0).standard_normal(50)
    assert fm.lip_sync_correlation(x, x) == pytest.approx(1.0)
    assert fm.lip_sync_correlation(-2 * x + 3, x) == pytest.approx(-1.0)
    assert fm.lip_sync_correlation(np.ones(50), x) == 0.0


@pytest.mark.parametrize("lag", [3, 0, -5])
def test_sync_offset_recovers_a_known_shift(lag):
    base = np.random.default_rng(1).standard_normal(120)
    true = base[10:90]
    generated = base[10 - lag:90 - lag]                                    # generated[t] = true[t - lag]
    k, corr = fm.sync_offset(generated, true, max_offset=8)
    assert k == lag and corr.shape == (17,) and corr[8 + lag] == pytest.approx(1.0)


def test_offset_recovered_from_video_frames():
    o = _smooth_random(100, 2)
    mouth = fm.mouth_points_from_eyes_nose(CANONICAL_112)
    true = fm.mouth_opening(_talking(o[10:90]), mouth)
    late = fm.mouth_opening(_talking(o[8:88]), mouth)                     # 2 frames late
    assert fm.sync_offset(late, true, max_offset=6)[0] == 2
