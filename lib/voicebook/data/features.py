"""Per-utterance features of a corpus, computed once and cached on disk.

Chapters train on log-mel spectrograms (AutoVC and the judges, ch. 1-2) or MFCCs (ch. 5) of
thousands of utterances; computing them each epoch would dominate a CPU run. :func:`log_mels`
computes them in batches on the chosen device and keeps them in one ``.pt`` file per corpus
and setting, written atomically and keyed by the settings and the utterances' checksums or
paths, so a changed corpus or setting is never served stale features.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import audio
from ..checks import AudioError, check_wave
from ..files import atomic_path, locked
from .cache import cpu_workers, default_cache_dir, process_pool

#: AutoVC's mel front end (Qian et al. 2019): 16 kHz, 1024-point STFT, hop 256, 80 bands 90-7600 Hz.
AUTOVC_MEL = dict(sr=16000, n_fft=1024, hop=256, n_mels=80, fmin=90.0, fmax=7600.0)


def _key(items, settings: dict) -> str:
    """A cache key of ``settings`` and each item's id, path, duration and file stamp (size and
    modification time: a recording replaced by another of the same length is not served stale)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for u in items:
        h.update(f"{u.id}|{u.path}|{u.duration}|{_stamp(u.path)}".encode())
    return h.hexdigest()[:16]


def _stamp(path) -> str:
    """``"size|mtime_ns"`` of the file at ``path``, or ``""`` where there is none."""
    try:
        st = Path(path).stat()
    except (OSError, TypeError):
        return ""
    return f"{st.st_size}|{st.st_mtime_ns}"


def _compute(items, settings: dict, device, progress: bool) -> dict[str, torch.Tensor]:
    s = settings
    out = {}
    for u in tqdm(items, desc="log-mel features", disable=not progress, unit="utt"):
        try:
            wav = check_wave(audio.resample(u.load(), u.sr, s["sr"]), "the recording")   # silence would train as a constant
            mel = audio.log_mel(audio.to_tensor(wav, device), s["sr"], s["n_fft"], s["hop"], s["n_mels"],
                                s["fmin"], s["fmax"])
        except AudioError as err:
            where = f" ({u.path})" if getattr(u, "path", None) else ""
            raise AudioError(f"utterance {u.id}{where}: {err}") from None
        out[u.id] = mel.cpu()
    return out


def log_mels(items, *, sr: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
             fmin: float = 90.0, fmax: float = 7600.0, device=None, cache_dir=None,
             progress: bool = True) -> dict[str, torch.Tensor]:
    """Natural-log mel spectrograms ``{utterance id: (n_mels, frames)}`` of ``items``.

    ``items``: utterances (``.id``, ``.load()``, ``.sr``), resampled to ``sr`` Hz first. Cached
    in ``cache_dir/features/logmel-<key>.pt`` (default cache dir: see
    :func:`voicebook.data.cache.default_cache_dir`); an unreadable cache file is recomputed.
    """
    items = list(items)
    settings = dict(sr=sr, n_fft=n_fft, hop=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return _cached(items, settings, "logmel", cache_dir, lambda: _compute(items, settings, device or "cpu", progress))


def _cached(items, settings: dict, kind: str, cache_dir, compute):
    """``compute()``'s ``{id: tensor or dict of tensors}``, kept in ``features/<kind>-<key>.pt``;
    a second process asking for the same file meanwhile waits for this one and reads it."""
    path = Path(cache_dir or default_cache_dir()) / "features" / f"{kind}-{_key(items, settings)}.pt"
    with locked(path, f"{kind} features"):
        if path.exists():
            try:
                cached = torch.load(path, weights_only=True)
                if set(cached) == {u.id for u in items}:
                    return cached
            except Exception:  # truncated or corrupt: compute again below
                pass
        feats = compute()
        with atomic_path(path) as tmp:
            torch.save(feats, tmp)
        return feats


def _envelope_of(job) -> tuple:
    """Worker: ``(id, (samples,) waveform at settings["sr"], settings)`` -> ``(id, bands (n_bands,
    frames), f0 (frames,))`` as numpy: no torch in the forked worker (OpenMP does not survive a
    fork, and torch tensors sent back through a pool go through shared memory, which can hang)."""
    from .. import envelope
    from ..checks import AudioError

    uid, wav, s = job
    try:
        m = envelope.analyze(wav, s["sr"], s["n_bands"], s["f0_method"])
    except AudioError as err:
        raise AudioError(f"utterance {uid}: {err}") from None
    return uid, m.bands, m.f0.astype("float32")


def _in_workers(fn, jobs: list, desc: str, workers: int | None, progress: bool) -> list:
    """``[fn(job) for job in jobs]`` in up to ``workers`` processes (default: all usable cores)."""
    bar = dict(total=len(jobs), desc=desc, disable=not progress, unit="utt")
    n = min(cpu_workers(workers), len(jobs))
    if n <= 1:
        return list(tqdm(map(fn, jobs), **bar))
    with process_pool(n) as pool:
        return list(tqdm(pool.map(fn, jobs, chunksize=8), **bar))


def mel_envelopes(items, *, sr: int = 16000, n_bands: int = 32, f0_method: str = "dio", cache_dir=None,
                  workers: int | None = None, progress: bool = True) -> dict[str, dict]:
    """WORLD mel-band envelopes and F0 of ``items`` (chapter 2's features, :mod:`voicebook.envelope`):
    ``{id: {"bands": (n_bands, frames) log power, "f0": (frames,) Hz}}`` on a 5 ms grid, after
    resampling to ``sr`` Hz (here, with torch). WORLD runs in ``workers`` processes (default:
    all usable cores); cached like :func:`log_mels`."""
    items = list(items)
    settings = dict(sr=sr, n_bands=n_bands, f0_method=f0_method, version=1)  # bump when envelope.py changes

    def compute():
        jobs = [(u.id, audio.resample(u.load(), u.sr, sr), settings) for u in items]
        done = _in_workers(_envelope_of, jobs, "WORLD mel envelopes", workers, progress)
        return {uid: {"bands": torch.from_numpy(b), "f0": torch.from_numpy(f)} for uid, b, f in done}

    return _cached(items, settings, "melenv", cache_dir, compute)


def _vocoder_of(job) -> tuple:
    """Worker: ``(id, waveform, settings)`` -> ``(id, (frames, order + 3 + n_bands) float32)``."""
    from .. import vocoder
    from ..checks import AudioError

    uid, wav, s = job
    try:
        f = vocoder.encode(wav, s["sr"], s["order"], s["n_bands"], f0_method=s["f0_method"])
    except AudioError as err:
        raise AudioError(f"utterance {uid}: {err}") from None
    return uid, f.stack().astype("float32")


def vocoder_features(items, *, sr: int = 22050, order: int = 39, n_bands: int = 7, f0_method: str = "dio",
                     cache_dir=None, workers: int | None = None, progress: bool = True) -> dict[str, torch.Tensor]:
    """WORLD vocoder parameters of ``items`` (chapter 3's acoustic targets, Li & Zen section 3):
    ``{id: (frames, order + 3 + n_bands)}`` on a 5 ms grid: ``order + 1`` mel-cepstral
    coefficients, continuous ln F0, V/UV, and ``n_bands`` band aperiodicities in dB (see
    :func:`voicebook.vocoder.encode`; 40 + 1 + 1 + 7 = 49 by default, the paper's output
    size), after resampling to ``sr`` Hz. WORLD runs in worker processes; cached like :func:`log_mels`."""
    items = list(items)
    settings = dict(sr=sr, order=order, n_bands=n_bands, f0_method=f0_method, version=1)

    def compute():
        jobs = [(u.id, audio.resample(u.load(), u.sr, sr), settings) for u in items]
        done = _in_workers(_vocoder_of, jobs, "WORLD vocoder features", workers, progress)
        return {uid: torch.from_numpy(f) for uid, f in done}

    return _cached(items, settings, "vocoder", cache_dir, compute)
