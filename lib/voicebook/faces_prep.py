"""Face detection, landmarks on real photos, and similarity registration (Chung et al. 2017, section 2).

The paper tracks faces with DLIB's HOG detector, finds landmarks with Kazemi & Sullivan's
regression trees, and registers every face to a canonical face by a similarity transform
(scale, rotation, translation) fitted to the landmarks of the eyes and the nose only: "not the
mouth, as the mouth movements contain the information that we wish to capture" (Fig. 3).

On real photos :func:`landmarks` does the same with ``method="dlib"`` (the default when the
``dlib-bin`` wheel is installed, as voicebook's pins do): DLIB's HOG frontal-face detector and
its 5-point Kazemi & Sullivan shape predictor (the two corners of each eye and the base of the
nose; the model file ships inside the ``face-recognition-models`` package, nothing is
downloaded). The eye points are the means of each eye's two corners, the nose point is the
measured base of the nose. Where HOG finds no face, OpenCV's Haar box is used instead.

``method="haar"`` (the fallback without dlib) uses OpenCV only: the face and eyes from the Haar
cascades that ship inside the opencv-python-headless 4.x wheel, and, since no nose cascade
ships, a nose *estimated* from the eyes with canonical proportions (on the perpendicular
bisector of the eye segment, ``NOSE_RATIO`` interocular distances below the eye midpoint, as
in the 112 x 112 five-point face template). Such a nose carries no information the eyes do
not: that registration is in effect a two-point one.

Points are ``(n_points, 2)`` arrays of pixel coordinates ``(x, y)``, ``x`` to the right, ``y``
down, in the order of :data:`EYES_NOSE`: the image-left eye (the subject's right eye), the
image-right eye, the nose (tip on generated faces, base from DLIB's 5-point model). Images are ``(H, W, 3)`` RGB, uint8 or float in [0, 1].
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

__all__ = ["NoFaceError", "EYES_NOSE", "NOSE_RATIO", "CANONICAL_112", "detect_face", "detect_eyes",
           "estimate_nose", "have_dlib", "landmarks", "eyes_nose_from_68", "similarity_from_points", "apply_similarity", "warp", "register"]

#: Names of the three registration points, in the order every function here uses.
EYES_NOSE = ("left_eye", "right_eye", "nose")
#: Nose tip below the eye midpoint, in interocular distances (the 5-point template: 20.1 / 35.2).
NOSE_RATIO = 0.57
#: The canonical face (Fig. 3 middle) in a 112 x 112 crop: eyes 36 px apart on row 46, nose
#: on the centre line; leaves room for the mouth (about row 87) and the chin.
CANONICAL_112 = np.array([[38.0, 46.0], [74.0, 46.0], [56.0, 46.0 + NOSE_RATIO * 36.0]])


class NoFaceError(ValueError):
    """No face, or no pair of eyes, was found where one was expected."""


@functools.lru_cache(maxsize=4)
def _cascade(name: str) -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no Haar cascades (5.0 dropped them): "
                           "install opencv-python-headless==4.14.0.94, voicebook's pin")
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path} (needs opencv-python-headless 4.x)")
    return cascade


@functools.lru_cache(maxsize=1)
def _dlib():
    """DLIB's HOG face detector and 5-point shape predictor, or None where dlib is not installed."""
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        return None
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location()), dlib)


def have_dlib() -> bool:
    """True if :func:`landmarks` can use DLIB (``dlib-bin`` and ``face-recognition-models``)."""
    return _dlib() is not None


def _gray(image, name: str) -> np.ndarray:
    """RGB uint8 or float [0, 1] ``(H, W, 3)`` (or grey ``(H, W)``) -> uint8 grey."""
    x = np.asarray(image)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3) or min(x.shape[:2]) < 24:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB image of at least 24 x 24, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = (np.clip(np.nan_to_num(x.astype(np.float64)), 0, 1) * 255 + 0.5).astype(np.uint8)
    return x if x.ndim == 2 else cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)


def detect_face(image, name: str = "image", min_size: int = 24) -> tuple[int, int, int, int]:
    """The largest frontal face in ``image`` -> box ``(x, y, w, h)`` in pixels (Haar cascade,
    ``haarcascade_frontalface_default``). Raises :class:`NoFaceError` naming ``name``."""
    gray = cv2.equalizeHist(_gray(image, name))
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    if len(faces) == 0:
        raise NoFaceError(f"{name}: no frontal face found (OpenCV Haar cascade, image {gray.shape[1]} x "
                          f"{gray.shape[0]}, faces of at least {min_size} px)")
    x, y, w, h = max(faces, key=lambda b: b[2] * b[3])
    return int(x), int(y), int(w), int(h)


def _best_eye_pair(eyes: np.ndarray, w: int) -> np.ndarray | None:
    """Of the eye candidates ``(k, 4)`` (boxes in face-box coordinates), the pair most like two
    eyes: side by side (0.25 - 0.75 box widths apart, rows within 0.15 widths), one on each side
    of the box centre, similar sizes -> ``(2, 2)`` centres ordered by x, or None."""
    centres = eyes[:, :2] + eyes[:, 2:] / 2.0
    best, best_score = None, np.inf
    for i in range(len(eyes)):
        for j in range(i + 1, len(eyes)):
            (a, b) = sorted((centres[i], centres[j]), key=lambda p: p[0])
            dx, dy = b[0] - a[0], abs(b[1] - a[1])
            if not (0.25 * w <= dx <= 0.75 * w and dy <= 0.15 * w and a[0] < w / 2 < b[0]):
                continue
            score = abs((a[0] + b[0]) / 2 - w / 2) / w + dy / w + abs(eyes[i, 2] - eyes[j, 2]) / w
            if score < best_score:
                best, best_score = np.array([a, b]), score
    return best


def detect_eyes(image, box=None, name: str = "image") -> np.ndarray:
    """Both eye centres -> ``(2, 2)`` pixels ``(x, y)``, image-left eye first (Haar eye cascade in
    the upper 60 % of ``box``; default: :func:`detect_face`). Raises :class:`NoFaceError`."""
    gray = _gray(image, name)
    x, y, w, h = detect_face(image, name) if box is None else box
    roi = cv2.equalizeHist(np.ascontiguousarray(gray[y:y + int(0.6 * h), x:x + w]))
    min_eye = max(8, w // 10)
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(roi, scaleFactor=1.05, minNeighbors=3,
                                                            minSize=(min_eye, min_eye))
    pair = _best_eye_pair(np.asarray(eyes, dtype=np.float64).reshape(-1, 4), w)
    if pair is None:
        raise NoFaceError(f"{name}: found a face at (x={x}, y={y}, w={w}, h={h}) but not two eyes in it "
                          f"({len(eyes)} eye candidates; the eye cascade needs a frontal, upright face)")
    return pair + np.array([x, y], dtype=np.float64)


def estimate_nose(eyes) -> np.ndarray:
    """Nose tip from the two eye centres ``(2, 2)``: ``NOSE_RATIO`` interocular distances along
    the perpendicular of the eye segment (towards +y for an upright face) -> ``(2,)``."""
    eyes = np.asarray(eyes, dtype=np.float64)
    d = eyes[1] - eyes[0]
    down = np.array([-d[1], d[0]])                 # d rotated by +90 degrees in image axes (y down)
    return eyes.mean(axis=0) + NOSE_RATIO * down


def _dlib_points(gray: np.ndarray, name: str) -> np.ndarray:
    """Eyes and nose base from DLIB's 5-point model on the largest HOG face (else the Haar box)."""
    detector, predictor, dlib = _dlib()
    gray = np.ascontiguousarray(gray)
    faces = detector(gray, 1)
    if len(faces):
        box = max(faces, key=lambda r: r.area())
    else:
        try:
            x, y, w, h = detect_face(gray, name)
        except NoFaceError as e:
            raise NoFaceError(f"{e}; DLIB's HOG detector found none either") from None
        box = dlib.rectangle(x, y, x + w, y + h)
    p = np.array([(q.x, q.y) for q in predictor(gray, box).parts()], dtype=np.float64)   # (5, 2)
    eyes = sorted([p[0:2].mean(0), p[2:4].mean(0)], key=lambda e: e[0])                  # image-left first
    return np.vstack([*eyes, p[4]])


def landmarks(image, name: str = "image", method: str = "auto") -> np.ndarray:
    """Eyes and nose of the largest face in a real photo -> ``(3, 2)`` pixels, in :data:`EYES_NOSE`
    order. ``method``: ``"dlib"`` (HOG + 5-point shape predictor: the nose is measured),
    ``"haar"`` (OpenCV cascades, nose from :func:`estimate_nose`), or ``"auto"``: dlib where it
    is installed. Raises :class:`NoFaceError` naming ``name``."""
    if method == "auto":
        method = "dlib" if have_dlib() else "haar"
    if method == "dlib":
        if not have_dlib():
            raise RuntimeError("landmarks(method='dlib') needs dlib-bin and face-recognition-models "
                               "(voicebook's pins: pip install -c constraints.txt -e .)")
        return _dlib_points(_gray(image, name), name)
    if method != "haar":
        raise ValueError(f"landmarks: method must be 'auto', 'dlib' or 'haar', got {method!r}")
    eyes = detect_eyes(image, None, name)
    return np.vstack([eyes, estimate_nose(eyes)])


def eyes_nose_from_68(points) -> np.ndarray:
    """The registration points from 68 iBUG 300-W landmarks ``(..., 68, 2)`` (0-based: eyes 36-41
    and 42-47, the image-left one first; nose tip 30) -> ``(..., 3, 2)`` in :data:`EYES_NOSE`
    order: the two eye centres (means of their six contour points) and the nose tip."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (68, 2):
        raise ValueError(f"eyes_nose_from_68: expected (..., 68, 2) landmarks, got shape {p.shape}")
    return np.stack([p[..., 36:42, :].mean(-2), p[..., 42:48, :].mean(-2), p[..., 30, :]], axis=-2)


def similarity_from_points(src, dst) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping ``src`` onto ``dst`` (``(n, 2)`` each,
    n >= 2) -> the ``2 x 3`` matrix ``M`` with ``dst ~ M @ [x, y, 1]``. Rotation, isotropic
    scale and translation only; no reflection, no shear."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"similarity_from_points: expected two (n >= 2, 2) point sets, got {src.shape}, {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum() / len(src)
    if var < 1e-12:
        raise ValueError("similarity_from_points: the source points coincide; no transform is defined")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ flip @ vt
    scale = np.trace(np.diag(sig) @ flip) / var
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def apply_similarity(matrix, points) -> np.ndarray:
    """``(n, 2)`` points through a ``2 x 3`` matrix -> ``(n, 2)``."""
    p = np.asarray(points, dtype=np.float64)
    return p @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def warp(image, matrix, out_shape: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """``image`` ``(H, W, C)`` through ``matrix`` (source -> output pixels) into ``out_shape``
    ``(h, w)``, bilinear; float images stay float, uint8 stays uint8."""
    x = np.asarray(image)
    work = x if x.dtype in (np.uint8, np.float32) else x.astype(np.float32)
    out = cv2.warpAffine(work, np.asarray(matrix, dtype=np.float64), (int(out_shape[1]), int(out_shape[0])),
                         flags=cv2.INTER_LINEAR, borderMode=border)
    return out.reshape(int(out_shape[0]), int(out_shape[1]), *x.shape[2:])


def register(image, points, canonical_points=CANONICAL_112, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Spatial registration (section 2, Fig. 3): the similarity taking ``points`` (eyes and nose,
    ``(3, 2)``; any corresponding set works) to ``canonical_points``, applied to ``image``
    -> ``(registered (size, size, 3), M (2, 3))``. Pass eyes and nose only, never the mouth."""
    m = similarity_from_points(points, canonical_points)
    return warp(image, m, (size, size)), m
