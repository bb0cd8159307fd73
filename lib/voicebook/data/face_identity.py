"""Who a generated face is (chapter 5): an :class:`Identity` drawn from a seed.

Chung et al. train on thousands of VoxCeleb/LRW identities and test on faces never seen in
training (Fig. 1, section 4). The generated stand-in draws as many people as asked, each a
frozen :class:`Identity` of about thirty visible parameters: face size and shape, skin, hair
colour and style, eye colour, size and spacing, brows, nose, lips (and lipstick), glasses,
beard or moustache, earrings, shirt and background. :func:`draw_identity` is deterministic in
``(index, seed, prefix)``; train and test identities use different prefixes, so they never
coincide. :func:`average_identity` is the exemplar face that Fig. 3 registers to.

Lengths are pixels of the 112 x 112 canonical frame (:data:`SIZE`), colours RGB 0..255.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, fields, replace

import numpy as np

__all__ = ["SIZE", "HAIR_STYLES", "Identity", "draw_identity", "average_identity"]

SIZE = 112                                     # canonical frame: SIZE x SIZE pixels (the paper's input)
HAIR_STYLES = ("short", "long", "bob", "bun", "side", "receding", "curly")

_SKIN = ((255, 224, 196), (241, 194, 167), (224, 172, 138), (234, 192, 134), (198, 134, 98),
         (161, 102, 70), (120, 76, 50), (90, 58, 40))
_HAIR = ((28, 24, 24), (62, 40, 28), (105, 68, 40), (150, 72, 36), (215, 185, 115), (236, 214, 160),
         (150, 150, 150), (225, 225, 218), (175, 58, 30), (60, 70, 160))
_EYE = ((92, 56, 30), (50, 34, 24), (122, 96, 52), (78, 122, 72), (70, 120, 182), (118, 134, 146))


def _rgb(c, jitter: float, rng: random.Random) -> tuple:
    return tuple(int(np.clip(v + rng.uniform(-jitter, jitter), 0, 255)) for v in c)


@dataclass(frozen=True)
class Identity:
    """How one generated person looks; lengths in canonical pixels, colours RGB.

    Face: centre ``(cx, cy)``, half-width ``face_w``, half-height ``face_h``, ``chin`` taper
    (0 round .. 0.5 pointed). Eyes: half-distance ``eye_gap`` between centres, half-size
    ``eye_w`` x ``eye_h``, height ``eye_y``. Brows: ``brow_lift`` above the eye, ``brow_arch``,
    ``brow_tilt`` (> 0: inner ends lower, a frown), ``brow_thick``. Nose tip at ``nose_y``,
    half-width ``nose_w``. Mouth at ``mouth_y``, half-width ``mouth_w``, lip thicknesses
    ``lip_up`` and ``lip_lo``; ``articulation`` scales the jaw opening (a mumbler < 1 < a clear
    speaker). Hair: colour, one of :data:`HAIR_STYLES`, ``hairline`` below the top of the face.
    ``glasses`` ("", "round", "square"), ``beard`` ("", "stubble", "moustache", "full"),
    ``earrings``, ``shirt``, and a vertical ``background`` -> ``background2`` gradient. ``sex``
    ("F"/"M") matches the voice the face is given.
    """

    id: str
    sex: str
    cx: float
    cy: float
    face_w: float
    face_h: float
    chin: float
    skin: tuple
    hair: tuple
    hair_style: str
    hairline: float
    eye_colour: tuple
    eye_gap: float
    eye_w: float
    eye_h: float
    eye_y: float
    brow_lift: float
    brow_arch: float
    brow_tilt: float
    brow_thick: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    lip_colour: tuple
    articulation: float
    glasses: str
    glasses_colour: tuple
    beard: str
    earrings: bool
    earring_colour: tuple
    shirt: tuple
    background: tuple
    background2: tuple

    def params(self) -> dict:
        """The fields as JSON-able values (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_params(cls, params: dict) -> "Identity":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()})


def draw_identity(index: int, seed: int = 0, *, sex: str | None = None, prefix: str = "face") -> Identity:
    """Identity number ``index`` of ``seed``, named ``f"{prefix}-{index:04d}"`` (deterministic in
    all three; the face set draws its train and test people with prefixes "train" and "test").
    ``sex`` "F"/"M" (default: drawn) steers hair style, beard, earrings and lipstick."""
    rng = random.Random(f"identity/{seed}/{prefix}/{index}")
    sex = sex or rng.choice("FM")
    u = rng.uniform
    face_w, face_h, cy = u(25.5, 31.5), u(34.0, 40.0), u(56.5, 60.0)
    eye_y = cy - face_h * u(0.15, 0.24)
    chin_y = cy + face_h
    eye_h = u(2.5, 3.3)
    brow_thick = u(1.3, 2.8) * (1.15 if sex == "M" else 0.9)
    skin = _rgb(rng.choice(_SKIN), 8, rng)
    lips = tuple(int(np.clip(s * f + a, 0, 255)) for s, f, a in zip(skin, (0.78, 0.48, 0.50), (34, 10, 18)))
    if sex == "F" and rng.random() < 0.35:
        lips = _rgb(rng.choice(((178, 40, 62), (196, 80, 96), (150, 52, 70))), 10, rng)
    hair = rng.choice(_HAIR[:9] if rng.random() < 0.95 else _HAIR)
    styles = ("long", "bob", "bun", "side", "curly", "short") if sex == "F" else \
        ("short", "side", "receding", "curly", "short", "bob")
    beard = rng.choice(("", "", "stubble", "moustache", "full")) if sex == "M" else ""
    glasses = rng.choice(("", "", "round", "square"))
    bg = tuple(rng.randint(40, 220) for _ in range(3))
    return Identity(
        id=f"{prefix}-{index:04d}", sex=sex, cx=SIZE / 2 + u(-1.0, 1.0), cy=cy, face_w=face_w, face_h=face_h,
        chin=u(0.12, 0.45), skin=skin, hair=_rgb(hair, 10, rng), hair_style=rng.choice(styles),
        hairline=u(7.0, 13.0), eye_colour=_rgb(rng.choice(_EYE), 10, rng), eye_gap=face_w * u(0.40, 0.48),
        eye_w=u(5.0, 6.4), eye_h=eye_h, eye_y=eye_y, brow_lift=eye_h + u(2.6, 4.4) + brow_thick / 2,
        brow_arch=u(0.4, 2.6), brow_tilt=u(-1.2, 1.2), brow_thick=brow_thick,
        nose_y=eye_y + (chin_y - eye_y) * u(0.33, 0.40), nose_w=u(3.6, 5.8),
        mouth_y=eye_y + (chin_y - eye_y) * u(0.60, 0.65), mouth_w=face_w * u(0.33, 0.42),
        lip_up=u(1.6, 3.0), lip_lo=u(2.2, 3.8), lip_colour=lips, articulation=u(0.8, 1.15),
        glasses=glasses, glasses_colour=_rgb(rng.choice(((25, 25, 25), (120, 70, 30), (170, 170, 180),
                                                           (140, 30, 40))), 10, rng),
        beard=beard, earrings=sex == "F" and rng.random() < 0.4,
        earring_colour=rng.choice(((230, 200, 80), (200, 200, 210), (180, 40, 60))),
        shirt=tuple(rng.randint(20, 235) for _ in range(3)), background=bg,
        background2=tuple(int(np.clip(c + rng.randint(-60, 60), 0, 255)) for c in bg))


@functools.lru_cache(maxsize=1)
def average_identity() -> Identity:
    """The canonical (exemplar) face of Fig. 3: every length at the middle of its range."""
    base = draw_identity(0, seed=0, sex="F")
    w, h, cy = 28.5, 37.0, 58.25
    eye_y = cy - 0.195 * h
    span = cy + h - eye_y
    return replace(base, id="canonical", cx=SIZE / 2, cy=cy, face_w=w, face_h=h, eye_y=eye_y, eye_gap=0.44 * w,
                    eye_w=5.4, eye_h=2.65, nose_y=eye_y + 0.365 * span, nose_w=4.7,
                    mouth_y=eye_y + 0.625 * span, mouth_w=0.375 * w, lip_up=2.3, lip_lo=3.0)
