"""Registered face tracks with their audio, and the datasets that train Speech2Vid (chapter 5;
Chung, Jamaludin & Zisserman 2017, sections 2, 3.2-3.3 and 4.2).

* :class:`TalkingClip`: one face track registered to a canonical face by the eyes and nose only
  (section 2, Fig. 3), with one MFCC window per video frame (3.1) and the true mouth opening
  over time. :func:`from_generated` makes one from a generated clip
  (:mod:`voicebook.data.faces`, whose 68 landmarks are known), :func:`from_video` from a real
  video (:mod:`voicebook.data.videos`): faces detected and eyes + nose found on every frame with
  :mod:`voicebook.faces_prep`, gaps filled, the track smoothed. :func:`load_talking_clips`
  gives the train and test tracks of either source.
* :class:`TalkingFaceFrames`: Speech2Vid's training examples (3.2, "Training protocol", Fig. 7):
  the audio window of frame ``t``, the frame ``t`` itself as the target (the middle frame of
  the 0.35 s window), and ``n_stills`` identity stills drawn from *future* times of the same
  track, at least ``min_gap`` frames after ``t`` (Fig. 7: "randomly sampled from future frames
  far from actual audio/output"; near the track's end, from at least ``min_gap`` before it).
  Item ``i`` is a pure function of ``(seed, i)``.
  :func:`talking_face_loss` is eq. (1) on its uint8 batches.
* Pre-training the identity encoder. The paper starts it from a VGG-M trained to recognise the
  2.6 K people of VGG Face and keeps only the conv layers (3.2). VGG Face cannot be had here,
  so :class:`IdentityClassifier` learns to tell the *training* identities apart from their
  registered frames (:class:`IdentityFrames`, :func:`identity_loss`), and
  :func:`transfer_identity_conv` copies its conv1-conv5 into a Speech2Vid, leaving fc6-fc7 as
  initialised (re-initialised, as in the paper); for five stills conv1's filters are repeated
  over the five images and divided by five.
* :class:`BlurredFaces`: the deblurring CNN's training pairs (3.3, Fig. 9), artificially
  blurred registered faces and the sharp originals, as random crops.
* :func:`face_only` and :func:`identity_retrieval`: whether an identity encoder tells held-out
  people apart by their faces, not by the background and clothes each generated person keeps.
* :func:`score_video`: a generated video against the true one (L1, PSNR, SSIM on the whole
  face and the mouth, sharpness, lip sync and sync offset; :mod:`voicebook.face_metrics`).
* :func:`held_out_motion`: how much landmarks *not* used by the registration, but rigid with
  the head (:data:`HELD_OUT_POINTS`), still move after it (generated clips: their 68 landmarks).

Frames are ``(T, S, S, 3)`` uint8 RGB (S = 112); points ``(n, 2)`` pixels ``(x, y)``: left eye,
right eye, nose (:data:`voicebook.faces_prep.EYES_NOSE`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from . import face_metrics as fm
from . import faces_prep as fp
from .checks import AudioError, CorpusError
from .data.face_geometry import BROWS
from .models.speech2vid import (SIZE, IdentityEncoder, Speech2Vid, blur, max_video_frames, mfcc_windows,
                                speech2vid_loss)
from .redub import lower_face_mask

__all__ = ["VERSION", "TalkingClip", "TalkingSet", "generated_canonical_points", "register_frames", "track_points",
           "from_generated", "from_video", "load_talking_clips", "TalkingFaceFrames", "talking_face_loss",
           "IdentityFrames", "IdentityClassifier", "identity_loss", "transfer_identity_conv", "BlurredFaces",
           "face_only", "identity_retrieval", "spread_stills", "score_video", "SCORES", "HELD_OUT_POINTS",
           "registration_motion", "held_out_motion"]

#: Bumped whenever the training examples change (2: stills from future frames, Fig. 7); chapter 5
#: keys its checkpoints on it, so networks trained on older examples are not loaded.
VERSION = 2


# ----------------------------------------------------------------------------- registered tracks (section 2)

@dataclass
class TalkingClip:
    """One registered face track: ``frames`` uint8 ``(T, 112, 112, 3)`` in the canonical frame,
    ``windows`` ``(T, 1, 12, 35)`` (the MFCC window of each frame), ``audio`` float32 at ``sr``,
    ``points`` ``(T, 3, 2)`` eyes and nose in the *source* frames, ``matrices`` ``(T, 2, 3)``
    source -> canonical, ``opening`` ``(T,)`` the true mouth opening (generated clips: the
    inner-lip gap of the landmarks; real videos: :func:`~voicebook.face_metrics.mouth_edges`
    of the registered frames), ``source`` the clip or video item it came from, ``landmarks``
    ``(T, 68, 2)`` all 68 points in the source frames (generated clips only, else None)."""

    id: str
    identity: str
    split: str
    frames: np.ndarray
    windows: torch.Tensor
    audio: np.ndarray
    sr: int
    points: np.ndarray
    matrices: np.ndarray
    opening: np.ndarray
    fps: float = 25.0
    source: Any = None
    landmarks: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def voice(self) -> str:
        """Whose voice the audio is: a generated clip's speech-corpus speaker (its person keeps
        one voice), a real video's speaker (VoxCeleb2; LRW names none: the clip's own id)."""
        return getattr(self.source, "speaker", None) or self.identity

    def source_frames(self) -> np.ndarray:
        """The unregistered frames ``(T, H, W, 3)`` uint8 of the clip or video this track came from
        (decoded again), e.g. the target video of a re-dub (4.3); ``points`` locate the face in them."""
        if self.source is None:
            raise ValueError(f"{self.id}: this track keeps no source to read its frames from")
        frames = self.source.load().frames if hasattr(self.source, "identity") else \
            self.source.load(self.fps, self.sr).frames
        return np.asarray(frames)[:self.n_frames]


def generated_canonical_points() -> np.ndarray:
    """The generated faces' canonical eyes + nose ``(3, 2)``: those of the exemplar face
    (:func:`voicebook.data.face_geometry.canonical_landmarks`, Fig. 3 middle). Real photos use
    :data:`voicebook.faces_prep.CANONICAL_112` instead (a tighter crop)."""
    from .data.face_geometry import canonical_landmarks

    return fp.eyes_nose_from_68(canonical_landmarks())


def register_frames(frames, points, canonical_points, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Register every frame (Fig. 3): the similarity taking ``points[t]`` (eyes + nose of frame
    ``t``, ``(T, n, 2)``) to ``canonical_points`` ``(n, 2)``, applied to ``frames[t]`` ->
    ``(registered (T, size, size, 3) uint8, matrices (T, 2, 3))``."""
    frames, points = np.asarray(frames), np.asarray(points, dtype=np.float64)
    if frames.ndim != 4 or points.ndim != 3 or len(frames) != len(points):
        raise ValueError(f"register_frames: expected (T, H, W, 3) frames and (T, n, 2) points, got "
                         f"{frames.shape} and {points.shape}")
    out = np.empty((len(frames), size, size, 3), np.uint8)
    mats = np.empty((len(frames), 2, 3))
    for t, (img, p) in enumerate(zip(frames, points)):
        reg, mats[t] = fp.register(img, p, canonical_points, size)
        out[t] = reg if reg.dtype == np.uint8 else (np.clip(reg, 0, 1) * 255 + 0.5).astype(np.uint8)
    return out, mats


#: 68-point landmarks that move rigidly with the head but that registration does not fit (it
#: uses the eye centres and the nose tip): the face contour level with the eyes (0 and 16, above
#: where the generator's jaw drop bends the contour) and the brows (17-26, never animated by
#: :mod:`voicebook.data.face_animation`: only the mouth, lids, gaze, pose and light move).
HELD_OUT_POINTS = (0, 16) + BROWS


def _spread(points: np.ndarray) -> float:
    """How much points ``(T, n, 2)`` move over a clip: the std over frames of each x and y,
    averaged (pixels)."""
    return float(np.asarray(points, np.float64).std(0).mean())


def registration_motion(points, matrices) -> dict[str, float]:
    """How much ``points`` ``(T, n, 2)`` (pixels, source frames) move over a clip before and
    after each frame's registration ``matrices`` ``(T, 2, 3)`` (section 2, Fig. 3): their spread
    (:func:`_spread`) -> ``{"before", "after"}``."""
    pts, mats = np.asarray(points, np.float64), np.asarray(matrices, np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 2 or mats.shape != (len(pts), 2, 3):
        raise ValueError(f"registration_motion: expected (T, n, 2) points and (T, 2, 3) matrices, got "
                         f"{pts.shape} and {mats.shape}")
    registered = np.stack([fp.apply_similarity(m, p) for m, p in zip(mats, pts)])
    return {"before": _spread(pts), "after": _spread(registered)}


def held_out_motion(landmarks, matrices, idx: Sequence[int] = HELD_OUT_POINTS) -> dict[str, float]:
    """A check of the registration on points it was *not* fitted to: :func:`registration_motion`
    of the rigid landmarks ``idx`` (:data:`HELD_OUT_POINTS`) of ``landmarks`` ``(T, 68, 2)``.
    Unlike the eyes and nose, which a least-squares fit to those same points nearly zeroes by
    construction, these stay still only if the whole head is registered."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"held_out_motion: expected (T, 68, 2) landmarks, got {lm.shape}")
    return registration_motion(lm[:, list(idx)], matrices)


def track_points(frames, name: str = "video", smooth: int = 5, every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eyes + nose on every frame of a real video (section 2's tracking, with
    :func:`voicebook.faces_prep.landmarks`): detected on every ``every``-th frame, frames where
    detection fails filled by linear interpolation in time (the edge detections held), then a
    moving average over ``smooth`` frames (detected eyes jitter by a few pixels) ->
    ``(points (T, 3, 2), found (T,) bool)``. Raises :class:`~voicebook.faces_prep.NoFaceError`
    naming ``name`` if no frame has a face with two eyes."""
    frames = np.asarray(frames)
    n = len(frames)
    found = np.zeros(n, bool)
    pts = np.zeros((n, 3, 2))
    for t in range(0, n, max(int(every), 1)):
        try:
            pts[t] = fp.landmarks(frames[t], f"{name} frame {t}")
            found[t] = True
        except fp.NoFaceError:
            pass
    if not found.any():
        raise fp.NoFaceError(f"{name}: no face found in any of its {n} frames (DLIB HOG or OpenCV Haar detectors: a frontal, "
                             f"upright face with both eyes visible is needed)")
    times, have = np.arange(n), np.flatnonzero(found)
    flat = pts.reshape(n, 6)
    filled = np.stack([np.interp(times, have, flat[have, j]) for j in range(6)], 1)
    if smooth and smooth > 1 and n > 1:
        k = min(int(smooth), n)
        padded = np.pad(filled, ((k // 2, k - 1 - k // 2), (0, 0)), mode="edge")
        filled = np.stack([np.convolve(padded[:, j], np.ones(k) / k, mode="valid") for j in range(6)], 1)
    return filled.reshape(n, 3, 2), found


def from_generated(clip, canonical_points=None) -> TalkingClip:
    """A generated :class:`~voicebook.data.faces.FaceClip`, registered by the eyes and nose of its
    own landmarks to ``canonical_points`` (default :func:`generated_canonical_points`)."""
    data = clip.load()
    canon = generated_canonical_points() if canonical_points is None else np.asarray(canonical_points)
    points = fp.eyes_nose_from_68(data.landmarks)
    frames, mats = register_frames(data.frames, points, canon)
    windows = mfcc_windows(data.audio, data.sr, n_frames=len(frames), fps=data.fps)
    return TalkingClip(clip.id, clip.identity, clip.split, frames, windows, data.audio, data.sr, points, mats,
                       np.asarray(data.mouth_open, np.float32), data.fps, clip, np.asarray(data.landmarks))


def from_video(item, canonical_points=fp.CANONICAL_112, fps: float = 25.0, sr: int = 16000,
               split: str | None = None) -> TalkingClip:
    """A real video (:class:`~voicebook.data.videos.VideoItem`): decoded at ``fps`` and ``sr``,
    eyes + nose tracked (:func:`track_points`), registered to ``canonical_points``. Its identity
    is the VoxCeleb2 speaker, or for LRW (no speaker labels) the clip itself; ``split`` "train"
    or "test" (default: "test" for the corpus' test split, else "train"). Video frames past the
    audio's end (by more than one frame, :func:`~voicebook.models.speech2vid.max_video_frames`)
    are dropped: no audio window drives them."""
    video = item.load(fps, sr)
    raw = np.asarray(video.frames)[:max_video_frames(len(video.audio), video.sr, video.fps)]
    points, _ = track_points(raw, str(item.path))
    frames, mats = register_frames(raw, points, canonical_points)
    windows = mfcc_windows(video.audio, video.sr, n_frames=len(frames), fps=video.fps)
    opening = fm.mouth_edges(frames, fm.mouth_points_from_eyes_nose(canonical_points)).astype(np.float32)
    split = split or ("test" if item.split == "test" else "train")
    return TalkingClip(item.id, item.speaker or item.id, split, frames, windows, video.audio, video.sr, points,
                       mats, opening, video.fps, item)


@dataclass
class TalkingSet:
    """What :func:`load_talking_clips` returns: registered ``train`` and ``test`` tracks, the
    ``canonical`` eyes + nose they are registered to, the ``corpus`` name ("generated", "lrw",
    "voxceleb2"), the underlying ``source`` set, and the real videos ``skipped``, one message
    each (it names the file and why: no face, undecodable, no usable sound)."""

    train: list[TalkingClip]
    test: list[TalkingClip]
    canonical: np.ndarray
    corpus: str
    source: Any
    skipped: list[str]

    @property
    def mouth_points(self) -> np.ndarray:
        """Where the mouth is in the canonical frame, open or closed (``(4, 2)``, for
        :func:`~voicebook.face_metrics.mouth_box`), from the canonical eyes and nose."""
        return fm.mouth_points_from_eyes_nose(self.canonical)


def _round_robin(items: Sequence, key, n: int | None) -> list:
    """Up to ``n`` items taking one of each group (``key``) in turn: many people rather than
    many clips of the first few."""
    groups: dict = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    out, lists = [], list(groups.values())
    for depth in range(max((len(g) for g in lists), default=0)):
        out += [g[depth] for g in lists if depth < len(g)]
    return out if n is None else out[:n]


def load_talking_clips(data_dir=None, *, size: str = "smoke", seed: int = 0, max_train: int | None = None,
                       max_test: int | None = None, fps: float = 25.0, sr: int = 16000) -> TalkingSet:
    """The registered train and test tracks: the generated face set of ``size`` (``data_dir``
    None; test identities and voices held out) or the LRW / VoxCeleb2 videos in ``data_dir``
    (train: LRW's train, VoxCeleb2's dev split; test: their test split), up to ``max_train`` /
    ``max_test`` clips spread over people (VoxCeleb2) or words (LRW). A video in which no face
    is found, that ffmpeg cannot decode, or whose sound is missing, silent or too short is
    skipped with a warning (one broken file of thousands must not stop a run);
    :class:`~voicebook.faces_prep.NoFaceError` if no video of a split is usable,
    :class:`~voicebook.checks.CorpusError` if the folder is not a video corpus or lacks a split."""
    if data_dir is None:
        from .data.faces import load_faces

        faces = load_faces(size=size, seed=seed)
        canon = generated_canonical_points()
        train = [from_generated(c, canon) for c in faces.split("train")][:max_train]
        test = [from_generated(c, canon) for c in faces.split("test")][:max_test]
        return TalkingSet(train, test, canon, "generated", faces, [])
    from .data.videos import load_videos

    videos = load_videos(data_dir)
    train_split = "train" if videos.corpus == "lrw" else "dev"
    for need in (train_split, "test"):
        if need not in videos.splits:
            raise CorpusError(f"{videos.root}: this {videos.corpus} folder has no {need!r} split (it has "
                              f"{videos.splits}); chapter 5 trains on {train_split!r} and tests on 'test'")
    key = (lambda v: v.word) if videos.corpus == "lrw" else (lambda v: v.speaker)
    skipped: list[str] = []
    sets = {}
    for split, cap in ((train_split, max_train), ("test", max_test)):
        clips = []
        for item in _round_robin(videos.split(split), key, None):
            if cap is not None and len(clips) >= cap:
                break
            try:
                clips.append(from_video(item, fp.CANONICAL_112, fps, sr))
            except (fp.NoFaceError, CorpusError, AudioError) as err:   # no face; undecodable; no usable sound
                skipped.append(str(err))
                warnings.warn(f"skipping {item.path}: {err}", stacklevel=2)
        if not clips:
            raise fp.NoFaceError(f"{videos.root}: no usable {split!r} video in this {videos.corpus} folder "
                                 f"({len(skipped)} tried, e.g. {skipped[:2]}); each needs a decodable video and "
                                 f"audio track and a frontal face with both eyes visible (DLIB HOG or OpenCV Haar detectors)")
        sets[split] = clips
    return TalkingSet(sets[train_split], sets["test"], fp.CANONICAL_112.copy(), videos.corpus, videos, skipped)


# ----------------------------------------------------------------------------- Speech2Vid's examples (3.2, Fig. 7)

def _rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2 ** 63, int(i)])


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class _Frames(Dataset):
    """Every frame of a list of clips, indexed ``i % total``; ``repeats`` epochs' worth of items."""

    def __init__(self, clips: Sequence[TalkingClip], repeats: int = 1):
        self.clips = [c for c in clips if c.n_frames > 0]
        if not self.clips:
            raise ValueError(f"{type(self).__name__}: no clips with frames")
        self.offsets = np.cumsum([0] + [c.n_frames for c in self.clips])
        self.total = int(self.offsets[-1])
        self.repeats = max(int(repeats), 1)

    def __len__(self) -> int:
        return self.total * self.repeats

    def locate(self, i: int) -> tuple[int, int]:
        """Item ``i`` -> (clip index, frame index)."""
        if not 0 <= i < len(self):
            raise IndexError(f"{type(self).__name__}: index {i} out of range 0..{len(self) - 1}")
        g = i % self.total
        k = int(np.searchsorted(self.offsets, g, side="right") - 1)
        return k, g - int(self.offsets[k])


class TalkingFaceFrames(_Frames):
    """Speech2Vid's training examples (3.2 "Training protocol", Fig. 7; 4.2 for five stills).

    Item ``i`` is frame ``t`` of clip ``k`` (every frame once per ``len(clips frames)`` items,
    ``repeats`` times over): ``(window (1, 12, 35) float32, stills (3 n_stills, 112, 112) uint8,
    target (3, 112, 112) uint8)``, the target being the middle frame of the audio window and
    the stills ``n_stills`` distinct frames of the *same* clip "randomly sampled from future
    frames far from actual audio/output" (Fig. 7): at least ``min_gap`` frames *after* ``t``
    (:meth:`still_candidates`). Where fewer than ``n_stills`` such frames exist (``t`` near the
    clip's end) every frame at least ``min_gap`` away on either side is a candidate (for one
    still: those at least ``min_gap`` *before* ``t``); in a clip too short for that, its frames
    farthest from ``t``. Which stills: a pure function of ``(seed, i)``. Batch with the default
    collate; train with :func:`talking_face_loss`.
    """

    def __init__(self, clips: Sequence[TalkingClip], n_stills: int = 1, min_gap: int = 12, seed: int = 0,
                 repeats: int = 1):
        super().__init__(clips, repeats)
        if n_stills < 1:
            raise ValueError(f"TalkingFaceFrames: n_stills must be >= 1, got {n_stills}")
        self.n_stills, self.min_gap, self.seed = int(n_stills), int(min_gap), int(seed)

    def still_candidates(self, k: int, t: int) -> np.ndarray:
        """The frames ``(m,)`` of clip ``k`` its stills for target frame ``t`` are drawn from
        (Fig. 7): those at least ``min_gap`` after ``t``; if fewer than ``n_stills``, those at
        least ``min_gap`` from ``t`` on either side (near the end: before it); if still fewer,
        the ``n_stills`` frames farthest from ``t`` (a short clip)."""
        times = np.arange(self.clips[k].n_frames)
        far = np.flatnonzero(times >= t + self.min_gap)                 # the future (Fig. 7)
        if len(far) < self.n_stills:                                    # near the clip's end
            far = np.flatnonzero(np.abs(times - t) >= self.min_gap)
        if len(far) < self.n_stills:                                    # short clip: the farthest frames
            far = np.argsort(-np.abs(times - t), kind="stable")[:self.n_stills]
        return far

    def still_times(self, i: int) -> tuple[int, int, np.ndarray]:
        """Item ``i`` -> ``(clip index, target frame t, still frames (n_stills,))``, drawn without
        replacement from :meth:`still_candidates` by the generator of ``(seed, i)``."""
        k, t = self.locate(i)
        far = self.still_candidates(k, t)
        rng = _rng(self.seed, i)
        return k, t, rng.choice(far, self.n_stills, replace=len(far) < self.n_stills)

    def __getitem__(self, i: int):
        k, t, stills = self.still_times(i)
        clip = self.clips[k]
        images = torch.from_numpy(clip.frames[stills]).permute(0, 3, 1, 2)          # (n, 3, 112, 112)
        return clip.windows[t].float(), images.reshape(-1, *images.shape[2:]).contiguous(), _chw(clip.frames[t])


def talking_face_loss(model: nn.Module, batch) -> torch.Tensor:
    """Eq. (1) (:func:`~voicebook.models.speech2vid.speech2vid_loss`) on a
    :class:`TalkingFaceFrames` batch, its uint8 images turned into [0, 1] floats on the device
    (four times less to copy there than floats)."""
    windows, stills, target = batch
    return speech2vid_loss(model, (windows, stills.float() / 255.0, target.float() / 255.0))


# ----------------------------------------------------------------------------- the identity encoder's pre-training

class IdentityFrames(_Frames):
    """Registered frames labelled with who they show: item ``i`` -> ``(frame (3, 112, 112) uint8,
    label int64)``, labels indexing :attr:`identities` (sorted)."""

    def __init__(self, clips: Sequence[TalkingClip], repeats: int = 1):
        super().__init__(clips, repeats)
        self.identities = sorted({c.identity for c in self.clips})
        self._label = [self.identities.index(c.identity) for c in self.clips]

    def __getitem__(self, i: int):
        k, t = self.locate(i)
        return _chw(self.clips[k].frames[t]), torch.tensor(self._label[k])


class IdentityClassifier(nn.Module):
    """The identity encoder (one still) with a linear layer on its 256-d fc7: logits over
    ``n_classes`` identities. Stands in for the VGG-M face recogniser of 3.2."""

    def __init__(self, n_classes: int, width: float = 1.0, embed: int = 256):
        super().__init__()
        self.encoder = IdentityEncoder(1, width, embed)
        self.head = nn.Linear(embed, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return self.head(self.encoder(x).fc7)


def identity_loss(model: nn.Module, batch):
    """``loss_fn`` for :func:`voicebook.train.fit` on :class:`IdentityFrames`: cross-entropy,
    and the batch accuracy logged."""
    images, labels = batch
    logits = model(images)
    return F.cross_entropy(logits.float(), labels), {"accuracy": (logits.argmax(1) == labels).float().mean()}


_CONV = ("conv1.", "conv2.", "conv3.", "conv45.")


def transfer_identity_conv(model: Speech2Vid, encoder: IdentityEncoder) -> list[str]:
    """Start ``model``'s identity encoder from a pre-trained one (3.2: "Only the weights of the
    convolutional layers are used ... the fully-connected layers are reinitialized"): conv1-5
    and their batch norms copied, fc6-fc7 left as they are. For ``n_stills`` > 1 conv1's
    filters are repeated over the stills and divided by their number, so ``n`` copies of one
    still give the pre-trained conv1 response. -> the names of the copied tensors."""
    mine, theirs = model.identity_encoder.state_dict(), encoder.state_dict()
    copied = []
    for name, value in theirs.items():
        if not name.startswith(_CONV):
            continue
        if name not in mine:
            raise ValueError(f"transfer_identity_conv: the pre-trained encoder has {name}, the model has not")
        target = mine[name]
        if value.shape != target.shape:
            n = target.shape[1] // value.shape[1] if value.ndim == 4 else 0
            if value.ndim == 4 and value.shape[1] * n == target.shape[1] and value.shape[0] == target.shape[0] \
                    and value.shape[2:] == target.shape[2:]:
                value = value.repeat(1, n, 1, 1) / n                     # conv1 over n stills
            else:
                raise ValueError(f"transfer_identity_conv: {name} is {tuple(value.shape)} in the pre-trained "
                                 f"encoder but {tuple(target.shape)} in the model (same width needed)")
        mine[name] = value.clone()
        copied.append(name)
    model.identity_encoder.load_state_dict(mine)
    return copied


def face_only(frames, canonical_points, top: float = -0.4, grey: int = 128) -> np.ndarray:
    """Registered frames ``(T, S, S, 3)`` uint8 with everything but the face set to ``grey``.

    The face is :func:`voicebook.redub.lower_face_mask` around ``canonical_points`` (eyes +
    nose, ``(3, 2)`` pixels) started ``top`` interocular distances *above* the eye line (-0.4:
    the brows) instead of below it, down to the chin. Background, hair, ears and clothes, which
    a generated person keeps in every clip, are greyed out."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"face_only: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    inside = lower_face_mask(canonical_points, frames.shape[1:3], top=top)[None, :, :, None] > 0
    return np.where(inside, frames, np.uint8(grey))


def identity_retrieval(embeddings, identities) -> dict[str, float]:
    """How well clip embeddings ``(n, d)`` (any scale: compared by cosine) tell the people
    ``identities`` ``(n,)`` apart -> ``{"top1", "chance", "auc"}``:

    * ``top1``: the fraction of clips whose nearest *other* clip shows the same person;
    * ``chance``: the ``top1`` of a nearest clip drawn at random;
    * ``auc``: the ROC AUC of the cosine over all same-person vs different-person pairs (0.5 is
      chance, 1 every same pair closer than every different one; ties count half). It still
      ranks encoders where ``top1`` is saturated. NaN where there is no pair of one kind (an LRW
      test set, whose every clip is its own identity), all three NaN for a single clip."""
    e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    who = np.asarray(identities)
    if e.ndim != 2 or len(e) != len(who):
        raise ValueError(f"identity_retrieval: expected (n, d) embeddings and n identities, "
                         f"got {tuple(e.shape)} and {len(who)}")
    if not torch.isfinite(e).all():
        raise ValueError("identity_retrieval: the embeddings hold NaN or inf")
    if len(e) < 2:
        return {"top1": float("nan"), "chance": float("nan"), "auc": float("nan")}
    e = F.normalize(e, dim=1)
    sim = (e @ e.T).numpy()
    np.fill_diagonal(sim, -np.inf)
    same = who[:, None] == who[None, :]
    top1 = float(np.mean(same[np.arange(len(who)), sim.argmax(1)]))
    chance = float(np.mean((same.sum(1) - 1) / (len(who) - 1)))
    upper = np.triu(np.ones_like(same), 1)
    pos, neg = sim[upper & same], sim[upper & ~same]
    auc = float("nan")
    if len(pos) and len(neg):
        auc = float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))
    return {"top1": top1, "chance": chance, "auc": auc}


# ----------------------------------------------------------------------------- the deblurring CNN's examples (3.3)

class BlurredFaces(_Frames):
    """The deblurring CNN's training pairs (3.3, Fig. 9): item ``i`` -> ``(blurred, sharp)``, both
    float ``(3, crop, crop)`` in [0, 1]: a registered frame blurred by
    :func:`~voicebook.models.speech2vid.blur` and the original, the same random ``crop`` of
    each (the CNN is fully convolutional; ``crop`` None keeps the whole frame). Pure function of
    ``(seed, i)``."""

    def __init__(self, clips: Sequence[TalkingClip], crop: int | None = 48, seed: int = 0, repeats: int = 1):
        super().__init__(clips, repeats)
        self.crop, self.seed = crop, int(seed)

    MARGIN = 10        # >= half of blur()'s largest kernel (19 x 19 at its defaults)

    def __getitem__(self, i: int):
        k, t = self.locate(i)
        rng = _rng(self.seed, i)
        image = _chw(self.clips[k].frames[t])
        h, w = image.shape[-2:]
        c = h if self.crop is None else min(int(self.crop), h, w)
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        # blur the crop with a margin of real pixels around it (as blurring the whole frame
        # would, but cheaper), then keep the crop
        y0, x0 = max(y - self.MARGIN, 0), max(x - self.MARGIN, 0)
        region = image[:, y0:min(y + c + self.MARGIN, h), x0:min(x + c + self.MARGIN, w)].float()[None] / 255.0
        blurred = blur(region, rng)[0].clamp(0, 1)
        sl = (slice(None), slice(y - y0, y - y0 + c), slice(x - x0, x - x0 + c))
        return blurred[sl].contiguous(), region[0][sl].contiguous()


# ----------------------------------------------------------------------------- test time

def spread_stills(clip: TalkingClip, n: int) -> np.ndarray:
    """``n`` registered frames spread evenly over ``clip`` (not its first or last) -> ``(n, 112,
    112, 3)`` uint8: the identity stills of a test face."""
    idx = np.linspace(0, clip.n_frames - 1, n + 2)[1:-1].round().astype(int) if n > 1 else [clip.n_frames // 2]
    return clip.frames[np.asarray(idx)]


#: What :func:`score_video` returns, with "higher is better" per key.
SCORES = {"l1_face": False, "psnr_face": True, "ssim_face": True, "l1_mouth": False, "psnr_mouth": True,
          "ssim_mouth": True, "sharpness": True, "lip_sync": True, "offset": None}


def score_video(generated, true, mouth_points, opening=None, max_offset: int = 10) -> dict:
    """A generated video ``(T, h, w, 3)`` (float in [0, 1] or uint8) against the true registered
    frames ``true`` (same shape): L1 (mean absolute error, [0, 1] scale), PSNR (dB) and SSIM on
    the whole face and on the mouth (the :func:`~voicebook.face_metrics.mouth_box` of
    ``mouth_points``), the generated frames' sharpness, the lip-sync correlation of the generated
    mouth's opening (the pixel measure :func:`~voicebook.face_metrics.mouth_edges`) with the true
    one (``opening``, e.g. the landmarks' inner-lip gap; default the same pixel measure on
    ``true``) and the sync offset in frames (:func:`~voicebook.face_metrics.sync_offset`: 0 is
    in sync; searched over ``max_offset``)."""
    def unit(x):
        x = np.asarray(x)
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    gen, ref = unit(generated), unit(true)
    if gen.shape != ref.shape:
        raise ValueError(f"score_video: generated {gen.shape} and true {ref.shape} frames differ in shape")
    g_mouth, r_mouth = fm.mouth_crop(gen, mouth_points), fm.mouth_crop(ref, mouth_points)
    truth = fm.mouth_edges(ref, mouth_points) if opening is None else np.asarray(opening, np.float64)
    mine = fm.mouth_edges(gen, mouth_points)
    k = int(min(max_offset, len(gen) - 3))
    offset = fm.sync_offset(mine, truth, max_offset=k)[0] if k >= 1 else 0
    return {"l1_face": float(np.abs(gen - ref).mean()), "psnr_face": fm.psnr(ref, gen), "ssim_face": fm.ssim(ref, gen),
            "l1_mouth": float(np.abs(g_mouth - r_mouth).mean()), "psnr_mouth": fm.psnr(r_mouth, g_mouth),
            "ssim_mouth": fm.ssim(r_mouth, g_mouth), "sharpness": fm.sharpness(gen),
            "lip_sync": fm.lip_sync_correlation(mine, truth), "offset": int(offset)}
