"""Re-dubbing a video with generated faces (Chung et al. 2017, section 4.3, Fig. 12).

(iii) "re-align the landmarks of the generated video to the source video frames": a similarity
transform from the generated face's eyes and nose to the target frame's (:func:`align_face`);
(iv) "visually blend the aligned face with the source video frame": Poisson editing (Perez et
al. 2003) with OpenCV's ``seamlessClone`` in NORMAL_CLONE mode (:func:`blend`), of the lower
half of the face only, "from just below the eyes" (:func:`lower_face_mask`), which the paper
found the best balance of image and movement naturalness.

Points are ``(3, 2)`` pixels ``(x, y)``: left eye, right eye, nose (:data:`voicebook.faces_prep.
EYES_NOSE`). Frames are ``(H, W, 3)`` RGB, uint8 or float in [0, 1]; outputs keep the dtype of
the target frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from .faces_prep import similarity_from_points, warp

__all__ = ["align_face", "lower_face_mask", "blend", "redub_video"]


def align_face(generated, gen_points, target_points, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Warp a generated face onto a target frame (4.3, "Alignment"): the similarity taking
    ``gen_points`` (eyes + nose in ``generated``) to ``target_points`` (in the frame) ->
    ``(warped (h, w, 3), valid (h, w) bool)``, ``out_shape = (h, w)``; ``valid`` marks the output
    pixels that came from inside ``generated`` (elsewhere the edge is replicated)."""
    m = similarity_from_points(gen_points, target_points)
    g = np.asarray(generated)
    ones = np.ones(g.shape[:2], np.float32)
    valid = warp(ones, m, out_shape, border=cv2.BORDER_CONSTANT) > 0.999
    return warp(g, m, out_shape), valid


def lower_face_mask(points, shape, top: float = 0.3, bottom: float = 1.75, half_width: float = 0.95) -> np.ndarray:
    """The face below the eyes (4.3, "Discussion") -> uint8 mask ``(h, w)``, 255 inside.

    In face coordinates (``u`` along the eye line, ``v`` perpendicular, downwards, both in
    interocular distances ``d`` from the eye midpoint): the lower half of an ellipse of
    semi-axes ``half_width`` (across) and ``bottom - top`` (down) centred at ``v = top``, i.e.
    the region from ``top`` (0.3 d, just below the eyes) down to ``bottom`` (1.75 d, the chin).
    """
    p = np.asarray(points, dtype=np.float64)
    eyes = p[:2]
    d = np.linalg.norm(eyes[1] - eyes[0])
    if d < 1e-6:
        raise ValueError(f"lower_face_mask: the two eye points coincide ({eyes.tolist()})")
    along = (eyes[1] - eyes[0]) / d
    down = np.array([-along[1], along[0]])
    h, w = int(shape[0]), int(shape[1])
    yy, xx = np.mgrid[0:h, 0:w]
    rel = np.stack([xx, yy], -1) - eyes.mean(0)
    u, v = rel @ along / d, rel @ down / d
    inside = (v >= top) & ((u / half_width) ** 2 + ((v - top) / (bottom - top)) ** 2 <= 1.0)
    return inside.astype(np.uint8) * 255


def _uint8(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.uint8 else (np.clip(x.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)


def blend(target_frame, warped_face, mask, pad: int = 16) -> np.ndarray:
    """Poisson blending (4.3, "Poisson editing") of ``warped_face`` into ``target_frame`` where
    ``mask`` (``(h, w)``, nonzero inside) is set: the gradients of the face, the frame's values
    on the mask's boundary (``cv2.seamlessClone``, NORMAL_CLONE). The images are reflect-padded
    by ``pad`` pixels first, so a mask touching the frame border still has a boundary; an empty
    mask returns the frame unchanged. -> frame of ``target_frame``'s shape and dtype."""
    target, pad = np.asarray(target_frame), max(int(pad), 1)
    m = (np.asarray(mask) > 0).astype(np.uint8) * 255
    if not m.any():
        return target.copy()
    dst = cv2.copyMakeBorder(_uint8(target), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    src = cv2.copyMakeBorder(_uint8(warped_face), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    mp = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(mp)
    out = cv2.seamlessClone(src, dst, mp, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    out = out[pad:-pad, pad:-pad]
    return out if target.dtype == np.uint8 else (out.astype(np.float32) / 255.0).astype(target.dtype)


def redub_video(frames, frames_landmarks, generated, generated_landmarks, mask_fn=lower_face_mask) -> np.ndarray:
    """Re-dub a video (4.3, stages iii and iv): every generated face ``generated[t]`` (``(T, h, w,
    3)``, e.g. 112 x 112 from :func:`~voicebook.models.speech2vid.generate_video`) aligned to
    ``frames[t]`` (``(T, H, W, 3)``) by the eyes and nose (``frames_landmarks`` ``(T, 3, 2)``;
    ``generated_landmarks`` ``(3, 2)`` for all frames, e.g. the canonical points, or ``(T, 3, 2)``)
    and Poisson-blended inside ``mask_fn(points, shape)`` (the lower face), restricted to pixels
    the generated face covers. -> frames ``(T, H, W, 3)``, the dtype of ``frames``."""
    frames = np.asarray(frames)
    fl, gl = np.asarray(frames_landmarks, dtype=np.float64), np.asarray(generated_landmarks, dtype=np.float64)
    if len(generated) != len(frames) or len(fl) != len(frames):
        raise ValueError(f"redub_video: {len(frames)} frames, {len(fl)} landmark sets and {len(generated)} "
                         f"generated faces; they must match one to one")
    gl = np.broadcast_to(gl, fl.shape) if gl.ndim == 2 else gl
    out = np.empty_like(frames)
    for t in range(len(frames)):
        warped, valid = align_face(generated[t], gl[t], fl[t], frames.shape[1:3])
        valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        out[t] = blend(frames[t], warped, (mask_fn(fl[t], frames.shape[1:3]) > 0) & valid)
    return out
