"""voicebook.faces_prep (Chung et al. section 2, Fig. 3): similarity registration recovers a known
transform; DLIB and Haar detection, eye and nose landmarks and registration on a real photo; no face -> NoFaceError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from voicebook import faces_prep as fp


def _similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _pattern(size: int = 112) -> np.ndarray:
    """A smooth colour image (blobs and gradients) with no flat regions."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.4 * np.sin(5 * xx + 2 * yy), 0.5 + 0.4 * np.cos(3 * yy - 4 * xx * yy),
                    np.exp(-((xx - 0.5) ** 2 + (yy - 0.6) ** 2) / 0.05)], -1)
    return img.astype(np.float32)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def test_similarity_from_points_recovers_a_known_transform():
    m = _similarity(1.37, 23.0, -14.5, 40.25)
    src = fp.CANONICAL_112 + np.array([3.0, -2.0])
    dst = fp.apply_similarity(m, src)
    est = fp.similarity_from_points(src, dst)
    np.testing.assert_allclose(est, m, atol=1e-6)
    np.testing.assert_allclose(fp.apply_similarity(est, src), dst, atol=1e-6)
    many = np.random.default_rng(0).uniform(0, 112, (20, 2))          # least squares, more points
    np.testing.assert_allclose(fp.similarity_from_points(many, fp.apply_similarity(m, many)), m, atol=1e-6)


def test_similarity_is_least_squares_and_rejects_degenerate_points():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (30, 2))
    m = _similarity(0.8, -40.0, 5.0, 7.0)
    dst = fp.apply_similarity(m, src) + rng.normal(0, 0.5, src.shape)
    est = fp.similarity_from_points(src, dst)
    err = ((fp.apply_similarity(est, src) - dst) ** 2).sum()
    for dm in (np.array([[1e-3, 0, 0], [0, 1e-3, 0]]), np.array([[0, 0, 0.05], [0, 0, 0]])):
        assert err < ((fp.apply_similarity(est + dm, src) - dst) ** 2).sum()   # a local minimum
    with pytest.raises(ValueError, match="coincide"):
        fp.similarity_from_points(np.ones((3, 2)), np.zeros((3, 2)))


def test_register_undoes_a_known_warp_of_an_image():
    img = _pattern()
    m = _similarity(1.6, 17.0, 30.0, 10.0)
    warped = fp.warp(img, m, (240, 240))
    points = fp.apply_similarity(m, fp.CANONICAL_112)                # where the canonical points went
    back, est = fp.register(warped, points)
    np.testing.assert_allclose(fp.apply_similarity(est, points), fp.CANONICAL_112, atol=1e-6)
    inner = np.s_[8:-8, 8:-8]
    assert np.abs(back[inner] - img[inner]).mean() < 0.01             # bilinear resampling twice
    assert np.abs(back[inner] - img[inner]).max() < 0.1


def test_detection_and_landmarks_on_a_real_photo(astronaut):
    x, y, w, h = fp.detect_face(astronaut, "astronaut")
    pts = fp.landmarks(astronaut, "astronaut")
    assert pts.shape == (3, 2)
    left, right, nose = pts
    for p in (left, right, nose):
        assert x <= p[0] <= x + w and y <= p[1] <= y + h
    assert left[0] < x + w / 2 < right[0]                              # one eye each side, in order
    assert max(left[1], right[1]) < y + 0.55 * h < nose[1]             # eyes high, nose below them
    assert 0.3 * w < right[0] - left[0] < 0.7 * w


def test_registered_photo_has_its_eyes_at_the_canonical_positions(astronaut):
    pts = fp.landmarks(astronaut)
    face, m = fp.register(astronaut, pts)
    assert face.shape == (112, 112, 3) and face.dtype == np.uint8 and m.shape == (2, 3)
    # a least-squares fit: three measured points are not exactly similar to the canonical ones
    # (measured: 2.3 px at most with DLIB's nose base; exact with the Haar path's estimated nose)
    np.testing.assert_allclose(fp.apply_similarity(m, pts), fp.CANONICAL_112, atol=3.0)
    haar = fp.landmarks(astronaut, method="haar")
    np.testing.assert_allclose(fp.apply_similarity(fp.register(astronaut, haar)[1], haar), fp.CANONICAL_112, atol=1e-6)
    found = fp.detect_eyes(face, (0, 0, 112, 112), "registered astronaut")   # found again, in the crop
    np.testing.assert_allclose(found, fp.CANONICAL_112[:2], atol=3.0)


def test_registration_undoes_a_rotation_of_the_photo(astronaut):
    upright, _ = fp.register(astronaut, fp.landmarks(astronaut))
    rot = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 10, 1.1), (512, 512))
    face, _ = fp.register(rot, fp.landmarks(rot, "rotated astronaut"))
    found = fp.detect_eyes(face, (0, 0, 112, 112), "registered rotated astronaut")
    np.testing.assert_allclose(found, fp.CANONICAL_112[:2], atol=3.0)
    assert np.abs(face.astype(float) - upright).mean() < 20            # same face, same place


@pytest.mark.skipif(not fp.have_dlib(), reason="dlib-bin is not installed")
def test_dlib_points_are_measured_and_follow_the_face(astronaut):
    pts = fp.landmarks(astronaut, "astronaut", method="dlib")
    haar = fp.landmarks(astronaut, "astronaut", method="haar")
    np.testing.assert_allclose(pts[:2], haar[:2], atol=4.0)           # two detectors agree on the eyes
    assert np.linalg.norm(pts[2] - fp.estimate_nose(pts[:2])) > 3.0    # the nose is measured, not implied by the eyes
    m = cv2.getRotationMatrix2D((256, 256), -8, 0.9)                   # a known similarity of the photo
    moved = fp.landmarks(cv2.warpAffine(astronaut, m, (512, 512)), "moved astronaut", method="dlib")
    np.testing.assert_allclose(moved, fp.apply_similarity(m, pts), atol=3.0)
    with pytest.raises(ValueError, match="method must be 'auto', 'dlib' or 'haar', got 'hog'"):
        fp.landmarks(astronaut, method="hog")


def test_no_face_raises_a_clear_error():
    for method in ("auto", "haar"):
        with pytest.raises(fp.NoFaceError, match="blank frame: no frontal face"):
            fp.landmarks(np.full((120, 160, 3), 0.5, np.float32), "blank frame", method=method)
    assert issubclass(fp.NoFaceError, ValueError)
    with pytest.raises(ValueError, match="expected an"):
        fp.detect_face(np.zeros((10, 10, 3), np.uint8))


def test_eyes_nose_from_68_landmarks():
    pts = np.zeros((2, 68, 2))
    pts[:, 36:42] = [10.0, 20.0]
    pts[:, 42:48] = [30.0, 21.0]
    pts[:, 30] = [20.0, 32.0]
    pts[1, 36, 0] = 16.0                                               # one contour point moved: the mean follows
    got = fp.eyes_nose_from_68(pts)
    assert got.shape == (2, 3, 2)
    np.testing.assert_allclose(got[0], [[10, 20], [30, 21], [20, 32]])
    np.testing.assert_allclose(got[1, 0], [11, 20])
    with pytest.raises(ValueError, match="68, 2"):
        fp.eyes_nose_from_68(np.zeros((5, 2)))


def test_an_opencv_without_haar_cascades_is_named(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "CascadeClassifier")
    fp._cascade.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"no Haar cascades .*opencv-python-headless==4\.14"):
            fp.detect_face(np.zeros((64, 64, 3), np.uint8), "blank")
    finally:
        fp._cascade.cache_clear()


def test_without_dlib_the_haar_path_is_used_and_dlib_asked_for_by_name_says_what_to_install(astronaut, monkeypatch):
    monkeypatch.setattr(fp, "_dlib", lambda: None)                   # as on a machine without dlib-bin
    assert not fp.have_dlib()
    np.testing.assert_array_equal(fp.landmarks(astronaut), fp.landmarks(astronaut, method="haar"))
    with pytest.raises(RuntimeError, match="needs dlib-bin and face-recognition-models"):
        fp.landmarks(astronaut, method="dlib")
