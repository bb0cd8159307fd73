"""The multi-language multi-speaker LSTM acoustic model of Li & Zen (Fig. 1, eqs. 1-2).

Linguistic features ``x_t`` (``(batch, frames, n_in)``, every 5 ms) go through a mean tower and
``L`` language basis towers (:class:`~voicebook.models.towers.Towers`, all run as one masked
LSTM), are mixed by the language code ``lambda^(u)`` (eq. 1), and a speaker's recurrent output
layer (:class:`~voicebook.models.speaker_outputs.SpeakerOutputs`, eq. 2) turns them into the
49 vocoder parameters ``(batch, frames, 49)``: 40 mel-cepstra, ln F0, V/UV, 7 band
aperiodicities. A single-language single-speaker baseline is the same network with one
language, one speaker and no basis tower (``n_basis=0``: ``h`` is the mean tower alone).

Also here: the training data (random crops of normalised utterances, the paper's truncated
BPTT), training, the adaptation of section 4.2 (only chosen parameters learn), prediction and
the objective scores that stand in for the listening tests.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import metrics, vocoder
from ..data import linguistic
from ..train import fit
from .speaker_outputs import SpeakerOutputs
from .towers import Towers, combine

__all__ = ["CODE_INITS", "PARTS", "ADAPTATIONS", "MLMS", "n_params", "Example", "Normaliser", "examples", "FrameCrops",
           "masked_mse", "train", "extend", "adapting", "adapt", "adapt_variants", "predict", "dev_mse", "scores",
           "always_voiced", "to_wave"]

#: How a language code starts (section 4.1): random and learned, 1-hot and learned, 1-hot and fixed.
CODE_INITS = ("rand", "1-hot (init)", "1-hot (fixed)")
#: What adaptation may update (section 4.2): the language code, the mean tower, the speaker layer.
PARTS = ("code", "mean", "speaker")


class MLMS(nn.Module):
    """Eqs. 1-2: ``y = M_s^spkr(M^mean(x) + sum_l lambda_l^(u) M_l^lang(x))``.

    ``languages``, ``speakers``: the names of the codes and output layers, in index order.
    ``n_basis``: L. ``code_init``: one of :data:`CODE_INITS` (1-hot needs ``L`` = number of
    languages). Sizes default to the paper's (256 ReLU, 3 x 256 LSTM cells, 128 projection).
    """

    def __init__(self, n_in: int, languages: Sequence[str], speakers: Sequence[str], n_basis: int, *,
                 n_out: int = 49, relu: int = 256, cells: int = 256, proj: int = 128, layers: int = 3,
                 code_init: str = "rand"):
        super().__init__()
        if code_init not in CODE_INITS:
            raise ValueError(f"MLMS: code_init must be one of {CODE_INITS}, got {code_init!r}")
        if code_init != "rand" and n_basis != len(languages):
            raise ValueError(f"MLMS: 1-hot codes need one basis tower per language ({len(languages)}), got {n_basis}")
        for kind, names in (("language", languages), ("speaker", speakers)):
            twice = sorted({n for n in names if list(names).count(n) > 1})
            if twice:
                raise ValueError(f"MLMS: {kind} names must be distinct; given more than once: {twice}")
        self.languages, self.speakers, self.code_init = list(languages), list(speakers), code_init
        self.towers = Towers(n_in, 1 + n_basis, relu=relu, cells=cells, proj=proj, layers=layers)
        codes = torch.randn(len(languages), n_basis) if code_init == "rand" else torch.eye(n_basis)
        self.codes = nn.Parameter(codes, requires_grad=code_init != "1-hot (fixed)")
        self.outputs = SpeakerOutputs(len(speakers), proj, n_out)

    def index(self, languages: Iterable[str], speakers: Iterable[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Names -> ``(language indices, speaker indices)``; an unknown name raises naming it."""
        def look(names, known, what):
            bad = sorted(set(names) - set(known))
            if bad:
                raise ValueError(f"MLMS: unknown {what} {bad}; the model knows {known}")
            return torch.tensor([known.index(n) for n in names], device=self.codes.device)
        return look(list(languages), self.languages, "language"), look(list(speakers), self.speakers, "speaker")

    def forward(self, x: torch.Tensor, language: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, frames, n_in)``, ``language``/``speaker`` ``(batch,)`` indices ->
        ``(batch, frames, n_out)``."""
        if isinstance(language, (list, tuple)) and language and isinstance(language[0], str):
            raise TypeError("MLMS: pass language and speaker indices; model.index(languages, speakers) gives them from names")
        language = torch.as_tensor(language).long()                 # checked where it lives, as the speakers are
        if language.shape != (x.shape[0],) or bool(((language < 0) | (language >= len(self.languages))).any()):
            raise ValueError(f"MLMS: need one language index in [0, {len(self.languages)}) per utterance, "
                             f"got {language.tolist()} for a batch of {x.shape[0]}")
        h = combine(self.towers(x), self.codes[language.to(self.codes.device)])   # eq. 1
        return self.outputs(h, speaker)                             # eq. 2


def n_params(model: MLMS) -> int:
    """Trainable numbers of the model as the paper counts them: the towers' own blocks only
    (the packed LSTM's masked-off entries are always zero), the codes and the output layers."""
    towers = sum(int(m.sum()) for k in range(model.towers.towers) for m in model.towers.tower_masks(k).values())
    return towers + model.codes.numel() + sum(p.numel() for p in model.outputs.parameters())


# ----------------------------------------------------------------------------- data

@dataclass
class Example:
    """One utterance: ``x`` ``(frames, n_in)`` linguistic and ``y`` ``(frames, n_out)`` vocoder
    features (raw, not normalised), its language and speaker."""

    id: str
    x: torch.Tensor
    y: torch.Tensor
    language: str
    speaker: str


def examples(utts, vocoder_feats: Mapping[str, torch.Tensor], inventory: Sequence[str],
             hop_s: float = vocoder.FRAME_PERIOD_MS / 1000) -> list[Example]:
    """Pair each utterance's linguistic features (:func:`voicebook.data.linguistic.frame_features`,
    oracle durations) with its vocoder features, frame by frame."""
    out = []
    for u in utts:
        if u.id not in vocoder_feats:
            raise ValueError(f"examples: no vocoder features for utterance {u.id}")
        y = vocoder_feats[u.id]
        try:
            x = linguistic.frame_features(u, inventory, hop_s, y.shape[0])
        except ValueError as err:
            raise ValueError(f"utterance {u.id} ({u.path}): {err}") from None
        out.append(Example(u.id, torch.from_numpy(x), y, u.language, u.speaker))
    return out


@dataclass
class Normaliser:
    """Zero mean, unit variance per dimension (section 3), for inputs and outputs. A dimension
    that never varies (a phone of a language not in the statistics) keeps std 1."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    @classmethod
    def fit(cls, exs: Sequence[Example]) -> "Normaliser":
        if not exs:
            raise ValueError("Normaliser.fit: no examples")
        x, y = torch.cat([e.x for e in exs]).double(), torch.cat([e.y for e in exs]).double()
        sx, sy = x.std(0), y.std(0)
        return cls(x.mean(0).float(), torch.where(sx > 1e-6, sx, 1.0).float(),
                   y.mean(0).float(), torch.where(sy > 1e-6, sy, 1.0).float())

    def x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean.to(x.device)) / self.x_std.to(x.device)

    def y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean.to(y.device)) / self.y_std.to(y.device)

    def y_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.y_std.to(y.device) + self.y_mean.to(y.device)


class FrameCrops(torch.utils.data.Dataset):
    """Random ``frames``-long windows of normalised examples (truncated BPTT, section 3): item
    ``i`` is ``(x, y, language, speaker, mask)``, a function of ``(seed, i)`` only. A shorter
    utterance is zero-padded and its padding masked out of the loss."""

    def __init__(self, exs: Sequence[Example], norm: Normaliser, model: MLMS, *, frames: int = 200,
                 seed: int = 0, length: int = 1_000_000):
        if not exs:
            raise ValueError("FrameCrops: no training examples")
        lang, spk = model.index([e.language for e in exs], [e.speaker for e in exs])
        self.items = [(norm.x(e.x), norm.y(e.y), int(a), int(b)) for e, a, b in zip(exs, lang, spk)]
        self.frames, self.seed, self.length = frames, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, i])
        x, y, lang, spk = self.items[rng.integers(len(self.items))]
        start = rng.integers(max(x.shape[0] - self.frames, 0) + 1)
        x, y = x[start:start + self.frames], y[start:start + self.frames]
        mask = torch.zeros(self.frames)
        mask[:x.shape[0]] = 1.0
        pad = self.frames - x.shape[0]
        return (nn.functional.pad(x, (0, 0, 0, pad)), nn.functional.pad(y, (0, 0, 0, pad)), lang, spk, mask)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the unmasked frames and every dimension (the paper's criterion).
    ``pred``/``target`` ``(batch, frames, dims)``, ``mask`` ``(batch, frames)`` of 0/1."""
    err = ((pred.float() - target.float()) ** 2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def _loss(model, batch):
    x, y, lang, spk, mask = batch
    return masked_mse(model(x, lang, spk), y, mask)


def train(model: MLMS, exs: Sequence[Example], norm: Normaliser, *, steps: int, batch_size: int = 16,
          frames: int = 200, lr: float = 1e-3, seed: int = 0, ckpt_dir=None, optimizer=None,
          progress: bool = True, desc: str = "MLMS", **fit_kw):
    """Minimise the MSE of the normalised vocoder features (section 3) on random crops, with
    the book's training loop (resumes from ``ckpt_dir``). -> :class:`voicebook.train.History`."""
    data = FrameCrops(exs, norm, model, frames=frames, seed=seed)
    return fit(model, data, _loss, steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
               ckpt_dir=ckpt_dir, progress=progress, desc=desc, grad_clip=1.0, **fit_kw)


# ----------------------------------------------------------------------------- adaptation (section 4.2)

def extend(model: MLMS, language: str, speaker: str, *, seed: int = 0) -> MLMS:
    """A copy of ``model`` with a code for a new ``language`` (starting at the mean of the
    trained codes: the centre of the language space) and a new, randomly initialised output
    layer for a new ``speaker``; every other weight is copied. A language or speaker the model
    already has raises (it would get a second code or output layer under the same name)."""
    if language in model.languages or speaker in model.speakers:
        raise ValueError(f"extend: the model already has language {language!r} or speaker {speaker!r} "
                         f"(languages {model.languages}, speakers {model.speakers}); adapt it, or pick new names")
    t = model.towers
    new = MLMS(t.w_in.shape[1], model.languages + [language], model.speakers + [speaker], t.towers - 1,
               n_out=model.outputs.w.shape[2], relu=t.relu, cells=t.cells, proj=t.proj, layers=t.layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = SpeakerOutputs(1, t.proj, model.outputs.w.shape[2])
    with torch.no_grad():
        new.towers.load_state_dict(model.towers.state_dict())
        new.codes.copy_(torch.cat([model.codes, model.codes.mean(0, keepdim=True)]).cpu())
        for name in ("w", "u", "b"):
            getattr(new.outputs, name).copy_(torch.cat([getattr(model.outputs, name).cpu(), getattr(fresh, name)]))
    new.codes.requires_grad_(True)
    new.code_init = model.code_init
    return new.to(model.codes.device)


def _masks(model: MLMS, parts: Iterable[str], language: str, speaker: str) -> dict[str, torch.Tensor]:
    """``{parameter name: 0/1 mask}`` of the entries adaptation may change."""
    lang, spk = (int(i) for i in model.index([language], [speaker]))
    masks = {}
    for part in parts:
        if part == "code":
            m = torch.zeros_like(model.codes)
            m[lang] = 1.0
            masks["codes"] = m
        elif part == "mean":
            masks.update({f"towers.{n}": m for n, m in model.towers.tower_masks(0).items()})
        elif part == "speaker":
            for n in ("w", "u", "b"):
                m = torch.zeros_like(getattr(model.outputs, n))
                m[spk] = 1.0
                masks[f"outputs.{n}"] = m
        else:
            raise ValueError(f"adapt: unknown part {part!r}; choose from {PARTS}")
    return masks


@contextlib.contextmanager
def adapting(model: MLMS, parts: Iterable[str], language: str, speaker: str):
    """Within the block only ``parts`` of ``language`` and ``speaker`` can learn: every other
    parameter has ``requires_grad`` off, and the adapted ones have their gradients masked to
    the new code row, the new speaker's layer, and the mean tower's entries (tower 0 of the
    packed LSTM). Yields the parameters to optimise; restores ``requires_grad`` on exit."""
    masks = _masks(model, parts, language, speaker)
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    hooks = []
    for n, p in model.named_parameters():
        p.requires_grad_(n in masks)
        if n in masks:
            hooks.append(p.register_hook(lambda g, m=masks[n]: g * m.to(g.device, g.dtype)))
    try:
        yield [p for n, p in model.named_parameters() if n in masks]
    finally:
        for h in hooks:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(before[n])


def _one_voice(exs: Sequence[Example], who: str) -> tuple[str, str]:
    """The one ``(language, speaker)`` of adaptation examples; ValueError naming ``who`` if not one."""
    langs, spks = {e.language for e in exs}, {e.speaker for e in exs}
    if len(langs) != 1 or len(spks) != 1:
        raise ValueError(f"{who}: expected one language and one speaker, got {sorted(langs)} / {sorted(spks)}")
    return langs.pop(), spks.pop()


def adapt(model: MLMS, parts: Iterable[str], exs: Sequence[Example], norm: Normaliser, *, lr: float = 1e-3,
          **train_kw):
    """Section 4.2: train only ``parts`` (e.g. ``("code", "speaker")`` for v1) on the new
    language's examples (one language, one speaker). Adam without weight decay, so entries
    whose gradient is always zero stay bit-for-bit equal. -> History."""
    with adapting(model, parts, *_one_voice(exs, "adapt")) as params:
        return train(model, exs, norm, optimizer=torch.optim.Adam(params, lr=lr), **train_kw)


#: Section 4.2's four adaptations: ``name: (the adaptation it continues, or None for the
#: trained model extended with a new code and speaker layer, the parts it updates)``.
ADAPTATIONS = {"v1": (None, ("code", "speaker")), "v2": (None, ("code", "mean", "speaker")),
               "v3": ("v1", ("mean", "speaker")), "v4": ("v3", ("code", "mean", "speaker"))}


def adapt_variants(model: MLMS, exs: Sequence[Example], norm: Normaliser, *, steps: int, seed: int = 0,
                   ckpt_dir=None, desc: str = "", **train_kw) -> dict[str, MLMS]:
    """Section 4.2's v1-v4 for one new language and speaker (those of ``exs``): v1 and v2 start
    from ``model`` extended (:func:`extend`), v3 continues v1 and v4 continues v3, each for
    ``steps`` steps of :func:`adapt` on ``exs`` (``ckpt_dir``/v1 ... v4: each resumes).
    ``model`` is not changed. -> ``{"v1": model, ..., "v4": model}``."""
    lang, spk = _one_voice(exs, "adapt_variants")
    out = {}
    for name, (start, parts) in ADAPTATIONS.items():
        m = copy.deepcopy(out[start]) if start else extend(model, lang, spk, seed=seed)
        adapt(m, parts, exs, norm, steps=steps, seed=seed, desc=f"{name} {desc}".strip(),
              ckpt_dir=None if ckpt_dir is None else Path(ckpt_dir) / name, **train_kw)
        out[name] = m
    return out


# ----------------------------------------------------------------------------- prediction and scores

@torch.no_grad()
def predict(model: MLMS, exs: Sequence[Example], norm: Normaliser, *, batch_size: int = 16) -> list[torch.Tensor]:
    """Whole utterances through the model: -> raw (de-normalised) ``(frames, n_out)`` per example.
    The model is causal, so zero-padding at the end of shorter utterances changes nothing."""
    model.eval()
    dev = model.codes.device
    out = []
    for i in range(0, len(exs), batch_size):
        chunk = exs[i:i + batch_size]
        n = max(e.x.shape[0] for e in chunk)
        x = torch.stack([nn.functional.pad(norm.x(e.x), (0, 0, 0, n - e.x.shape[0])) for e in chunk]).to(dev)
        lang, spk = model.index([e.language for e in chunk], [e.speaker for e in chunk])
        y = norm.y_inverse(model(x, lang, spk).float())
        out += [y[k, :e.x.shape[0]].cpu() for k, e in enumerate(chunk)]
    return out


def dev_mse(model: MLMS, exs: Sequence[Example], norm: Normaliser) -> float:
    """Fig. 2/3's measure: MSE of the normalised vocoder features over all frames and dims."""
    preds = predict(model, exs, norm)
    num = sum(float(((norm.y(p) - norm.y(e.y)) ** 2).sum()) for p, e in zip(preds, exs))
    return num / sum(e.y.numel() for e in exs)


def scores(pred: torch.Tensor, true: torch.Tensor, order: int = 39) -> dict[str, float]:
    """Objective distances of predicted to natural vocoder features ``(frames, 49)``, raw units:
    MCD in dB (c1..c39, frame by frame), F0 RMSE in Hz (frames voiced in both) and the V/UV
    error rate (V/UV threshold 0.5)."""
    p, t = pred.double().numpy(), true.double().numpy()
    if p.shape != t.shape or p.ndim != 2 or p.shape[1] < order + 4:
        raise ValueError(f"scores: expected pred and true of one shape (frames, {order + 1} mcep + log-F0 + V/UV + "
                         f"BAP bands), got {p.shape} and {t.shape}")
    f0_p = vocoder.log_f0_to_f0(p[:, order + 1], p[:, order + 2])
    f0_t = vocoder.log_f0_to_f0(t[:, order + 1], t[:, order + 2])
    return {"mcd_db": metrics.mcd(t[:, :order + 1], p[:, :order + 1]),
            "f0_rmse_hz": metrics.f0_rmse(f0_t, f0_p), "vuv_error": metrics.vuv_error(f0_t, f0_p)}


def always_voiced(true: torch.Tensor, order: int = 39) -> float:
    """The V/UV error of a predictor that calls every frame voiced (what a constant V/UV output
    above 0.5 scores): the share of unvoiced frames in the natural features ``(frames, 49)``.
    A system whose V/UV error equals it has not learned to make a voicing decision."""
    t = true.double()
    if t.ndim != 2 or t.shape[1] < order + 3:
        raise ValueError(f"always_voiced: expected natural features (frames, {order + 1} mcep + log-F0 + V/UV ...), "
                         f"got {tuple(t.shape)}")
    return float((t[:, order + 2] <= 0.5).double().mean())


def to_wave(feats: torch.Tensor, sr: int = 22050, fft_size: int = 1024, order: int = 39) -> np.ndarray:
    """Vocoder features ``(frames, order + 3 + bands)`` -> waveform ``(samples,)`` through WORLD."""
    f = vocoder.AcousticFeatures.unstack(feats.double().numpy(), sr, fft_size, order)
    f.vuv = (f.vuv > 0.5).astype(np.float64)
    return vocoder.decode(f)
