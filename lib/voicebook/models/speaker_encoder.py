"""The GE2E speaker encoder: the style encoder E_sty of AutoVC (chapter 1, section 3.2).

Wan et al. (2018), *Generalized end-to-end loss for speaker verification*: LSTM layers run
over log-mel frames; the embedding ("d-vector") is a 256-d projection of the last frame's
output, L2-normalised. The paper's model: 3 layers of 768 cells projected to 256 dimensions.
Wan et al. put the projection inside every layer (LSTMP); AutoVC's released d-vector network
(``D_VECTOR`` in its ``model_bl.py``) runs a plain 3-layer
768-cell LSTM and projects the last frame with one linear layer. We follow AutoVC (and it
trains several times faster on a CPU: oneDNN has no projected LSTM). An utterance's embedding
averages the embeddings of sliding partial windows (50 % overlap) and normalises the mean
again (:func:`embed_utterance`); a speaker's embedding averages its utterances'
(:func:`speaker_embeddings`), as AutoVC does for its targets.

It is trained with the GE2E loss (:func:`voicebook.losses.ge2e_loss`) on batches of N
speakers x M utterances (:class:`GE2EBatches`, :func:`ge2e_loss_fn`), with
:func:`voicebook.train.fit`::

    encoder = SpeakerEncoder(hidden=768, dim_emb=256)
    batches = GE2EBatches(mels_by_speaker, speakers=8, utterances=6, frames=100, length=2000)
    fit(encoder, batches, ge2e_loss_fn, steps=2000, batch_size=1, lr=1e-3, grad_clip=3.0)

Mels are time-major, ``(frames, n_mels)`` or ``(batch, frames, n_mels)``, in whatever scale
the chapter feeds every model (chapter 1: log-mels normalised per band, see
:func:`voicebook.models.cycle_autovc.prepare_mels`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .. import losses
from ..fp32 import fp32_rnn
from ..train import unwrap

__all__ = ["SpeakerEncoder", "embed_utterance", "speaker_embeddings", "random_crop", "GE2EBatches",
           "ge2e_loss_fn"]


class SpeakerEncoder(nn.Module):
    """GE2E speaker encoder as in AutoVC: ``(batch, frames, n_mels) -> (batch, dim_emb)``, unit norm.

    ``layers`` LSTM layers of ``hidden`` cells; a linear layer projects the last frame's output
    to ``dim_emb``; the result is L2-normalised. ``w`` and ``b`` are GE2E's learnable similarity
    scale and bias, initialised to (10, -5) as in Wan et al.; they live here so that
    :func:`voicebook.train.fit` trains them.
    """

    def __init__(self, n_mels: int = 80, hidden: int = 768, dim_emb: int = 256, layers: int = 3):
        super().__init__()
        self.n_mels, self.dim_emb = n_mels, dim_emb
        self.lstm = nn.LSTM(n_mels, hidden, num_layers=layers, batch_first=True)
        self.proj = nn.Linear(hidden, dim_emb)
        self.w = nn.Parameter(torch.tensor(10.0))
        self.b = nn.Parameter(torch.tensor(-5.0))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel`` ``(batch, frames, n_mels)`` -> unit-norm embeddings ``(batch, dim_emb)``."""
        if mel.dim() != 3 or mel.shape[-1] != self.n_mels:
            raise ValueError(f"SpeakerEncoder expects (batch, frames, {self.n_mels}), got {tuple(mel.shape)}")
        out, _ = fp32_rnn(self.lstm, mel)                    # (batch, frames, hidden)
        return F.normalize(self.proj(out[:, -1]), dim=-1)    # the last frame, projected, L2-normalised


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _time_major(mel: torch.Tensor, n_mels: int, who: str) -> torch.Tensor:
    """Check ``mel`` is ``(frames, n_mels)``, finite and non-empty; clear errors otherwise."""
    mel = torch.as_tensor(mel, dtype=torch.float32)
    if mel.dim() != 2 or mel.shape[1] != n_mels:
        hint = " (it looks band-major: pass mel.T)" if mel.dim() == 2 and mel.shape[0] == n_mels else ""
        raise ValueError(f"{who}: expected a mel of shape (frames, {n_mels}), got {tuple(mel.shape)}{hint}")
    if mel.shape[0] == 0:
        raise ValueError(f"{who}: the mel has no frames")
    if not torch.isfinite(mel).all():
        raise ValueError(f"{who}: the mel contains NaN or inf")
    return mel


@torch.no_grad()
def embed_utterance(model: SpeakerEncoder, mel: torch.Tensor, window: int = 100, overlap: float = 0.5) -> torch.Tensor:
    """The d-vector of one utterance: ``(frames, n_mels) -> (dim_emb,)``, unit norm.

    As Wan et al. do at inference: embed partial windows of ``window`` frames with
    ``overlap`` (50 %: a hop of ``window // 2``), average the window embeddings and
    L2-normalise the mean. The last window is aligned to the end so no frame is left out; an
    utterance shorter than ``window`` is one window. Runs in eval mode on the model's device.
    """
    model = unwrap(model)
    mel = _time_major(mel, model.n_mels, "embed_utterance")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if int(window) < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    frames, window = mel.shape[0], min(window, mel.shape[0])
    hop = max(1, int(round(window * (1 - overlap))))
    starts = list(range(0, frames - window + 1, hop))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    windows = torch.stack([mel[s:s + window] for s in starts]).to(_device(model))
    was_training = model.training
    model.eval()
    try:
        return F.normalize(model(windows).mean(0), dim=-1)
    finally:
        model.train(was_training)


def speaker_embeddings(model: SpeakerEncoder, mels_by_speaker: Mapping[str, Sequence[torch.Tensor]],
                       **kw) -> dict[str, torch.Tensor]:
    """``{speaker: (dim_emb,)}``: the normalised mean of each speaker's utterance d-vectors (on CPU).

    ``mels_by_speaker``: ``{speaker: [(frames, n_mels), ...]}``; ``kw`` go to :func:`embed_utterance`.
    """
    out = {}
    for spk, mels in mels_by_speaker.items():
        if len(mels) == 0:
            raise ValueError(f"speaker {spk!r} has no utterances")
        embs = torch.stack([embed_utterance(model, m, **kw) for m in mels])
        out[spk] = F.normalize(embs.mean(0), dim=-1).cpu()
    return out


def random_crop(mel: torch.Tensor, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """A ``(frames, n_mels)`` crop of ``mel`` ``(length, n_mels)`` at a start drawn from ``rng``.

    A shorter utterance is padded at the end with its own per-band minimum (its silence), as
    AutoVC pads short utterances with silence.
    """
    length = mel.shape[0]
    if length >= frames:
        start = int(rng.integers(0, length - frames + 1))
        return mel[start:start + frames]
    pad = mel.min(dim=0).values.expand(frames - length, -1)
    return torch.cat([mel, pad], dim=0)


class GE2EBatches(Dataset):
    """GE2E training batches: item ``i`` is a ``(speakers, utterances, frames, n_mels)`` tensor.

    Each item draws ``speakers`` distinct speakers and, for each, ``utterances`` of their
    utterances (distinct when the speaker has enough, else with repeats) and a random crop of
    each; everything is a pure function of ``(seed, i)``, so a resumed :func:`fit` sees the same
    data. Use with ``batch_size=1`` (or more: several GE2E batches per step). ``length`` is
    the number of distinct items (an epoch of :func:`fit`).

    ``mels_by_speaker``: ``{speaker: [(frames_i, n_mels), ...]}``.
    """

    def __init__(self, mels_by_speaker: Mapping[str, Sequence[torch.Tensor]], speakers: int = 4,
                 utterances: int = 5, frames: int = 100, length: int = 1000, seed: int = 0):
        self.ids = [s for s, mels in mels_by_speaker.items() if len(mels) > 0]
        if len(self.ids) < max(2, speakers):
            raise ValueError(f"GE2EBatches needs at least {max(2, speakers)} speakers with utterances, "
                             f"got {len(self.ids)}")
        if utterances < 2:
            raise ValueError(f"GE2E needs at least 2 utterances per speaker, got {utterances}")
        self.mels = {s: [torch.as_tensor(m, dtype=torch.float32) for m in mels_by_speaker[s]] for s in self.ids}
        self.n, self.m, self.frames, self.length, self.seed = speakers, utterances, frames, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, int(i)])
        batch = []
        for s in rng.choice(len(self.ids), size=self.n, replace=False):
            mels = self.mels[self.ids[s]]
            picks = rng.choice(len(mels), size=self.m, replace=len(mels) < self.m)
            batch.append(torch.stack([random_crop(mels[k], self.frames, rng) for k in picks]))
        return torch.stack(batch)


def ge2e_loss_fn(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``loss_fn`` for :func:`voicebook.train.fit`: the GE2E loss of a :class:`GE2EBatches` batch.

    ``batch``: ``(B, speakers, utterances, frames, n_mels)``; the loss is the mean over the B
    GE2E batches of :func:`voicebook.losses.ge2e_loss`. Logs the similarity scale ``w``.
    """
    b, n, m, t, f = batch.shape
    emb = model(batch.reshape(b * n * m, t, f)).reshape(b, n, m, -1)
    enc = unwrap(model)
    loss = torch.stack([losses.ge2e_loss(e, enc.w, enc.b) for e in emb]).mean()
    return loss, {"w": enc.w.detach()}
