"""Noisy self-training for singing-voice separation (Wang et al. section 2.1), one step per function.

1. :func:`train_separator`: a PoCoNet on augmented windows of labelled stems (eq. 3's loss);
2. :func:`pseudo_label`: the teacher labels each karaoke song: vocals inferred from its vocal
   track, accompaniment from its backing track (section 2.1);
3. :func:`voice_activity_detectors`, :func:`poor_fractions` and :func:`filter_pseudo_labels`:
   the VADs of 2.1.1 keep the self-labelled songs with the fewest poor-quality frames;
4. a student trains on labelled and kept pseudo-labelled stems (:func:`train_separator` again);
5. :func:`evaluate`: SDR of section 4.1 on the test songs (median over 1-s windows, then over
   songs) for vocals and accompaniment.

Stems are ``(2, samples)`` arrays (vocals, accompaniment) at 16 kHz (:data:`SR`, section 3.2);
the functions that train or run a model refuse another ``sr``. With ``cache_dir``,
:func:`pseudo_label` and :func:`evaluate` keep their results on disk (written atomically) under
a digest of the model's weights and the songs, so a resumed run does not separate again what
a finished checkpoint already separated; other weights or songs get a new entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import files, losses
from .checks import AudioError, check_wave
from .data.augment import Augment, SeparationCrops
from .data.songs import SR
from .metrics import song_sdr
from .models import vad
from .models.poconet import N_FFT, PoCoNet, separate
from .train import fit

__all__ = ["SR", "segments", "lr_halving", "train_separator", "separate_long", "pseudo_label",
           "voice_activity_detectors", "poor_fractions", "filter_pseudo_labels", "evaluate"]


def segments(stems, sr: int = SR, seconds: float = 30.0) -> list[np.ndarray]:
    """Section 3.2: a song's ``(2, samples)`` stems cut into non-overlapping ``seconds``-long
    pieces, the last one zero-padded -> list of ``(2, seconds * sr)`` float32 arrays."""
    st = np.asarray(stems, dtype=np.float32)
    if st.ndim != 2 or st.shape[0] != 2 or st.shape[1] == 0:
        raise ValueError(f"segments: expected (2, samples) stems, got shape {st.shape}")
    n = int(round(seconds * sr))
    pad = -st.shape[1] % n
    st = np.pad(st, ((0, 0), (0, pad)))
    return [np.ascontiguousarray(st[:, i:i + n]) for i in range(0, st.shape[1], n)]


def _check_rate(where: str, sr) -> None:
    """Raise an AudioError (a ValueError) unless ``sr`` is :data:`SR`, the 16 kHz every model
    here is built for (section 3.2: tracks downsampled to 16 kHz); ``where``: the caller."""
    if sr != SR:
        raise AudioError(f"{where}: sr={sr} Hz, but the models here work at {SR} Hz (section 3.2); "
                         "resample the audio first (voicebook.audio.resample)")


def lr_halving(optimizer: torch.optim.Optimizer, every: int, floor: float = 1e-6):
    """Section 3.3's schedule: the learning rate halved every ``every`` steps until it is no
    greater than ``floor`` (the paper: every 100k iterations, down to 1e-6), then held.
    -> a LambdaLR for :func:`voicebook.train.fit`'s ``scheduler`` (stepped once per step)."""
    if every < 1:
        raise ValueError(f"lr_halving: every={every} steps, expected a positive number")
    lr0 = max(g["lr"] for g in optimizer.param_groups)
    halvings = 0
    while lr0 * 0.5 ** halvings > floor * (1 + 1e-9):          # the last halving reaches <= floor
        halvings += 1

    def factor(step: int) -> float:
        return 0.5 ** min(step // every, halvings)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _separation_loss(model, batch):
    mix, sources = batch
    return losses.separation_loss(separate(model, mix), sources)


def train_separator(model: PoCoNet, stems: Sequence, *, sr: int = SR, seconds: float = 4.0,
                    aug: Augment | None = Augment(), steps: int, batch_size: int = 4, lr: float = 1e-4,
                    lr_halve_every: int | None = None, seed: int = 0, **fit_kw):
    """Minimise eqs. (2)-(3) on augmented ``seconds``-long windows of ``stems`` (``(2, samples)``
    at ``sr`` = 16 kHz) with the book's training loop: Adam at ``lr`` (the paper's 1e-4 by
    default), halved every ``lr_halve_every`` steps down to 1e-6 if given (section 3.3; None:
    constant). -> History."""
    _check_rate("train_separator", sr)
    data = SeparationCrops(stems, sr, seconds, aug, seed=seed)
    if lr_halve_every:
        if "optimizer" in fit_kw or "scheduler" in fit_kw:
            raise ValueError("train_separator: lr_halve_every builds its own optimizer and scheduler; "
                             "pass either it or optimizer/scheduler")
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        fit_kw.update(optimizer=opt, scheduler=lr_halving(opt, lr_halve_every))
    return fit(model, data, _separation_loss, steps=steps, batch_size=batch_size, lr=lr, seed=seed, **fit_kw)


@torch.no_grad()
def separate_long(model: PoCoNet, wav, *, chunk_s: float = 30.0, sr: int = SR) -> np.ndarray:
    """Separate a whole recording ``(samples,)`` at ``sr`` = 16 kHz in ``chunk_s`` pieces (the
    paper's 30-s segments) -> ``(2, samples)`` numpy. A last piece shorter than the STFT can
    frame (under ``N_FFT // 2 + 1`` samples) joins the one before it; a whole recording that short is refused
    by :func:`voicebook.audio.stft` with its length."""
    _check_rate("separate_long", sr)
    if np.ndim(wav) != 1:
        raise AudioError(f"separate_long: expected one mono recording (samples,), got shape {tuple(np.shape(wav))}: "
                         "mix stems down with stems.sum(0), channels with wav.mean(axis=1)")
    check_wave(wav, "separate_long(wav)", allow_silence=True)
    if chunk_s * sr <= N_FFT // 2:
        raise ValueError(f"separate_long: chunk_s={chunk_s} s is shorter than one STFT frame at {sr} Hz")
    model.eval()
    dev = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(wav), dtype=torch.float32, device=dev)
    n = int(chunk_s * sr)
    starts = list(range(0, x.shape[-1], n))
    if len(starts) > 1 and x.shape[-1] - starts[-1] <= N_FFT // 2:
        starts.pop()                                      # a sliver: the last chunk takes it
    bounds = starts[1:] + [x.shape[-1]]
    out = [separate(model, x[None, a:b])[0] for a, b in zip(starts, bounds)]
    return torch.cat(out, dim=-1).cpu().numpy()


def _song(stems, where: str) -> np.ndarray:
    """``(2, samples)`` stems (vocals, accompaniment) as float64, or an error naming the song."""
    st = np.asarray(stems, dtype=np.float64)
    if st.ndim != 2 or st.shape[0] != 2:
        raise AudioError(f"{where}: expected stems (2, samples) = (vocals, accompaniment), got shape {st.shape}")
    return st


def _named(where: str, fn, *args, **kw):
    """``fn(*args, **kw)`` with ``where`` (which song) put before any audio error it raises."""
    try:
        return fn(*args, **kw)
    except AudioError as err:
        raise AudioError(f"{where}: {err}") from None


def _digest(model: torch.nn.Module, songs: Sequence, **kw) -> str:
    """sha256 (16 hex digits) of a model's weights, the songs' samples and the keyword settings."""
    h = hashlib.sha256(json.dumps(kw, sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for st in songs:
        h.update(np.ascontiguousarray(st, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def pseudo_label(teacher: PoCoNet, karaoke_stems: Sequence, *, cache_dir=None, **kw) -> list[np.ndarray]:
    """Section 2.1: for each karaoke song ``(vocal track, backing track)``, the teacher's vocals
    of the vocal track and its accompaniment of the backing track -> new ``(2, samples)`` stems.
    ``cache_dir``: keep them there (one ``.npz`` per teacher and song set), reuse on a rerun.
    ``kw``: :func:`separate_long`'s (``chunk_s``, ``sr``)."""
    _check_rate("pseudo_label", kw.get("sr", SR))
    path = None if cache_dir is None else Path(cache_dir) / f"pseudo-{_digest(teacher, karaoke_stems, **kw)}.npz"
    if path is not None and path.exists():
        try:
            with np.load(path) as z:
                return [z[f"song{i}"] for i in range(len(karaoke_stems))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass                                  # damaged (not by us: writes are atomic): label again
    out = []
    for i, st in enumerate(karaoke_stems):
        st = _song(st, f"pseudo_label: karaoke song {i}")
        vocals = _named(f"pseudo_label: karaoke song {i}, vocal track", separate_long, teacher, st[0], **kw)[0]
        acc = _named(f"pseudo_label: karaoke song {i}, accompaniment track", separate_long, teacher, st[1], **kw)[1]
        out.append(np.stack([vocals, acc]).astype(np.float32))
    if path is not None:
        with files.atomic_path(path) as tmp:
            np.savez(tmp, **{f"song{i}": x for i, x in enumerate(out)})
    return out


def voice_activity_detectors(stems: Sequence, *, steps: int, seconds: float = 4.0, batch_size: int = 4,
                             sr: int = SR, seed: int = 0, channels: int = 16, hidden: int = 64,
                             n_fft: int = 1024, ckpt_dir=None, **fit_kw):
    """Section 2.1.1: two CRNNs trained with binary cross-entropy on the labelled stems to
    predict the vocals' and the accompaniment's share of the energy per frame, on mixtures
    and on lone sources (what self-labelled tracks look like). ``n_fft`` sets their STFT
    (hop 256 always, the separator's frames); ``sr`` must be 16 kHz. -> ``(voice VAD, acc VAD)``."""
    _check_rate("voice_activity_detectors", sr)
    data = SeparationCrops(stems, sr, seconds, None, seed=seed)
    models = []
    for k in (0, 1):
        def loss(model, batch, k=k):
            mix, sources = batch
            inputs = torch.cat([mix, sources[:, 0], sources[:, 1]])          # mixture, voice alone, acc alone
            # source k's share of each input: all of it in the mixture and in its own lone track,
            # none in the other source's lone track
            present = [sources[:, k], sources[:, k] if k == 0 else torch.zeros_like(mix),
                       sources[:, k] if k == 1 else torch.zeros_like(mix)]
            target = torch.cat([vad.energy_ratio(s, x, n_fft=n_fft) for s, x in zip(present, inputs.split(mix.shape[0]))])
            return torch.nn.functional.binary_cross_entropy_with_logits(model.logits(inputs), target)

        torch.manual_seed(seed + k)
        model = vad.CRNN(n_freq=n_fft // 2 + 1, channels=channels, hidden=hidden, n_fft=n_fft)
        fit(model, data, loss, steps=steps, batch_size=batch_size, seed=seed + k,
            ckpt_dir=None if ckpt_dir is None else f"{ckpt_dir}/{('voice', 'accompaniment')[k]}", **fit_kw)
        models.append(model.eval())
    return tuple(models)


def poor_fractions(vads, songs: Sequence, *, threshold: float = 0.2) -> np.ndarray:
    """Section 2.1.1: each song's share of poor-quality frames (:func:`voicebook.models.vad.poor_frames`)
    with ``vads = (voice VAD, accompaniment VAD)``; songs are ``(2, samples)`` stems ->
    ``(songs,)`` fractions."""
    voice_vad, acc_vad = vads
    dev = next(voice_vad.parameters()).device
    out = []
    for i, p in enumerate(songs):
        tracks = torch.as_tensor(_song(p, f"poor_fractions: song {i}"), dtype=torch.float32, device=dev)
        out.append(float(_named(f"poor_fractions: song {i}", vad.poor_frames, voice_vad, acc_vad, tracks[:1], tracks[1:],
                                threshold=threshold)[0]))
    return np.array(out)


def filter_pseudo_labels(vads, pseudo: Sequence, *, top: float, threshold: float = 0.2) -> tuple[list[int], np.ndarray]:
    """Section 2.1.1: the poor-frame fraction of each self-labelled song, and the indices of
    the ``top`` share with the fewest, best first. -> ``(kept indices, fractions)``."""
    fractions = poor_fractions(vads, pseudo, threshold=threshold)
    return vad.keep_best(fractions, top).tolist(), fractions


def evaluate(model: PoCoNet, test_stems: Sequence, *, sr: int = SR, cache_dir=None) -> dict[str, float]:
    """Section 4.1: each whole test song's mixture (``sr`` = 16 kHz) separated (in 30-s
    chunks), SDR per 1-s window, median per song, median over songs -> ``{"vocals": dB, "accompaniment": dB}``.
    A song with a source silent throughout (no vocals at all) has no SDR and is left out, as
    museval leaves it out; NaN if no song counts. ``cache_dir``: keep the scores there (one
    ``.json`` per model and test set), reuse on a rerun."""
    _check_rate("evaluate", sr)
    path = None if cache_dir is None else Path(cache_dir) / f"sdr-{_digest(model, test_stems, sr=sr)}.json"
    if path is not None and path.exists():
        try:
            return {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            pass                                  # damaged: score again
    per_song = []
    for i, st in enumerate(test_stems):
        st = _song(st, f"evaluate: test song {i}")
        per_song.append(_named(f"evaluate: test song {i}", lambda: song_sdr(st, separate_long(model, st.sum(0), sr=sr), sr)))
    if not per_song:
        raise ValueError("evaluate: no test songs to score")
    per_song = np.array(per_song)
    med = [float(np.nanmedian(col)) if np.any(~np.isnan(col)) else math.nan for col in per_song.T]
    scores = {"vocals": float(med[0]), "accompaniment": float(med[1])}
    if path is not None:
        files.atomic_write_json(path, scores)
    return scores
