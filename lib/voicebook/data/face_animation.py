"""How a generated face moves over time (chapter 5): mouth shapes from phoneme timings, head
motion, blinks, gaze and lighting, each sampled at the video frame times.

**Mouth.** Each espeak phone (the corpus' :attr:`Utterance.phonemes`, every language it speaks,
stress marks included) maps to one or more *viseme* targets ``(jaw, spread, round, teeth)``,
each 0..1: jaw opening, lip spread (corners pulled back, "ee"), lip rounding/protrusion ("oo"),
teeth shown (by :func:`phone_targets`: :data:`VISEMES` for single symbols, diphthongs such as
``"aI"``, ``"oU"``, ``"aI@"`` parsed into their parts; ``~`` nasal, ``#``, ``-``, ``2``/``3``
variant marks and ``:`` length do not change the lips). Pauses are a closed mouth. Primary-
stressed vowels open 10 % wider, unstressed ones 10 % less. Co-articulation follows Cohen &
Massaro's dominance model: each target ``T_i`` sits at the centre ``c_i`` of its (sub-)segment
with dominance ``D_i(t) = a_i exp(-((t - c_i) / tau_i)^2)``, ``tau_i = d_i / 2 + 20 ms``, and the
mouth is ``sum_i D_i T_i / sum_i D_i``: neighbours blend over ~40-80 ms, and segments that must
reach their target (bilabial closures ``p b m``, labiodentals ``f v``, ``w``) dominate
(:data:`DOMINANCE`). That is the "phoneme to viseme correspondence" the paper's Fig. 10 sees
its model learn.

**Head, eyes, light.** A per-clip head pose (roll in degrees, scale, shift in pixels) drifting
smoothly (sums of slow sinusoids), blinks every 2-5 s (160 ms: 40 ms closing, 50 ms shut, 70 ms
opening, so a 25 fps frame always catches the shut eye), gaze saccades, and a slowly varying
light (brightness, colour gain, a linear gradient across the frame).

Frame ``k`` shows the instant ``k / fps`` seconds (as decoded video does); a clip of ``d``
seconds has ``ceil(d * fps)`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face_identity import SIZE
from .phonemes import SILENCE, normalise

__all__ = ["FPS", "VISEMES", "DOMINANCE", "CLOSED", "phone_targets", "unknown_phones", "n_frames",
           "frame_times", "mouth_track", "head_pose", "pose_matrix", "blink_track", "gaze_track",
           "lighting_track", "apply_lighting", "Animation", "animate"]

FPS = 25.0
CLOSED = (0.0, 0.0, 0.0, 0.0)

_V, _C = {}, {}
# vowels: (jaw, spread, round, teeth)
_V.update({"a": (0.85, 0.3, 0.0, 0.5), "A": (0.95, 0.1, 0.1, 0.3), "aa": (0.9, 0.15, 0.05, 0.4),
           "&": (0.6, 0.15, 0.0, 0.4), "V": (0.65, 0.1, 0.0, 0.4), "0": (0.75, 0.0, 0.45, 0.3),
           "O": (0.6, 0.0, 0.6, 0.3), "O2": (0.7, 0.0, 0.4, 0.3), "o": (0.4, 0.0, 0.8, 0.2),
           "u": (0.2, 0.0, 1.0, 0.1), "U": (0.3, 0.0, 0.7, 0.2), "y": (0.2, 0.0, 0.95, 0.2),
           "Y": (0.4, 0.0, 0.8, 0.2), "W": (0.5, 0.0, 0.6, 0.3), "i": (0.2, 1.0, 0.0, 0.7),
           "I": (0.3, 0.7, 0.0, 0.6), "e": (0.4, 0.75, 0.0, 0.6), "E": (0.55, 0.55, 0.0, 0.5),
           "@": (0.35, 0.2, 0.0, 0.4), "3": (0.4, 0.1, 0.2, 0.4)})
# consonants
_C.update({"p": CLOSED, "b": CLOSED, "m": CLOSED, "B": (0.05, 0.0, 0.1, 0.0),
           "f": (0.1, 0.15, 0.0, 1.0), "v": (0.1, 0.15, 0.0, 1.0), "T": (0.2, 0.15, 0.0, 1.0),
           "D": (0.2, 0.15, 0.0, 1.0), "t": (0.2, 0.2, 0.0, 0.8), "d": (0.2, 0.2, 0.0, 0.8),
           "n": (0.2, 0.2, 0.0, 0.7), "l": (0.3, 0.2, 0.0, 0.6), "L": (0.3, 0.2, 0.0, 0.6),
           "s": (0.12, 0.4, 0.0, 1.0), "z": (0.12, 0.4, 0.0, 1.0), "ts": (0.12, 0.4, 0.0, 1.0),
           "dz": (0.12, 0.4, 0.0, 1.0), "r": (0.25, 0.0, 0.4, 0.4), "*": (0.25, 0.1, 0.0, 0.5),
           "**": (0.3, 0.1, 0.0, 0.5), "R": (0.35, 0.0, 0.1, 0.3), "S": (0.15, 0.0, 0.6, 0.9),
           "Z": (0.15, 0.0, 0.6, 0.9), "tS": (0.15, 0.0, 0.6, 0.9), "dZ": (0.15, 0.0, 0.6, 0.9),
           "j": (0.2, 0.6, 0.0, 0.6), ";": (0.2, 0.6, 0.0, 0.6), "C": (0.2, 0.6, 0.0, 0.7),
           "J^": (0.2, 0.5, 0.0, 0.6), "n^": (0.25, 0.3, 0.0, 0.6), "l^": (0.25, 0.3, 0.0, 0.6),
           "k": (0.3, 0.1, 0.0, 0.4), "g": (0.3, 0.1, 0.0, 0.4), "N": (0.3, 0.1, 0.0, 0.4),
           "x": (0.3, 0.1, 0.0, 0.4), "Q": (0.3, 0.1, 0.0, 0.4), "h": (0.35, 0.1, 0.0, 0.3),
           "w": (0.1, 0.0, 1.0, 0.0), SILENCE: CLOSED})
#: Viseme targets ``(jaw, spread, round, teeth)`` of single espeak symbols (vowels and consonants).
VISEMES: dict[str, tuple] = {**_V, **_C}
#: How strongly a segment pulls the mouth to its own target (1 = an ordinary vowel).
DOMINANCE: dict[str, float] = {**{p: 1.0 for p in _V}, **{p: 0.6 for p in _C},
                               "p": 4.0, "b": 4.0, "m": 4.0, "B": 2.0, "f": 2.5, "v": 2.5, "w": 2.0,
                               "S": 1.5, "Z": 1.5, "tS": 1.5, "dZ": 1.5, "s": 1.2, "z": 1.2, "h": 0.2,
                               ";": 0.3, SILENCE: 1.0}
_MARKS = "~#-:23"                              # nasal / variant / length marks: the lips do not change
_KEYS = sorted(VISEMES, key=len, reverse=True)
_STRESS = {"'": 1.1, ",": 1.0}


def _parse(symbol: str) -> list[str]:
    """A stress-free espeak symbol -> the :data:`VISEMES` keys it is made of, longest first
    (``"aI@"`` -> ``["a", "I", "@"]``, ``"ts2"`` -> ``["ts"]``); [] if none."""
    out, k = [], 0
    while k < len(symbol):
        key = next((key for key in _KEYS if symbol.startswith(key, k)), None)
        if key is None:
            if symbol[k] not in _MARKS:
                return []
            k += 1
            continue
        out.append(key)
        k += len(key)
    return out


def _keys(symbol: str) -> list[str]:
    """:data:`VISEMES` keys of a stress-free symbol: itself, else without a trailing variant
    digit (``"aI3"``, ``"ts2"``), else parsed into parts."""
    if symbol in VISEMES:
        return [symbol]
    if len(symbol) > 1 and symbol[-1] in "23" and (keys := _parse(symbol[:-1])):
        return keys
    return _parse(symbol)


def phone_targets(phone: str) -> list[tuple[tuple, float]]:
    """The viseme targets of one espeak phone, in order: ``[((jaw, spread, round, teeth),
    dominance), ...]`` (two or three for a diphthong). Unknown symbols give a neutral,
    weakly dominant half-open mouth (see :func:`unknown_phones`)."""
    p = normalise(phone)
    keys = [SILENCE] if p == SILENCE else _keys(p)
    if not keys:
        return [((0.3, 0.1, 0.0, 0.4), 0.3)]
    stress = 1.0 if p == SILENCE else _STRESS.get(phone.strip()[:1], 0.9)
    out = []
    for key in keys:
        jaw, spread, rnd, teeth = VISEMES[key]
        out.append(((min(jaw * (stress if key in _V else 1.0), 1.0), spread, rnd, teeth), DOMINANCE[key]))
    return out


def unknown_phones(phonemes) -> set[str]:
    """The phones of ``phonemes`` (``(phone, start_s, end_s)`` tuples or symbols) that have no
    viseme (they would fall back to a neutral mouth)."""
    names = [p if isinstance(p, str) else p[0] for p in phonemes]
    return {p for p in names if normalise(p) != SILENCE and not _keys(normalise(p))}


def n_frames(duration: float, fps: float = FPS) -> int:
    """Frames of a clip of ``duration`` seconds: ``ceil(duration * fps)``."""
    return max(1, math.ceil(duration * fps - 1e-6))


def frame_times(n: int, fps: float = FPS) -> np.ndarray:
    """The instants ``(n,)`` in seconds that frames ``0..n-1`` show: ``k / fps``."""
    return np.arange(n, dtype=np.float64) / fps


def _segments(phonemes, duration: float):
    """``(targets (K, 4), dominance (K,), centres (K,), half-widths (K,))`` of every viseme
    target, silence filling the clip before, between and after the phones."""
    rows, t = [], 0.0
    for phone, start, end in [*phonemes, (SILENCE, max(duration, 0.0), max(duration, 0.0))]:
        if start > t + 1e-4:
            rows.append((CLOSED, DOMINANCE[SILENCE], t, start))
        if end > start:
            parts = phone_targets(phone)
            step = (end - start) / len(parts)
            rows += [(target, dom, start + k * step, start + (k + 1) * step) for k, (target, dom) in enumerate(parts)]
        t = max(t, end)
    rows = rows or [(CLOSED, DOMINANCE[SILENCE], 0.0, 0.0)]
    targets = np.array([r[0] for r in rows], np.float64).reshape(-1, 4)
    dom = np.array([r[1] for r in rows], np.float64)
    a, b = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    return targets, dom, (a + b) / 2, (b - a) / 2 + 0.02


def mouth_track(phonemes, times: np.ndarray, duration: float | None = None) -> np.ndarray:
    """Mouth shapes ``(T, 4)`` float32 ``(jaw, spread, round, teeth)`` at ``times`` (seconds)
    from ``(phone, start_s, end_s)`` tuples, blended by the dominance model (see module doc)."""
    times = np.asarray(times, np.float64)
    duration = float(duration if duration is not None else max([e for _, _, e in phonemes] + [times.max(initial=0)]))
    targets, dom, centres, tau = _segments(tuple(phonemes), duration)
    d = dom[None, :] * np.exp(-(((times[:, None] - centres[None, :]) / tau[None, :]) ** 2))
    d[:, 0] += 1e-12                                          # never 0/0 far from every segment
    return ((d @ targets) / d.sum(axis=1, keepdims=True)).astype(np.float32)


def _drift(times: np.ndarray, rng: np.random.Generator, amplitude: float, n: int = 3) -> np.ndarray:
    """A smooth random signal of about ``amplitude`` peak: ``n`` sinusoids of 0.08-0.6 Hz."""
    f = rng.uniform(0.08, 0.6, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    w = rng.uniform(0.5, 1.0, n)
    return amplitude * (w[None] * np.sin(2 * np.pi * f[None] * times[:, None] + ph[None])).sum(1) / w.sum()


def head_pose(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Head pose ``(T, 4)``: roll (degrees, counter-clockwise), scale, shift x and y (pixels):
    a per-clip offset (how the crop sits) plus a smooth drift."""
    angle = rng.uniform(-3, 3) + _drift(times, rng, 3.0)
    scale = rng.uniform(0.94, 1.04) + _drift(times, rng, 0.025)
    tx = rng.uniform(-2.5, 2.5) + _drift(times, rng, 2.0)
    ty = rng.uniform(-2.0, 2.0) + _drift(times, rng, 1.5)
    return np.stack([angle, scale, tx, ty], axis=1).astype(np.float32)


#: The point the head rotates and scales about (between the eyes and the mouth), pixels.
PIVOT = (SIZE / 2, SIZE / 2 + 4)


def pose_matrix(pose) -> np.ndarray:
    """The similarity transform ``(2, 3)`` float64 (``x' = A x + b``) of one head pose
    ``(angle_deg, scale, tx, ty)``: canonical frame -> video frame."""
    angle, scale, tx, ty = (float(v) for v in pose)
    m = cv2.getRotationMatrix2D(PIVOT, angle, scale)
    m[:, 2] += (tx, ty)
    return m


def blink_track(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure ``(T,)`` 0..1: blinks every 2-5 s, each 40 ms closing, 50 ms shut, 70 ms opening."""
    out = np.zeros(len(times), np.float32)
    t, end = rng.uniform(0.2, 2.5), (times.max(initial=0) + 1)
    while t < end:
        x = times - t
        ramp = np.interp(x, [0, 0.04, 0.09, 0.16], [0, 1, 1, 0], left=0, right=0)
        out = np.maximum(out, (ramp * ramp * (3 - 2 * ramp)).astype(np.float32))   # smoothstep
        t += rng.uniform(2.0, 5.0)
    return out


def gaze_track(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Iris offset ``(T, 2)`` in pixels: fixations of 0.4-2 s joined by saccades."""
    out = np.zeros((len(times), 2), np.float32)
    t = 0.0
    while t <= times.max(initial=0):
        out[times >= t] = (rng.uniform(-0.7, 0.7), rng.uniform(-0.3, 0.3))
        t += rng.uniform(0.4, 2.0)
    return out


def lighting_track(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light ``(T, 5)``: gains of R, G, B (brightness x a slight tint) and a linear gradient's
    strength (fraction of brightness across half the frame) and direction (radians)."""
    bright = rng.uniform(0.85, 1.1) + _drift(times, rng, 0.06)
    tint = rng.uniform(-0.04, 0.04, 3)[None] + np.stack([_drift(times, rng, 0.015, 2) for _ in range(3)], 1)
    strength = np.clip(rng.uniform(0.0, 0.2) + _drift(times, rng, 0.06), 0, 0.3)
    direction = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.3, 0.3) * times
    return np.concatenate([bright[:, None] * (1 + tint), strength[:, None], direction[:, None]], 1).astype(np.float32)


_YY, _XX = (np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) - (SIZE - 1) / 2) / (SIZE / 2)


def apply_lighting(frames: np.ndarray, light: np.ndarray) -> np.ndarray:
    """``frames`` ``(T, 112, 112, 3)`` uint8 lit by ``light`` ``(T, 5)`` (:func:`lighting_track`)
    -> uint8 of the same shape: each pixel times its channel's gain times the gradient's ramp."""
    light = np.asarray(light, np.float32)
    strength, direction = light[:, 3, None, None], light[:, 4, None, None]
    ramp = 1 + strength * (np.cos(direction) * _XX + np.sin(direction) * _YY)           # (T, H, W)
    out = frames * ramp[..., None]
    out *= light[:, None, None, :3]
    out += 0.5
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


@dataclass(frozen=True)
class Animation:
    """Every time track of one clip, sampled at ``times`` ``(T,)`` seconds: ``mouth`` ``(T, 4)``,
    ``blink`` ``(T,)``, ``gaze`` ``(T, 2)`` px, ``pose`` ``(T, 4)`` (:func:`head_pose`),
    ``light`` ``(T, 5)`` (:func:`lighting_track`)."""

    times: np.ndarray
    mouth: np.ndarray
    blink: np.ndarray
    gaze: np.ndarray
    pose: np.ndarray
    light: np.ndarray


def animate(phonemes, duration: float, seed: int, fps: float = FPS) -> Animation:
    """The tracks of a clip of ``duration`` seconds speaking ``phonemes`` ((phone, start_s,
    end_s) tuples), head, eyes and light drawn from ``seed``."""
    times = frame_times(n_frames(duration, fps), fps)
    rng = np.random.default_rng(seed)
    return Animation(times, mouth_track(phonemes, times, duration), blink_track(times, rng), gaze_track(times, rng),
                     head_pose(times, rng), lighting_track(times, rng))
