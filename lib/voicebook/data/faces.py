"""Generated talking faces for chapter 5 (Chung, Jamaludin & Zisserman, "You said that?").

The paper trains on VoxCeleb and LRW face tracks (section 2: detected, tracked, registered
112 x 112 crops at 25 fps with their audio) and shows its model faces and voices it never saw.
The offline stand-in: generated people (:mod:`voicebook.data.face_identity`) speaking the
espeak speech corpus (:mod:`voicebook.data.speech`), their mouths following its phoneme
timings (:mod:`voicebook.data.face_animation`), with head motion, blinks, gaze and light, and
68 landmarks per frame (:mod:`voicebook.data.face_render`). Every frame is drawn in the
canonical face frame and warped by one similarity transform (the head pose), so the landmarks
are that transform applied to the canonical ones.

Two sets:

* ``train``: training identities speaking *train* utterances of the corpus' other speakers;
* ``test``: held-out identities speaking *test* utterances of held-out voices
  (:data:`TEST_SPEAKERS`), so both the face and the voice are new (the paper's Fig. 1).

Each person keeps one voice (of their sex) across their clips. One clip is one ``.npz``: the
canonical (unwarped, unlit) frames, delta-coded in time (mostly zeros: only the mouth and eyes
move, so they deflate ~30x where the camera-view frames would not deflate 2x), the animation
tracks (head pose, light, mouth, blinks), the canonical landmarks and a copy of the utterance's
16-bit audio. :meth:`FaceClip.load` warps and lights the frames again, exactly as
:func:`render_clip` does, into a :class:`ClipData`. Cached with a manifest like the other
generated sets; deterministic by seed (same seed, same bytes).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from ..checks import CorpusError
from ..files import atomic_path, sha256
from . import cache
from .face_animation import FPS, animate, apply_lighting, pose_matrix
from .face_geometry import face_landmarks
from .face_identity import SIZE, Identity, draw_identity
from .face_render import FaceRenderer

__all__ = ["FPS", "SIZE", "SPLITS", "SIZES", "TEST_SPEAKERS", "ClipData", "FaceClip", "FaceSet", "render_clip",
           "plan_faces", "generate_faces", "load_faces", "still"]

GENERATOR, VERSION = "faces", 1
SPLITS = ("train", "test")
#: Identities per split, clips per identity, the longest utterance used (s), the speech corpus size.
SIZES = {
    "smoke": {"train": 12, "test": 4, "clips": 2, "max_seconds": 4.0, "speech": "smoke"},
    "standard": {"train": 48, "test": 12, "clips": 10, "max_seconds": 6.0, "speech": "standard"},
    "paper": {"train": 400, "test": 50, "clips": 20, "max_seconds": 8.0, "speech": "paper"},
}
#: Voices of the test set only: two women, two men, US and UK English.
TEST_SPEAKERS = ("en-us-f4", "en-gb-f3", "en-us-m3", "en-gb-m4")


@dataclass(frozen=True)
class ClipData:
    """One clip's arrays, ``T`` frames at ``fps``: ``frames`` uint8 ``(T, 112, 112, 3)`` RGB;
    ``landmarks`` float32 ``(T, 68, 2)`` pixels (iBUG order, see
    :mod:`~voicebook.data.face_geometry`); ``affine`` float32 ``(T, 2, 3)`` canonical -> frame;
    ``mouth`` float32 ``(T, 4)`` (jaw, spread, round, teeth); ``mouth_open`` float32 ``(T,)``
    the inner-lip gap in canonical pixels (the lip-sync ground truth); ``blink`` float32
    ``(T,)`` 0 open .. 1 shut; ``audio`` float32 ``(samples,)`` at ``sr`` Hz (None if none)."""

    frames: np.ndarray
    landmarks: np.ndarray
    affine: np.ndarray
    mouth: np.ndarray
    mouth_open: np.ndarray
    blink: np.ndarray
    fps: float = FPS
    audio: np.ndarray | None = None
    sr: int | None = None


def render_clip(identity: Identity, phonemes, duration: float, *, seed: int = 0, audio=None,
                sr: int | None = None, fps: float = FPS) -> ClipData:
    """``identity`` saying ``phonemes`` (``(phone, start_s, end_s)`` tuples) for ``duration``
    seconds, head, eyes and light drawn from ``seed``; ``ceil(duration * fps)`` frames. With
    ``audio`` (samples at ``sr`` Hz) the clip carries it, e.g. to re-dub a face (section 4.3)."""
    anim = animate(tuple(phonemes), duration, seed, fps)
    canonical, canon_landmarks = _canonical(identity, anim)
    return _clip_data(canonical, canon_landmarks, anim.mouth, anim.blink, anim.pose, anim.light, fps, audio, sr)


def _clip_data(canonical, canon_landmarks, mouth, blink, pose, light, fps, audio, sr) -> ClipData:
    """The clip seen by the camera: canonical frames warped by the head pose and lit."""
    frames, affine = _to_video(canonical, pose, light)
    landmarks = np.einsum("tij,tnj->tni", affine[:, :, :2], canon_landmarks) + affine[:, None, :, 2]
    opening = np.linalg.norm(canon_landmarks[:, 66] - canon_landmarks[:, 62], axis=1)
    wav = None if audio is None else np.asarray(audio, np.float32)
    return ClipData(frames, landmarks.astype(np.float32), affine, np.asarray(mouth, np.float32),
                    opening.astype(np.float32), np.asarray(blink, np.float32), fps, wav, sr)


def _canonical(identity: Identity, anim) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, 112, 112, 3)`` and landmarks ``(T, 68, 2)`` in the canonical face frame."""
    renderer = FaceRenderer(identity)
    frames = np.empty((len(anim.times), SIZE, SIZE, 3), np.uint8)
    for k in range(len(frames)):
        frames[k] = renderer.image(anim.mouth[k], anim.blink[k], anim.gaze[k])
    return frames, face_landmarks(identity, anim.mouth, anim.blink)


def _to_video(canonical: np.ndarray, pose: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical frames warped by the head poses ``(T, 4)`` (one similarity each) and lit by
    ``light`` ``(T, 5)``: ``(frames uint8 (T, 112, 112, 3), affine float32 (T, 2, 3))``."""
    affine = np.stack([pose_matrix(p) for p in pose]).astype(np.float32)
    warped = np.empty_like(canonical)
    for k, (img, m) in enumerate(zip(canonical, affine)):
        warped[k] = cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return apply_lighting(warped, light), affine


@dataclass(frozen=True)
class FaceClip:
    """One generated clip: who (``identity``), saying what (``utterance`` of ``speaker``, its
    ``text``, ``language`` and ``phonemes``), ``n_frames`` at ``fps``, ``duration`` s, audio at
    ``sr`` Hz, the ``seed`` of its head, eye and light motion; :meth:`load` reads its arrays."""

    id: str
    split: str
    identity: str
    speaker: str
    utterance: str
    language: str
    text: str
    phonemes: tuple
    path: Path
    n_frames: int
    duration: float
    sr: int
    seed: int
    fps: float = FPS

    def load(self) -> ClipData:
        """The clip's arrays (:class:`ClipData`), rebuilt exactly as :func:`render_clip` made them."""
        try:
            with np.load(self.path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
            canonical = np.cumsum(a["canonical_delta"], axis=0, dtype=np.uint8)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise CorpusError(f"{self.path}: cannot read this face clip ({err}); "
                              f"load_faces() repairs the cache") from err
        return _clip_data(canonical, a["canonical_landmarks"], a["mouth"], a["blink"], a["pose"], a["light"], self.fps,
                          a["audio"].astype(np.float32) / 32768.0, int(a["sr"]))


@dataclass
class FaceSet:
    """The clips, the identities (id -> :class:`Identity`) and the folder they live in."""

    clips: list[FaceClip]
    identities: dict[str, Identity]
    root: Path

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self):
        return iter(self.clips)

    def split(self, name: str) -> list[FaceClip]:
        """``"train"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"unknown face set split {name!r}; choose one of {SPLITS}")
        return [c for c in self.clips if c.split == name]

    def by_identity(self, identity: str) -> list[FaceClip]:
        return [c for c in self.clips if c.identity == identity]


# ----------------------------------------------------------------------------- the plan

def _speech(size: str, seed: int, speech=None, cache_dir=None, workers=None):
    from .speech import load_corpus

    return speech if speech is not None else load_corpus(None, size=SIZES[size]["speech"], seed=seed,
                                                         cache_dir=cache_dir, workers=workers)


def _voices(split: str, speech) -> dict[str, list]:
    """Speaker id -> usable utterances, for a split: train speakers' train utterances, or the
    held-out speakers' test utterances."""
    want = "test" if split == "test" else "train"
    out: dict[str, list] = {}
    for u in speech:
        if (u.speaker in TEST_SPEAKERS) == (split == "test") and u.split == want and u.phonemes:
            out.setdefault(u.speaker, []).append(u)
    if not out:
        raise CorpusError(f"{speech.root}: no {want} utterances with phoneme timings for the {split} faces "
                          f"(held-out voices: {TEST_SPEAKERS}); use the generated speech corpus")
    return out


def _split_jobs(split: str, size: str, seed: int, speech) -> dict[str, dict]:
    """The clips of one split: identity ``i`` (sex alternating) gets a voice of its sex and
    ``clips`` of that voice's utterances no longer than ``max_seconds``."""
    conf, voices = SIZES[size], _voices(split, speech)
    rng = random.Random(f"faces/{seed}/{split}")
    pools, queues, used = {}, {}, {}
    for spk, utts in sorted(voices.items()):
        short = [u for u in utts if u.duration <= conf["max_seconds"]]
        rng.shuffle(short)                      # then, if a voice has too few, its shortest long ones
        queues[spk] = short + sorted((u for u in utts if u.duration > conf["max_seconds"]), key=lambda u: u.duration)
        used[spk] = 0
        pools.setdefault(speech.speakers[spk].sex, []).append(spk)
    for pool in pools.values():
        rng.shuffle(pool)
    jobs, count = {}, {}
    for i in range(conf[split]):
        sex = "FM"[i % 2] if len(pools) == 2 else next(iter(pools))
        idn = draw_identity(i, seed, sex=sex, prefix=split)
        spk = pools[sex][count.get(sex, 0) % len(pools[sex])]
        count[sex] = count.get(sex, 0) + 1
        for _ in range(min(conf["clips"], len(queues[spk]))):     # never one utterance twice per face
            u = queues[spk][used[spk] % len(queues[spk])]
            used[spk] += 1
            clip_id = f"{idn.id}_{u.id}"
            jobs[f"{split}/{clip_id}.npz"] = {
                "id": clip_id, "split": split, "identity": idn.params(), "speaker": u.speaker, "utterance": u.id,
                "language": u.language, "text": u.text, "phonemes": [list(p) for p in u.phonemes],
                "duration": u.duration, "wav": str(u.path), "wav_sha256": sha256(u.path),
                "seed": rng.randrange(2 ** 31)}
    return jobs


def plan_faces(size: str = "smoke", seed: int = 0, *, speech=None, cache_dir=None) -> dict[str, dict]:
    """Relative path -> job of every clip :func:`generate_faces` makes (no rendering). ``speech``:
    the generated speech corpus to speak (default: ``load_corpus(None, size=SIZES[size]["speech"],
    seed=seed, cache_dir=cache_dir)``)."""
    if size not in SIZES:
        raise ValueError(f"unknown face set size {size!r}; choose one of {sorted(SIZES)}")
    speech = _speech(size, seed, speech, cache_dir)
    return {rel: job for split in SPLITS for rel, job in _split_jobs(split, size, seed, speech).items()}


# ----------------------------------------------------------------------------- making clips

def _save_npz(path: Path, arrays: dict) -> None:
    """A ``.npz`` (deflated) that is byte-identical for identical arrays (fixed zip timestamps),
    written atomically."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue(), compresslevel=6)


def _make_clip(folder: Path, relpath: str, job: dict) -> dict:
    """Cache worker: render one clip into ``folder/relpath``; -> its manifest metadata."""
    if sha256(job["wav"]) != job["wav_sha256"]:
        raise CorpusError(f"{job['wav']}: the speech utterance changed since the face set was planned; "
                          f"regenerate the speech corpus or the face set")
    audio, sr = sf.read(job["wav"], dtype="int16", always_2d=False)
    anim = animate(tuple(tuple(p) for p in job["phonemes"]), job["duration"], job["seed"], FPS)
    canonical, canon_landmarks = _canonical(Identity.from_params(job["identity"]), anim)
    delta = np.diff(canonical, axis=0, prepend=np.zeros_like(canonical[:1]))   # uint8, wraps: cumsum undoes it
    _save_npz(Path(folder) / relpath, {"canonical_delta": delta, "canonical_landmarks": canon_landmarks,
                                        "mouth": anim.mouth, "blink": anim.blink, "pose": anim.pose,
                                        "light": anim.light, "audio": audio, "sr": np.int32(sr)})
    return {k: v for k, v in job.items() if k not in ("wav", "wav_sha256")} | {"n_frames": len(canonical), "sr": sr}


def _header(size: str, seed: int, jobs: dict) -> dict:
    stable = {rel: {k: v for k, v in job.items() if k != "wav"} for rel, job in jobs.items()}
    plan = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
    return cache.describe(GENERATOR, VERSION, {"size": size, "plan_sha256": plan, "opencv": cv2.__version__}, seed)


def generate_faces(root, size: str = "smoke", seed: int = 0, workers: int | None = None, *, speech=None,
                   cache_dir=None) -> FaceSet:
    """Make (or complete, or repair) the generated face clips of ``size`` in ``root``; see
    :func:`plan_faces` for ``speech`` and ``cache_dir``."""
    jobs = plan_faces(size, seed, speech=_speech(size, seed, speech, cache_dir, workers))
    manifest = cache.fill(root, _header(size, seed, jobs), jobs, _make_clip, workers=workers, desc=f"faces ({size})")
    clips, identities = [], {}
    for rel, entry in sorted(manifest["files"].items()):
        m = entry["meta"]
        idn = Identity.from_params(m["identity"])
        identities[idn.id] = idn
        clips.append(FaceClip(m["id"], m["split"], idn.id, m["speaker"], m["utterance"], m["language"], m["text"],
                              tuple(tuple(p) for p in m["phonemes"]), Path(root) / rel, m["n_frames"], m["duration"],
                              m["sr"], m["seed"]))
    return FaceSet(clips, identities, Path(root))


def load_faces(*, size: str = "smoke", seed: int = 0, cache_dir=None, workers: int | None = None) -> FaceSet:
    """The generated face clips, made on first use in ``cache_dir/faces/<size>-seed<seed>-v<version>``
    (default ``cache_dir``: ``$VOICEBOOK_CACHE`` or ``~/.cache/voicebook``), speaking the speech
    corpus of the matching size cached in the same ``cache_dir``."""
    if size not in SIZES:
        raise ValueError(f"unknown face set size {size!r}; choose one of {sorted(SIZES)}")
    folder = Path(cache_dir or cache.default_cache_dir()) / "faces" / f"{size}-seed{seed}-v{VERSION}"
    return generate_faces(folder, size, seed, workers, cache_dir=cache_dir)


def still(identity: Identity) -> tuple[np.ndarray, np.ndarray]:
    """A frontal, neutral still of ``identity`` in the canonical frame (mouth closed, eyes open,
    no motion, even light): ``(image uint8 (112, 112, 3), landmarks float32 (68, 2))``."""
    img, _ = FaceRenderer(identity).render()
    return img, face_landmarks(identity)
