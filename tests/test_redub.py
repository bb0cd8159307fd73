"""voicebook.redub (Chung et al. section 4.3, Fig. 12): similarity alignment of a generated face,
the lower-face mask, Poisson blending that changes the mouth and leaves the eyes alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from voicebook import redub
from voicebook.face_metrics import psnr
from voicebook.faces_prep import CANONICAL_112, apply_similarity, register, warp


def _frame(h: int = 180, w: int = 220, mouth=(150, 60, 60), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A drawn face on a textured background -> (uint8 frame, eyes + nose (3, 2))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([90 + 40 * np.sin(xx / 9.0), 110 + 30 * np.cos(yy / 7.0), 130 + 20 * np.sin((xx + yy) / 11.0)], -1)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    cx, cy, d = w // 2, h // 2 - 10, 40                                    # eye midpoint, interocular distance
    cv2.ellipse(img, (cx, cy + 25), (45, 62), 0, 0, 360, (200, 160, 140), -1)
    eyes = np.array([[cx - d / 2, cy], [cx + d / 2, cy]])
    for ex, ey in eyes:
        cv2.circle(img, (int(ex), int(ey)), 6, (40, 30, 30), -1)
    cv2.line(img, (cx, cy + 8), (cx, cy + 22), (150, 110, 100), 2)
    cv2.ellipse(img, (cx, cy + 45), (16, 6), 0, 0, 360, mouth, -1)
    return img, np.vstack([eyes, [cx, cy + 0.57 * d]])


def test_align_face_recovers_a_known_similarity():
    gen, _ = _frame(112, 112)
    gen_pts = CANONICAL_112
    a = np.deg2rad(-12)
    m = np.array([[1.4 * np.cos(a), -1.4 * np.sin(a), 40.0], [1.4 * np.sin(a), 1.4 * np.cos(a), 25.0]])
    target = warp(gen, m, (200, 240))
    warped, valid = redub.align_face(gen, gen_pts, apply_similarity(m, gen_pts), (200, 240))
    assert warped.shape == (200, 240, 3) and valid.shape == (200, 240)
    assert 0.3 < valid.mean() < 0.9                                          # the face covers part of the frame
    diff = np.abs(warped.astype(int) - target)[valid]
    assert diff.max() <= 1


def test_lower_face_mask_is_below_the_eyes():
    frame, pts = _frame()
    mask = redub.lower_face_mask(pts, frame.shape[:2])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    rows = np.nonzero(mask.any(axis=1))[0]
    assert rows.min() > pts[:2, 1].max() + 5                                 # starts just below the eyes
    mouth = (int(pts[2, 0]), int(pts[:2, 1].mean() + 45))
    assert mask[mouth[1], mouth[0]] == 255 and mask[int(pts[2, 1]), int(pts[2, 0])] == 255   # nose tip, mouth
    rotated = apply_similarity(cv2.getRotationMatrix2D((110.0, 90.0), 30, 1.0), pts)  # follows the face's roll
    assert not np.array_equal(redub.lower_face_mask(rotated, frame.shape[:2]), mask)


def test_blending_the_same_face_leaves_the_frame_unchanged():
    frame, pts = _frame()
    mask = redub.lower_face_mask(pts, frame.shape[:2])
    assert psnr(frame, redub.blend(frame, frame, mask)) > 35
    generated, _ = register(frame, pts)                                      # a 112 x 112 face, then back
    out = redub.redub_video(frame[None], pts[None], generated[None], CANONICAL_112)
    assert out.shape == (1, *frame.shape) and out.dtype == np.uint8
    assert psnr(frame, out[0]) > 35


def test_a_new_mouth_changes_the_lower_face_only():
    frame, pts = _frame(mouth=(150, 60, 60))
    green, _ = _frame(mouth=(30, 230, 30))
    generated, _ = register(green, pts)
    out = redub.redub_video(frame[None], pts[None], generated[None], CANONICAL_112)[0]
    above = int(pts[:2, 1].max()) + 3                                        # rows down to just below the eyes
    assert np.array_equal(out[:above], frame[:above])                        # eyes, forehead, background
    cx, my = int(pts[2, 0]), int(pts[:2, 1].mean() + 45)
    patch = np.s_[my - 3:my + 4, cx - 10:cx + 11]
    gained = out[patch].astype(int) - frame[patch]
    assert gained[..., 1].mean() > 60 and gained[..., 0].mean() < -40        # the mouth turned green


def test_blend_handles_a_mask_touching_the_border_and_float_frames():
    frame, pts = _frame()
    low = pts + np.array([0.0, 70.0])                                         # chin well below the frame
    mask = redub.lower_face_mask(low, frame.shape[:2])
    assert mask[-1].any()
    out = redub.blend(frame / 255.0, np.full(frame.shape, 0.5, np.float32), mask)
    assert out.shape == frame.shape and out.dtype == np.float64 and np.isfinite(out).all()
    assert np.array_equal(redub.blend(frame, frame, np.zeros(frame.shape[:2], np.uint8)), frame)


def test_redub_video_checks_lengths():
    frame, pts = _frame()
    with pytest.raises(ValueError, match="one to one"):
        redub.redub_video(np.stack([frame, frame]), pts[None], np.zeros((2, 112, 112, 3)), CANONICAL_112)
