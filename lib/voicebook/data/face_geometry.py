"""Where the parts of a generated face are: the 68 landmarks and the curves they sample
(chapter 5; Chung et al. section 2 and Fig. 3).

The geometry is parametric: an :class:`~voicebook.data.face_identity.Identity` plus a mouth
shape ``(jaw, spread, round, teeth)`` (each 0..1: jaw opening, lip spread, rounding/protrusion,
teeth shown; see :mod:`voicebook.data.face_animation`) and an eyelid closure (0 open .. 1 shut)
give the face contour, lids, brows and lips. :mod:`voicebook.data.face_render` draws these
curves and :func:`face_landmarks` samples them, so landmarks and pixels agree by construction.

Landmarks follow the 68-point iBUG 300-W order (0-based; "right" is the subject's right, the
left of the image): jaw 0-16 (chin 8), brows 17-26, nose 27-35 (bridge 27-30, tip 30, base
31-35), eyes 36-47 (each eye from its image-left corner: corner, two upper-lid points, corner,
two lower-lid points), outer lips 48-59 (corners 48 and 54, upper middle 51, lower middle 57),
inner lips 60-67 (corners 60 and 64, upper middle 62, lower middle 66). Fig. 3 registers faces
on the eyes and nose only: :data:`REGISTRATION`.

Units: pixels of the 112 x 112 canonical frame, x to the right, y down.
"""

from __future__ import annotations

import functools

import numpy as np

from .face_identity import Identity, average_identity

__all__ = ["N_LANDMARKS", "JAW", "CHIN", "RIGHT_BROW", "LEFT_BROW", "BROWS", "NOSE", "NOSE_TIP",
           "RIGHT_EYE", "LEFT_EYE", "EYES", "MOUTH", "OUTER_LIPS", "INNER_LIPS", "MOUTH_CORNERS",
           "UPPER_LIP", "LOWER_LIP", "REGISTRATION", "MAX_GAP", "face_landmarks", "canonical_landmarks",
           "mouth_opening", "eye_centres"]

N_LANDMARKS = 68
JAW, CHIN = tuple(range(0, 17)), 8
RIGHT_BROW, LEFT_BROW = tuple(range(17, 22)), tuple(range(22, 27))
BROWS = RIGHT_BROW + LEFT_BROW
NOSE, NOSE_TIP = tuple(range(27, 36)), 30
RIGHT_EYE, LEFT_EYE = tuple(range(36, 42)), tuple(range(42, 48))
EYES = RIGHT_EYE + LEFT_EYE
OUTER_LIPS, INNER_LIPS = tuple(range(48, 60)), tuple(range(60, 68))
MOUTH = OUTER_LIPS + INNER_LIPS
MOUTH_CORNERS = (48, 54)
UPPER_LIP, LOWER_LIP = (51, 62), (57, 66)      # (outer, inner) middle points
#: What Fig. 3's spatial registration aligns on: eyes and nose, never the mouth.
REGISTRATION = EYES + NOSE
MAX_GAP = 12.0                                 # inner-lip gap at jaw opening 1, pixels


# ----------------------------------------------------------------------------- geometry
# Every function broadcasts: per-frame values (jaw drop, blink, mouth) of shape (...) give
# curves of shape (..., n); drawing passes 0-d values, landmarks whole clips at once.

def _col(v) -> np.ndarray:
    """A per-frame value as an array with a trailing axis to broadcast against curve samples."""
    return np.asarray(v, np.float64)[..., None]


def _face_outline(idn: Identity, drop, phi: np.ndarray):
    """Face contour ``(x, y)`` at angles ``phi`` (0 top, pi chin, clockwise on screen): the
    lower face tapered by ``chin`` and lowered by ``drop`` pixels (jaw opening)."""
    low2 = np.maximum(-np.cos(phi), 0) ** 2    # 0 above the face centre .. 1 at the chin
    x = idn.cx + idn.face_w * np.sin(phi) * (1 - idn.chin * low2)
    y = idn.cy - idn.face_h * np.cos(phi) + _col(drop) * low2
    return np.broadcast_to(x, y.shape), y


_JAW_PHI = np.linspace(2 * np.pi - 1.42, 1.42, 17)
_FACE_PHI = np.linspace(0, 2 * np.pi, 72, endpoint=False)
_LOWER_PHI = np.linspace(np.pi / 2, 3 * np.pi / 2, 30)


def _eye_curves(idn: Identity, side: int, blink, u: np.ndarray):
    """``x``, upper and lower lid ``y`` at ``u`` in [-1, 1] across the eye on ``side`` (-1:
    image left); ``blink`` 0 open .. 1 shut (the lids meet just below the eye's middle line)."""
    lid = np.maximum(1 - u ** 2, 0) ** 0.8
    b, eh = _col(blink), idn.eye_h
    upper = idn.eye_y + lid * (-(1 - b) * eh + b * 0.45 * eh)
    lower = idn.eye_y + lid * 0.75 * eh * (1 - 0.3 * b)
    return idn.cx + side * idn.eye_gap + u * idn.eye_w, upper, lower


def _mouth_geometry(idn: Identity, mouth) -> dict:
    """Lip sizes (pixels, shape ``(...)``) for mouth shapes ``(..., 4)`` ``(jaw, spread, round,
    teeth)``: half-widths ``w`` (outer) and ``wi`` (opening), inner-lip gap ``gap`` split
    ``up``/``lo`` between the lips, lip thicknesses ``tu``/``tl``, chin ``drop``, ``teeth``."""
    m = np.asarray(mouth, np.float64)
    jaw, spread, rnd, teeth = m[..., 0], m[..., 1], m[..., 2], m[..., 3]
    gap = np.clip(jaw * idn.articulation, 0.0, 1.15) * MAX_GAP * (1 - 0.3 * rnd)
    w = idn.mouth_w * (1 + 0.15 * spread - 0.35 * rnd)
    return dict(w=w, wi=w * (0.86 - 0.3 * rnd), up=0.3 * gap, lo=0.7 * gap, gap=gap, teeth=teeth,
                tu=idn.lip_up * (1 + 0.35 * rnd), tl=idn.lip_lo * (1 + 0.3 * rnd), drop=0.75 * gap)


def _lip_profiles(u: np.ndarray):
    """Thickness profiles along the mouth: upper lip with a cupid's bow, fuller lower lip."""
    edge = np.maximum(1 - u ** 2, 0)
    bow = np.sqrt(edge) * (1 - 0.28 * np.exp(-(u / 0.14) ** 2)) + 0.12 * np.exp(-(u / 0.3) ** 2)
    return bow, edge ** 0.6


def _lip_curves(idn: Identity, g: dict, u: np.ndarray, profiles=None):
    """``x`` and ``y`` of the outer-upper, inner-upper, inner-lower and outer-lower lip at
    ``x = cx + u w`` (``u`` in [-1, 1]); the lips part over ``|x - cx| < wi``."""
    w = _col(g["w"])
    bow, fuller = profiles if profiles is not None else _lip_profiles(u)
    inner = np.sqrt(np.maximum(1 - (u * w / _col(g["wi"])) ** 2, 0))
    up, lo = _col(g["up"]) * inner, _col(g["lo"]) * inner
    my = idn.mouth_y
    return idn.cx + u * w, my - up - _col(g["tu"]) * bow, my - up, my + lo, my + lo + _col(g["tl"]) * fuller


def _brow_curve(idn: Identity, side: int, u: np.ndarray):
    """Brow centre line ``(x, y)`` at ``u`` in [-1, 1] (image left to right) over the eye on ``side``."""
    x = idn.cx + side * idn.eye_gap + u * idn.eye_w * 1.25 + side * 0.6
    inner = -u * side                                          # +1 at the inner end (towards the nose)
    arch = np.maximum(1 - (u - side * 0.35) ** 2, 0)
    return x, idn.eye_y - idn.brow_lift - idn.brow_arch * arch + idn.brow_tilt * inner * 0.5


_LIPS_TOP, _LIPS_BOTTOM = np.linspace(-1, 1, 7), np.array([2, 1, 0, -1, -2]) / 3
_LIPS_INNER = np.array([-1, -0.5, 0, 0.5, 1, 0.5, 0, -0.5])
_EYE_U, _BROW_U = np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3]), np.linspace(-1, 1, 5)


def face_landmarks(idn: Identity, mouth=(0, 0, 0, 0), blink=0.0) -> np.ndarray:
    """The 68 iBUG landmarks, float32 ``(..., 68, 2)``, of ``idn`` in the canonical frame for
    mouth shapes ``(..., 4)`` ``(jaw, spread, round, teeth)`` and eyelid closures ``(...)``
    (0 open .. 1 shut): one frame, or a whole clip at once."""
    g = _mouth_geometry(idn, mouth)
    batch = np.broadcast_shapes(g["w"].shape, np.shape(blink))
    out = np.empty(batch + (N_LANDMARKS, 2))
    out[..., JAW, 0], out[..., JAW, 1] = _face_outline(idn, g["drop"], _JAW_PHI)
    for side, idx in ((-1, RIGHT_BROW), (1, LEFT_BROW)):
        out[..., idx, 0], out[..., idx, 1] = _brow_curve(idn, side, _BROW_U)
    out[..., 27:31, 0], out[..., 27:31, 1] = idn.cx, np.linspace(idn.eye_y, idn.nose_y, 4)
    out[..., 31:36, 0] = idn.cx + np.linspace(-1, 1, 5) * idn.nose_w * 0.85
    out[..., 31:36, 1] = idn.nose_y + np.array([1.2, 2.0, 2.3, 2.0, 1.2])
    for side, idx in ((-1, RIGHT_EYE), (1, LEFT_EYE)):        # corner, 2 upper, corner, 2 lower
        x, up, lo = _eye_curves(idn, side, blink, _EYE_U)
        out[..., idx, 0], out[..., idx, 1] = x, np.concatenate([up[..., :4], lo[..., 4:]], axis=-1)
    x, ou, *_ = _lip_curves(idn, g, _LIPS_TOP)
    out[..., 48:55, 0], out[..., 48:55, 1] = x, ou
    x, *_, ol = _lip_curves(idn, g, _LIPS_BOTTOM)
    out[..., 55:60, 0], out[..., 55:60, 1] = x, ol
    x, _, iu, il, _ = _lip_curves(idn, g, _LIPS_INNER * _col(g["wi"] / g["w"]))
    out[..., INNER_LIPS, 0] = x
    out[..., INNER_LIPS, 1] = np.concatenate([iu[..., :5], il[..., 5:]], axis=-1)
    out[..., [60, 64], 1] = idn.mouth_y
    return out.astype(np.float32)


@functools.lru_cache(maxsize=1)
def canonical_landmarks() -> np.ndarray:
    """Landmarks ``(68, 2)`` of the exemplar face (:func:`average_identity`), mouth closed and
    eyes open: the target of Fig. 3's registration."""
    out = face_landmarks(average_identity())
    out.setflags(write=False)
    return out


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap in pixels, ``|landmark 66 - landmark 62|``, of ``(..., 68, 2)`` landmarks."""
    lm = np.asarray(landmarks)
    return np.linalg.norm(lm[..., 66, :] - lm[..., 62, :], axis=-1)


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Centres ``(..., 2, 2)`` of the image-left and image-right eye (means of their 6 points)."""
    lm = np.asarray(landmarks)
    return np.stack([lm[..., RIGHT_EYE, :].mean(-2), lm[..., LEFT_EYE, :].mean(-2)], axis=-2)
