"""Drawing one generated face (chapter 5: the 112 x 112 face crops of Chung et al. section 2).

:class:`FaceRenderer` draws an :class:`~voicebook.data.face_identity.Identity` in the
*canonical face frame* (a frontal 112 x 112 crop, the face centred) with OpenCV's anti-aliased,
sub-pixel polygons, for a mouth shape ``(jaw, spread, round, teeth)``, an eyelid closure and a
gaze, following the curves of :mod:`voicebook.data.face_geometry` (whose landmarks therefore
sit on the pixels they name). The camera's view (head pose, light) is applied afterwards by
:mod:`voicebook.data.faces`.

Units: pixels of the canonical frame, x to the right, y down; colours RGB 0..255.
"""

from __future__ import annotations

import cv2
import numpy as np

from .face_geometry import (_FACE_PHI, _LOWER_PHI, _brow_curve, _eye_curves, _face_outline, _lip_curves,
                            _lip_profiles, _mouth_geometry, face_landmarks)
from .face_identity import SIZE, Identity

__all__ = ["FaceRenderer"]

# ----------------------------------------------------------------------------- drawing

_SHIFT = 4                                     # sub-pixel bits of OpenCV's drawing coordinates


def _pts(x, y) -> np.ndarray:
    """Coordinate arrays -> OpenCV's fixed-point ``(n, 2)`` int32 polygon."""
    p = np.empty((len(x), 2))
    p[:, 0], p[:, 1] = x, y
    return np.rint(p * (1 << _SHIFT)).astype(np.int32)


def _ring(x, y_top, y_bottom):
    """The closed polygon between two curves over the same ``x`` (left to right, then back)."""
    return _pts(np.concatenate((x, x[::-1])), np.concatenate((y_top, y_bottom[::-1])))


def _fill(img, colour, *polys) -> None:
    cv2.fillPoly(img, list(polys), colour, cv2.LINE_AA, _SHIFT)


def _line(img, colour, x, y, thickness: int = 1, closed: bool = False) -> None:
    cv2.polylines(img, [_pts(x, y)], closed, colour, thickness, cv2.LINE_AA, _SHIFT)


def _ellipse(img, colour, centre, axes, thickness: int = -1) -> None:
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    cv2.ellipse(img, c, (int(round(axes[0] * 16)), int(round(axes[1] * 16))), 0, 0, 360, colour, thickness,
                cv2.LINE_AA, _SHIFT)


def _scale(colour, f: float) -> tuple:
    return tuple(int(min(max(c * f, 0), 255)) for c in colour)


def _mix(a, b, t: float) -> tuple:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))


_MOUTH_U, _OPEN_U, _EYE_DRAW_U = np.linspace(-1, 1, 25), np.linspace(-1, 1, 19), np.linspace(-1, 1, 15)
_MOUTH_PROFILES = _lip_profiles(_MOUTH_U)
_BEARD_U = np.linspace(-1.25, 1.25, 15)
_CAVITY, _TONGUE, _TEETH, _WHITE = (62, 18, 26), (176, 74, 84), (236, 234, 222), (236, 234, 228)


class FaceRenderer:
    """Draws one identity, fast: what never moves (background, clothes, neck, ears, hair, face,
    nose, brows) is drawn once into a static layer; each frame copies it and adds the jaw,
    beard, mouth, eyes and glasses (well under 1 ms a frame at 112 x 112)."""

    def __init__(self, identity: Identity):
        self.idn = i = identity
        self.static = self._static_layer()
        self.lid = tuple(tuple(int(c) for c in self.static[round(i.eye_y), round(i.cx + s * i.eye_gap)])
                         for s in (-1, 1))             # the skin under each eye (eyes are not in the static layer)
        self.chin_skin = tuple(int(c) for c in self.static[int(i.cy + i.face_h - 3), int(i.cx)])
        self.lash = _mix(_scale(i.hair, 0.4), (30, 24, 24), 0.6)
        self.seam = _scale(i.lip_colour, 0.55)
        self.beard_colour = _mix(i.skin, i.hair, 0.3) if i.beard == "stubble" else _scale(i.hair, 0.9)
        start = np.pi / 2 - 0.1 if i.beard == "full" else np.pi / 2 + 0.15
        self.beard_phi = np.linspace(start, 2 * np.pi - start, 31)
        self.chin_closed = _face_outline(i, 0.0, _LOWER_PHI)

    def render(self, mouth=(0, 0, 0, 0), blink: float = 0.0, gaze=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
        """One canonical frame: ``(image uint8 (112, 112, 3) RGB, landmarks float32 (68, 2))``
        for a mouth shape ``(jaw, spread, round, teeth)``, eyelid closure ``blink`` (0..1)
        and gaze (iris offset in pixels)."""
        return self.image(mouth, blink, gaze), face_landmarks(self.idn, mouth, blink)

    def image(self, mouth=(0, 0, 0, 0), blink: float = 0.0, gaze=(0.0, 0.0)) -> np.ndarray:
        """:meth:`render` without the landmarks (the per-frame fast path)."""
        img = self.static.copy()
        g = {k: float(v) for k, v in _mouth_geometry(self.idn, mouth).items()}
        self._jaw(img, g)
        self._beard(img, g)
        self._mouth(img, g)
        for side in (-1, 1):
            self._eye(img, side, float(blink), gaze)
        self._glasses(img)
        return img

    # -- the static layer
    def _static_layer(self) -> np.ndarray:
        i = self.idn
        top, bottom = np.array(i.background, np.float32), np.array(i.background2, np.float32)
        ramp = np.linspace(0, 1, SIZE, dtype=np.float32)[:, None, None]
        img = np.ascontiguousarray(np.broadcast_to((1 - ramp) * top + ramp * bottom, (SIZE, SIZE, 3)).astype(np.uint8))
        _ellipse(img, i.shirt, (i.cx, SIZE + 12), (i.face_w * 1.95, 27))
        self._back_hair(img)
        neck_w, neck = 0.5 * i.face_w, _scale(i.skin, 0.8)
        _fill(img, neck, _pts(i.cx + neck_w * np.array([-1, -1, 1, 1]), [i.cy, SIZE - 4, SIZE - 4, i.cy]))
        _ellipse(img, neck, (i.cx, SIZE - 6), (neck_w, 5))
        for s in (-1, 1):                                        # ears, earrings
            ear = (i.cx + s * i.face_w * 0.96, i.eye_y + 6)
            _ellipse(img, _scale(i.skin, 0.9), ear, (3.4, 6.8))
            if i.earrings:
                _ellipse(img, i.earring_colour, (ear[0] + s * 0.6, ear[1] + 7.5), (1.4, 1.4))
        self._face(img)
        self._nose(img)
        brow = _mix(_scale(i.hair, 0.7), (40, 30, 25), 0.3)
        for s in (-1, 1):
            u = np.linspace(-1, 1, 11)
            x, y = _brow_curve(i, s, u)
            half = i.brow_thick / 2 * (0.45 + 0.55 * np.clip(1 - (u + s * 0.6) ** 2 / 2.6, 0, 1))
            _fill(img, brow, _ring(x, y - half, y + half))
        self._hair_cap(img)
        return img

    def _face(self, img) -> None:
        """The face, shaded darker towards its edge (a little roundness)."""
        i = self.idn
        mask = np.zeros((SIZE, SIZE), np.uint8)
        _fill(mask, 255, _pts(*_face_outline(i, 0.0, _FACE_PHI)))
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        r = np.sqrt(((xx - i.cx) / i.face_w) ** 2 + ((yy - i.cy) / i.face_h) ** 2)
        shade = (1 - 0.16 * np.clip(r, 0, 1.1) ** 4)[..., None] * np.array(i.skin, np.float32)
        a = (mask.astype(np.float32) / 255)[..., None]
        img[:] = np.round(a * shade + (1 - a) * img).astype(np.uint8)

    def _nose(self, img) -> None:
        i = self.idn
        u = np.linspace(-1, 1, 9)
        _line(img, _scale(i.skin, 0.8), i.cx + u * i.nose_w, i.nose_y + 1.4 - 1.2 * (1 - u ** 2) + 0.6 * u ** 4)
        for s in (-1, 1):
            _ellipse(img, _scale(i.skin, 0.55), (i.cx + s * i.nose_w * 0.45, i.nose_y + 1.0), (1.1, 0.6))
        y = np.linspace(i.eye_y + 3, i.nose_y - 1.5, 5)
        _line(img, _scale(i.skin, 0.9), i.cx - 0.45 * i.nose_w - 0.3 * (y - y[0]) / (y[-1] - y[0]), y)

    def _outer_hair(self, extra: float = 0.0, n: int = 41):
        """The top of the hair: a half-ellipse over the head, from eye level up."""
        i = self.idn
        a = i.face_w + 2.3 + extra + (1.2 if i.hair_style == "curly" else 0)
        b = i.eye_y - (i.cy - i.face_h - 3.2 - extra)
        t = np.linspace(-np.pi / 2, np.pi / 2, n)
        bump = 1 + (0.05 * np.abs(np.sin(7 * t)) if i.hair_style == "curly" else 0)
        return i.cx + a * np.sin(t) * bump, i.eye_y - b * np.cos(t) * bump

    def _back_hair(self, img) -> None:
        """Hair behind the head: to the shoulders (long, curly), the jaw (bob), a bun on top."""
        i, style = self.idn, self.idn.hair_style
        if style in ("long", "curly", "bob"):
            x, y = self._outer_hair(1.5)
            low = SIZE + 2 if style == "long" else i.cy + (0.55 if style == "bob" else 0.8) * i.face_h
            w = i.face_w + (5.5 if style == "long" else 4.0)
            _fill(img, _scale(i.hair, 0.85), _pts(np.r_[x, i.cx + w, i.cx - w], np.r_[y, low, low]))
        if style == "bun":
            _ellipse(img, i.hair, (i.cx, i.cy - i.face_h - 5), (7.0, 6.0))

    def _hair_cap(self, img) -> None:
        """Hair over the forehead, down to the temples, above a style-dependent hairline."""
        i, style = self.idn, self.idn.hair_style
        x, y_top = self._outer_hair()
        v = (x - i.cx) / i.face_w
        base = i.cy - i.face_h + i.hairline + {"receding": 6.0, "bob": -2.5, "curly": -1.0}.get(style, 0.0)
        temple = i.eye_y - (9.0 if style == "receding" else 3.5)
        hairline = base + (temple - base) * np.clip(v ** 2, 0, 1.6)
        if style == "side":
            hairline = hairline + 3.5 * v - 1.5
        elif style == "receding":
            hairline = hairline - 4.0 * np.exp(-(v / 0.3) ** 2) + 3.0 * np.exp(-((np.abs(v) - 0.55) / 0.2) ** 2)
        _fill(img, i.hair, _ring(x, y_top, np.maximum(hairline, y_top)))

    # -- what moves
    def _jaw(self, img, g: dict) -> None:
        """The chin lowered by the jaw: the band between the closed and the dropped outline."""
        if g["drop"] > 0.2:
            x, closed = self.chin_closed
            _, dropped = _face_outline(self.idn, g["drop"], _LOWER_PHI)
            _fill(img, self.chin_skin, _ring(x, dropped, closed))

    def _beard(self, img, g: dict) -> None:
        i = self.idn
        if not i.beard:
            return
        x = i.cx + _BEARD_U * g["w"]
        above = i.mouth_y - g["up"] - g["tu"] * np.maximum(1.25 - 0.45 * _BEARD_U ** 2, 0.5) - 2.2
        if i.beard == "moustache":
            _, outer, *_ = _lip_curves(i, g, np.clip(_BEARD_U, -1, 1))
            _fill(img, self.beard_colour, _ring(x, above, outer - 0.2))
            return
        ox, oy = _face_outline(i, g["drop"], self.beard_phi)      # right cheek, chin, left cheek
        cheek_y = i.nose_y + (0.0 if i.beard == "full" else 2.0)
        _fill(img, self.beard_colour, _pts(np.concatenate((ox, [i.cx - 0.8 * i.face_w], x, [i.cx + 0.8 * i.face_w])),
                                           np.concatenate((oy, [cheek_y], above, [cheek_y]))))

    def _mouth(self, img, g: dict) -> None:
        i = self.idn
        x, ou, iu, il, ol = _lip_curves(i, g, _MOUTH_U, _MOUTH_PROFILES)
        _fill(img, i.lip_colour, _ring(x, ou, ol))
        _line(img, self.seam, x[1:-1], ((iu + il) / 2)[1:-1])
        if g["gap"] < 0.6:
            return
        ui = _OPEN_U * (g["wi"] / g["w"])
        x, _, iu, il, _ = _lip_curves(i, g, ui)
        _fill(img, _CAVITY, _ring(x, iu, il))
        depth = np.sqrt(np.maximum(1 - _OPEN_U ** 2, 0)) * g["gap"]
        if g["gap"] > 4:                                          # tongue low in the mouth
            k = slice(3, -3)
            _fill(img, _TONGUE, _ring(x[k], il[k], (il - 0.28 * depth)[k]))
        mid = len(ui) // 2                                        # teeth: flat edges below / above the lips
        for band, edge, sign in ((min(2.8 * g["teeth"], 0.35 * g["gap"]), iu, 1.0),
                                 (min(1.6 * g["teeth"], 0.2 * g["gap"]), il, -1.0)):
            h = sign * (edge[mid] + sign * band - edge)
            k = h > 0.05                                          # no zero-height slivers (AA would draw them)
            if band > 0.3 and k.sum() > 1:
                _fill(img, _TEETH, _ring(x[k], edge[k], (edge + sign * h)[k]))

    def _eye(self, img, side: int, blink: float, gaze) -> None:
        i = self.idn
        x, up, lo = _eye_curves(i, side, blink, _EYE_DRAW_U)
        if blink < 0.95:
            r = 0.42 * i.eye_w
            c = (i.cx + side * i.eye_gap + float(gaze[0]), i.eye_y + float(gaze[1]) - 0.15 * i.eye_h)
            _fill(img, _WHITE, _ring(x, up, lo))
            _ellipse(img, i.eye_colour, c, (r, r))
            _ellipse(img, (18, 16, 16), c, (0.45 * r, 0.45 * r))
            _ellipse(img, (250, 250, 250), (c[0] - 0.35 * r, c[1] - 0.35 * r), (0.45, 0.45))
            _fill(img, self.lid[(side + 1) // 2], _ring(x, up, np.full_like(x, c[1] - r - 0.8)),
                  _ring(x, np.full_like(x, c[1] + r + 0.8), lo))
        _line(img, self.lash, x, up)

    def _glasses(self, img) -> None:
        i = self.idn
        if not i.glasses:
            return
        col, rx, ry = i.glasses_colour, i.eye_w + 2.4, i.eye_w + (1.8 if i.glasses == "round" else 0.6)
        for s in (-1, 1):
            ex, ey = i.cx + s * i.eye_gap, i.eye_y
            if i.glasses == "round":
                _ellipse(img, col, (ex, ey), (rx, ry), thickness=1)
            else:
                _line(img, col, ex + np.array([-rx, rx, rx, -rx]), ey + np.array([-ry + 0.8, -ry + 0.8, ry, ry]),
                      closed=True)
            _line(img, col, np.array([ex + s * rx, i.cx + s * (i.face_w - 0.5)]), np.array([ey - 1.5, ey - 2.5]))
        _line(img, col, np.array([i.cx - i.eye_gap + rx, i.cx, i.cx + i.eye_gap - rx]),
              np.array([i.eye_y - 1.5, i.eye_y - 2.6, i.eye_y - 1.5]))
