"""Training AutoVC and CycleAutoVC with :func:`voicebook.train.fit` (chapter 1, sections 3.3, 4.3-4.4, 5.2).

- Data: :func:`prepare_mels` turns the cached log-mels ``{id: (n_mels, frames)}`` into
  normalised time-major mels ``{id: (frames, n_mels)}`` (every chapter-1 model, the speaker
  encoder included, sees this scale); :class:`MelCrops` yields fixed-length random crops with
  the utterance's speaker embedding (and, for the cycle, another speaker's as the target).
- Models: :class:`~voicebook.models.autovc.AutoVC` for vanilla training;
  :class:`CycleAutoVC` = an AutoVC plus a *frozen* speaker encoder for the style loss.
- Steps: :func:`autovc_loss_fn` (``L_recon + lambda_cont L_cont``, section 3.3) and
  :func:`cycle_loss_fn` (``L_cycle + L_style + lambda_encod L_encod``, section 4.3), both
  ``loss_fn(model, batch)`` for ``fit`` (bind options with ``functools.partial``).
- Schedules, each a sequence of ``fit`` calls: :func:`train_autovc`; :func:`train_two_phase`
  (section 5.2: phase 1 without the style loss on the large set, phase 2 with it on the
  few-shot set); :func:`fine_tune` (section 4.4: cycle training from a pre-trained AutoVC).
- Chapter 1's systems: :func:`train_system` trains (or loads) one of ``SYSTEMS`` at a
  bottleneck and seed, checkpointed under its own name, so that
  :func:`voicebook.parallel.train_in_workers` can train many at once and the chapter then loads them.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .. import audio, losses
from ..train import History, fit
from .autovc import AutoVC
from .speaker_encoder import SpeakerEncoder, random_crop

__all__ = ["prepare_mels", "restore_log_mel", "group_by_speaker", "MelCrops", "CycleAutoVC", "CycleOutputs",
           "autovc_loss_fn", "cycle_loss_fn", "train_autovc", "train_two_phase", "fine_tune",
           "SYSTEMS", "system_name", "train_system"]


# ----------------------------------------------------------------------------- data

def prepare_mels(feats: Mapping[str, torch.Tensor], stats: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Normalise log-mels per band and make them time-major.

    ``feats``: ``{id: (n_mels, frames)}`` as :func:`voicebook.data.features.log_mels` returns;
    ``stats``: ``(mean, std)`` each ``(n_mels, 1)``, fitted on ``feats`` if None (fit them on
    the training set and pass them for the others). Returns ``({id: (frames, n_mels)}, stats)``.
    """
    if stats is None:
        stats = audio.fit_normaliser(list(feats.values()))
    mean, std = stats
    return {k: audio.normalise(v.float(), mean, std).T.contiguous() for k, v in feats.items()}, stats


def restore_log_mel(mel: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`prepare_mels` for one mel: ``(frames, n_mels)`` -> log-mel ``(n_mels, frames)``,
    ready for :func:`voicebook.audio.mel_to_wave`."""
    return audio.denormalise(mel.T, *stats)


def group_by_speaker(items, mels: Mapping[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """``{speaker: [mel, ...]}`` of the utterances ``items`` (``.id``, ``.speaker``), mels by id."""
    out: dict[str, list[torch.Tensor]] = {}
    for u in items:
        out.setdefault(u.speaker, []).append(mels[u.id])
    return out


class MelCrops(Dataset):
    """Random ``frames``-long crops of utterances with their speakers' embeddings.

    Item ``i`` is ``(mel (frames, n_mels), emb_src (dim_emb,))``, or with ``with_target``
    ``(mel, emb_src, emb_tgt)`` where the target is another speaker drawn at random (for the
    cycle, section 4.3). Utterance ``i % len(mels)`` is cropped at a random start; the crop
    and the target are a pure function of ``(seed, i)``, so a resumed ``fit`` sees the same
    data. ``length`` (default: 100 crops per utterance) is the size of an epoch of ``fit``.

    ``mels``: time-major ``(frames_i, n_mels)``; ``speakers``: the speaker of each;
    ``embeddings``: ``{speaker: (dim_emb,)}`` (from
    :func:`voicebook.models.speaker_encoder.speaker_embeddings`).
    """

    def __init__(self, mels: Sequence[torch.Tensor], speakers: Sequence[str], embeddings: Mapping[str, torch.Tensor],
                 *, frames: int = 128, length: int | None = None, seed: int = 0, with_target: bool = False):
        if len(mels) == 0 or len(mels) != len(speakers):
            raise ValueError(f"need one speaker per mel and at least one mel, got {len(mels)} mels, "
                             f"{len(speakers)} speakers")
        missing = sorted(set(speakers) - set(embeddings))
        if missing:
            raise ValueError(f"no embedding for speaker(s) {missing}")
        self.targets = sorted(set(speakers))
        if with_target and len(self.targets) < 2:
            raise ValueError("with_target needs at least 2 speakers")
        self.mels = [torch.as_tensor(m, dtype=torch.float32) for m in mels]
        self.speakers, self.frames, self.seed, self.with_target = list(speakers), frames, seed, with_target
        self.emb = {s: torch.as_tensor(e, dtype=torch.float32) for s, e in embeddings.items()}
        self.length = length if length is not None else 100 * len(mels)

    @classmethod
    def from_items(cls, items, mels: Mapping[str, torch.Tensor], embeddings: Mapping[str, torch.Tensor],
                   **kw) -> "MelCrops":
        """From utterances ``items`` (``.id``, ``.speaker``) and their mels ``{id: (frames, n_mels)}``."""
        items = list(items)
        return cls([mels[u.id] for u in items], [u.speaker for u in items], embeddings, **kw)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, int(i)])
        k = int(i) % len(self.mels)
        crop, spk = random_crop(self.mels[k], self.frames, rng), self.speakers[k]
        if not self.with_target:
            return crop, self.emb[spk]
        others = [s for s in self.targets if s != spk]
        return crop, self.emb[spk], self.emb[others[int(rng.integers(len(others)))]]


# ----------------------------------------------------------------------------- the cycle model

class CycleOutputs(NamedTuple):
    """What one CycleAutoVC pass computes; mels ``(batch, frames, n_mels)``, codes ``(batch,
    frames // freq, 2 dim_neck)``, embeddings ``(batch, dim_emb)``."""

    converted: torch.Tensor          # C(X_A, B), post-net output
    back_pre: torch.Tensor           # C(C(X_A, B), A) before the post-net
    back: torch.Tensor               # C(C(X_A, B), A)
    codes_source: torch.Tensor       # E_c(X_A)
    codes_converted: torch.Tensor    # E_c(C(X_A, B))
    emb_converted: torch.Tensor | None  # E_sty(C(X_A, B)); None without the style loss


class CycleAutoVC(nn.Module):
    """AutoVC trained for conversion (section 4.3, Fig. 8), with a frozen speaker encoder.

    ``autovc``: the converter ``C`` (trained); ``speaker_encoder``: ``E_sty`` of the style
    loss, frozen (``requires_grad=False``): gradients of ``L_style`` reach the converted mel
    through it, never its weights. It follows the model's train/eval mode: it has no dropout or
    batch norm, so the mode changes nothing numerically, but cuDNN refuses to backpropagate
    through an LSTM in eval mode (on a GPU the style loss would fail at its first step). The
    encoder is copied (the caller's stays as it was). Saving this model saves both.
    """

    def __init__(self, autovc: AutoVC, speaker_encoder: SpeakerEncoder):
        super().__init__()
        if speaker_encoder.dim_emb != autovc.dim_emb:
            raise ValueError(f"the speaker encoder gives {speaker_encoder.dim_emb}-d embeddings, "
                             f"AutoVC expects {autovc.dim_emb}")
        self.autovc = autovc
        self.speaker_encoder = copy.deepcopy(speaker_encoder).requires_grad_(False).train(self.training)

    def forward(self, mel: torch.Tensor, emb_src: torch.Tensor, emb_tgt: torch.Tensor, *,
                style: bool = True) -> CycleOutputs:
        """One pass of Fig. 8: ``X_A -> C(X_A, B) -> C(C(X_A, B), A)``; see :class:`CycleOutputs`.

        The content codes of the conversion come from the back-conversion's encoder pass (the
        content encoder reads ``[C(X_A, B); E_sty(B)]``), so the cycle costs two AutoVC passes.
        """
        _, converted, codes_source = self.autovc(mel, emb_src, emb_tgt)           # A -> B
        back_pre, back, codes_converted = self.autovc(converted, emb_tgt, emb_src)  # B -> A
        emb_converted = self.speaker_encoder(converted) if style else None          # E_sty(C(X_A, B))
        return CycleOutputs(converted, back_pre, back, codes_source, codes_converted, emb_converted)


# ----------------------------------------------------------------------------- loss_fn for fit

def autovc_loss_fn(model: nn.Module, batch, *, lambda_cont: float = 1.0):
    """AutoVC's step (section 3.3): ``batch = (mel (B, frames, n_mels), emb (B, dim_emb)[, ...])``.

    Reconstructs with the utterance's own embedding, then encodes the reconstruction again for
    ``L_cont`` (``recode=True``). Returns :func:`voicebook.losses.autovc_loss`'s ``(loss, parts)``.
    """
    mel, emb = batch[0], batch[1]
    mel_out, mel_postnet, codes, codes_recon = model(mel, emb, recode=True)
    return losses.autovc_loss(mel, mel_out, mel_postnet, codes, codes_recon, lambda_cont)


def cycle_loss_fn(model: nn.Module, batch, *, lambda_encod: float = 1.0, use_style: bool = True,
                  pre_postnet: bool = True):
    """CycleAutoVC's step (section 4.3): ``batch = (mel, emb_src, emb_tgt)``, ``model`` a :class:`CycleAutoVC`.

    ``use_style=False`` drops ``L_style`` (phase 1 of section 5.2). ``pre_postnet``: add the
    decoder's output before the post-net to ``L_cycle``, as AutoVC's ``L_recon`` does (False:
    the paper's formula, the post-net output only). Returns
    :func:`voicebook.losses.cycle_autovc_loss`'s ``(loss, parts)``.
    """
    mel, emb_src, emb_tgt = batch
    out = model(mel, emb_src, emb_tgt, style=use_style)
    return losses.cycle_autovc_loss(mel, out.back, out.codes_source, out.codes_converted, out.emb_converted,
                                    emb_tgt, lambda_encod=lambda_encod, use_style=use_style,
                                    mel_back_pre=out.back_pre if pre_postnet else None)


# ----------------------------------------------------------------------------- schedules

def _sub(ckpt_dir, name: str):
    return None if ckpt_dir is None else Path(ckpt_dir) / name


def train_autovc(model: AutoVC, dataset: Dataset, *, steps: int, batch_size: int = 2, lambda_cont: float = 1.0,
                 lr: float = 1e-4, **fit_kw) -> History:
    """Vanilla AutoVC (section 3.3): self-reconstruction + content loss. AutoVC's own setting:
    batch 2, Adam lr 1e-4, ``lambda_cont = 1``, 100k steps. ``fit_kw`` go to ``fit``."""
    return fit(model, dataset, partial(autovc_loss_fn, lambda_cont=lambda_cont), steps=steps,
               batch_size=batch_size, lr=lr, **{"desc": "AutoVC", **fit_kw})


def train_two_phase(model: CycleAutoVC, large: Dataset, few_shot: Dataset, *, steps: tuple[int, int] = (60000, 30000),
                    batch_size: int = 8, lambda_encod: float = 1.0, lr: float = 1e-4, style: bool = True,
                    ckpt_dir=None, **fit_kw) -> tuple[History, History]:
    """Section 5.2's best schedule, as two ``fit`` calls on the same model.

    Phase 1: ``L_cycle + lambda_encod L_encod`` (no style loss) on the ``large`` set (to avoid
    over-fitting the self-conversion task) for ``steps[0]`` (paper: 60k); phase 2 adds
    ``L_style`` on the ``few_shot`` set (about 5 speakers x 3-15 utterances) for ``steps[1]``
    (paper: 30k). Both datasets are :class:`MelCrops` with ``with_target=True``. Paper: batch
    8, neck 64. ``style=False`` keeps the style loss out of phase 2 too (the ablation of
    section 5.2.1). Each phase starts a fresh Adam. ``ckpt_dir``: each phase checkpoints (and
    resumes) in its own sub-folder. Returns the two phases' histories.
    """
    common = dict(batch_size=batch_size, lr=lr, **fit_kw)
    h1 = fit(model, large, partial(cycle_loss_fn, lambda_encod=lambda_encod, use_style=False), steps=steps[0],
             ckpt_dir=_sub(ckpt_dir, "phase1"), **{"desc": "CycleAutoVC phase 1", **common})
    h2 = fit(model, few_shot, partial(cycle_loss_fn, lambda_encod=lambda_encod, use_style=style), steps=steps[1],
             ckpt_dir=_sub(ckpt_dir, "phase2"),
             **{"desc": "CycleAutoVC phase 2" + (" (+ style)" if style else ""), **common})
    return h1, h2


def fine_tune(pretrained: AutoVC, speaker_encoder: SpeakerEncoder, dataset: Dataset, *, steps: int,
              batch_size: int = 8, lambda_encod: float = 1.0, use_style: bool = True, lr: float = 1e-4,
              **fit_kw) -> tuple[CycleAutoVC, History]:
    """Section 4.4: cycle training starting from a pre-trained AutoVC (left untouched: a copy is trained).

    ``pretrained``: an AutoVC trained with :func:`train_autovc` (stopped before convergence);
    load saved weights with ``voicebook.train.load_checkpoint(path, AutoVC(...))``.
    ``dataset``: :class:`MelCrops` with ``with_target=True``. Returns the new
    :class:`CycleAutoVC` and its history.
    """
    model = CycleAutoVC(copy.deepcopy(pretrained), speaker_encoder)
    history = fit(model, dataset, partial(cycle_loss_fn, lambda_encod=lambda_encod, use_style=use_style),
                  steps=steps, batch_size=batch_size, lr=lr, **{"desc": "CycleAutoVC fine-tuning", **fit_kw})
    return model, history


# ----------------------------------------------------------------------------- chapter 1's systems

SYSTEMS = ("autovc", "cycle", "cycle-nostyle", "cycle-finetuned")


def system_name(kind: str, neck: tuple[int, int], seed: int) -> str:
    """Checkpoint folder name of a system, e.g. ``autovc_n32f8_s0``."""
    return f"{kind}_n{neck[0]}f{neck[1]}_s{seed}"


def train_system(kind: str, neck: tuple[int, int], seed: int, *, data: Mapping[str, Dataset],
                 encoder: SpeakerEncoder, width: float, autovc_steps: int, cycle_steps: tuple[int, int],
                 ckpt_dir, **fit_kw) -> tuple[nn.Module, list[History]]:
    """Train one of chapter 1's systems, or load it if its checkpoints say it is done.

    ``kind``: ``"autovc"`` (:func:`train_autovc` for ``autovc_steps`` on ``data["crops"]``);
    ``"cycle"`` / ``"cycle-nostyle"`` (:func:`train_two_phase` from scratch on ``data["large"]``
    then ``data["few_shot"]``, with / without the style loss in phase 2); ``"cycle-finetuned"``
    (the same schedule starting from the ``"autovc"`` system of this neck and seed, which is
    trained first if it is not yet, section 4.4). ``neck``: ``(dim_neck, freq)``. Initial weights
    come from ``seed`` alone. ``encoder``: the frozen speaker encoder of the style loss.
    Checkpoints under ``ckpt_dir / system_name(kind, neck, seed)``. ``fit_kw`` (batch size,
    lr, device, ...) go to ``fit``. Returns ``(model in eval mode, [histories])``.
    """
    if kind not in SYSTEMS:
        raise ValueError(f"kind must be one of {SYSTEMS}, got {kind!r}")
    name = system_name(kind, neck, seed)
    common = dict(width=width, autovc_steps=autovc_steps, cycle_steps=cycle_steps, ckpt_dir=ckpt_dir, **fit_kw)
    init = None
    if kind == "cycle-finetuned":
        init = train_system("autovc", neck, seed, data=data, encoder=encoder, **common)[0]
    torch.manual_seed(seed)          # initial weights from the seed alone, not from whatever was built before
    vc = copy.deepcopy(init).train() if init is not None else AutoVC(*neck, width=width)
    if kind == "autovc":
        history = train_autovc(vc, data["crops"], steps=autovc_steps, seed=seed, ckpt_dir=Path(ckpt_dir) / name,
                               **{"desc": name, **fit_kw})
        return vc.eval(), [history]
    model = CycleAutoVC(vc, encoder)
    histories = train_two_phase(model, data["large"], data["few_shot"], steps=cycle_steps,
                                style=kind != "cycle-nostyle", seed=seed, ckpt_dir=Path(ckpt_dir) / name,
                                **{"desc": name, **fit_kw})
    return model.eval(), list(histories)
