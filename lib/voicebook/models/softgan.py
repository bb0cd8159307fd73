"""Training and using the CycleGAN-VC of Ferro, Obin & Roebel, with and without SoftGAN.

One training step (:func:`cyclegan_step`, for :func:`voicebook.train.fit`) updates the two
discriminators, then the two generators, of K independent CycleGANs at once (see
:mod:`voicebook.models.cyclegan_vc`). What a :class:`Recipe` switches:

* ``soft``: SoftGAN (section 3.2): the discriminator's target for a fake is
  ``(1 - rho_gen) D(G(x))`` (eq. 6) instead of 0, the generator's is
  ``D(G(x)) + rho_dis (1 - D(G(x)))`` (eq. 7) instead of 1, and the discriminator also sees
  *false anchors*, noise and the other speaker's real speech, as fakes (target 0);
* ``energy``: the energy constraint (section 3.3);
* ``bottleneck``: the larger generator of section 5.

What is detached, and why:

* discriminator step: the fakes ``G(x)`` are detached, so D's loss cannot reach the
  generators; the soft target of eq. 6 is detached, it is a label;
* generator step: the discriminators' weights are frozen (``requires_grad=False``), so G's loss
  cannot change them, but their scores of the fakes are *not* detached: that is the path of
  the adversarial gradient into G; the soft target of eq. 7 is detached, a label again.

Under LSGAN a target linear in ``d = D(G(x))`` keeps the loss proportional to the hard one,
detached or not: eqs. 6-7 re-weight the gradients of D's fake term and G's adversarial term
by a constant, and detaching only sets it (``rho_gen``, ``rho_dis`` here; their squares if not).

Every recipe also logs its adversarial losses against the *hard* labels (``"D_hard"``,
``"adv_hard"``), from the same scores, so that soft and hard systems compare in one unit.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import envelope, train, vocoder
from ..checks import AudioError, check_wave
from ..losses import (RHO_DIS, RHO_GEN, energy_loss, l1_per_copy, lsgan_loss, soft_fake_label,
                      soft_real_label)
from .cyclegan_vc import Discriminator, Generator

#: Bumped whenever what a training run logs or produces changes (2: the hard-label logs
#: ``D_hard`` / ``adv_hard``); chapter 2 keys its checkpoints on it, so older runs are not loaded.
VERSION = 2
CLIP = 8.0   # |normalised log power| beyond which a converted band is clipped (see convert_bands)

__all__ = ["VERSION", "CLIP", "Recipe", "SYSTEMS", "CycleGAN", "discriminator_loss", "hard_discriminator_loss", "generator_loss",
           "cyclegan_step", "EnvelopeCrops", "band_stats", "train_cyclegans", "convert_bands", "convert_wave",
           "convert_analysed", "collapsed", "flatness"]


@dataclass(frozen=True)
class Recipe:
    """One system of Table 1: the training recipe and the generator. Weights of eq. 5 and 3.3."""

    soft: bool = True
    energy: bool = True
    bottleneck: bool = False
    lambda_cyc: float = 0.3
    lambda_id: float = 0.15
    lambda_energy: float = 1.0
    rho_gen: float = RHO_GEN
    rho_dis: float = RHO_DIS


#: Table 1's systems, in the paper's order.
SYSTEMS = {
    "+SoftGAN+Energy": Recipe(soft=True, energy=True),
    "+SoftGAN-Energy": Recipe(soft=True, energy=False),
    "-SoftGAN+Energy+Bottleneck": Recipe(soft=False, energy=True, bottleneck=True),
    "-SoftGAN+Energy": Recipe(soft=False, energy=True),
}


class CycleGAN(nn.Module):
    """Two generators (X->Y, Y->X) and two discriminators (of X, of Y), K copies of each."""

    def __init__(self, recipe: Recipe, *, width: float = 1.0, groups: int = 1, bands: int = 32, frames: int = 128):
        super().__init__()
        self.g_xy = Generator(bottleneck=recipe.bottleneck, width=width, groups=groups)
        self.g_yx = Generator(bottleneck=recipe.bottleneck, width=width, groups=groups)
        self.d_x = Discriminator(bands=bands, frames=frames, width=width, groups=groups)
        self.d_y = Discriminator(bands=bands, frames=frames, width=width, groups=groups)

    def generators(self) -> list[nn.Parameter]:
        return [*self.g_xy.parameters(), *self.g_yx.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.d_x.parameters(), *self.d_y.parameters()]


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Within: the modules' parameters take no gradient (they still pass gradients through)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def discriminator_loss(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, anchors: Sequence[torch.Tensor],
                       recipe: Recipe) -> tuple[torch.Tensor, dict]:
    """One discriminator's LSGAN loss per copy ``(K,)``: ``(D(real) - 1)^2 + (D(fake) - t)^2``,
    halved, plus (SoftGAN) the mean of ``D(anchor)^2`` over the false anchors, halved.

    ``fake`` must already be detached. ``t`` is 0 (hard) or eq. 6's soft label. Logs the mean
    scores of real and fake samples, and :func:`hard_discriminator_loss` of the same scores.
    """
    if fake.requires_grad:
        raise ValueError("discriminator_loss: detach the fakes (D's loss must not reach the generator)")
    d_real, d_fake = d(real), d(fake)
    target = soft_fake_label(d_fake, recipe.rho_gen) if recipe.soft else 0.0
    loss = 0.5 * (lsgan_loss(d_real, 1.0) + lsgan_loss(d_fake, target))
    if recipe.soft and anchors:
        loss = loss + 0.5 * torch.stack([lsgan_loss(d(a), 0.0) for a in anchors]).mean(0)
    return loss, {"D(real)": d_real.detach().mean(), "D(fake)": d_fake.detach().mean(),
                  "D_hard": hard_discriminator_loss(d_real, d_fake).mean()}


def hard_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """What D's loss would be with the hard labels and no anchors, from the scores ``(batch, K)``
    already computed: ``((D(real) - 1)^2 + D(fake)^2) / 2`` per copy ``(K,)``, detached (a log only)."""
    return 0.5 * (lsgan_loss(d_real.detach(), 1.0) + lsgan_loss(d_fake.detach(), 0.0))


def generator_loss(model: CycleGAN, x: torch.Tensor, y: torch.Tensor, fake_y: torch.Tensor, fake_x: torch.Tensor,
                   recipe: Recipe, band_scale: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Both generators' loss per copy ``(K,)`` (eq. 5 + section 3.3):
    ``adv_XY + adv_YX + lambda_cyc L_cyc + lambda_id L_id [+ lambda_e L_energy]``.

    ``fake_y = G_XY(x)`` and ``fake_x = G_YX(y)`` keep their graphs. Call it with the
    discriminators :func:`frozen`. The adversarial target is 1 (hard) or eq. 7's soft label;
    ``"adv_hard"`` logs the adversarial term against 1 from the same scores, whatever the recipe.
    ``band_scale``: the std of the log band power the inputs were normalised by (see
    :func:`voicebook.losses.frame_energy`).
    """
    adv, adv_hard = 0.0, 0.0
    for d, fake in ((model.d_y, fake_y), (model.d_x, fake_x)):
        score = d(fake)                          # not detached: the adversarial gradient's path into G
        adv = adv + lsgan_loss(score, soft_real_label(score, recipe.rho_dis) if recipe.soft else 1.0)
        adv_hard = adv_hard + lsgan_loss(score.detach(), 1.0)                              # a log only
    cyc = l1_per_copy(model.g_yx(fake_y), x) + l1_per_copy(model.g_xy(fake_x), y)          # eq. 3
    idt = l1_per_copy(model.g_xy(y), y) + l1_per_copy(model.g_yx(x), x)                    # eq. 4
    loss = adv + recipe.lambda_cyc * cyc + recipe.lambda_id * idt
    logs = {"adv": adv.detach().mean(), "adv_hard": adv_hard.mean(), "cycle": cyc.detach().mean(),
            "identity": idt.detach().mean()}
    en = energy_loss(fake_y, x, band_scale) + energy_loss(fake_x, y, band_scale)             # section 3.3
    if recipe.energy:
        loss = loss + recipe.lambda_energy * en
    logs["energy"] = en.detach().mean()          # logged either way, so systems can be compared
    return loss, logs


def cyclegan_step(model: CycleGAN, batch, ctx: train.StepContext, *, recipe: Recipe, band_scale: float = 1.0) -> dict:
    """One step of :func:`voicebook.train.fit`: both discriminators, then both generators.

    ``batch``: ``(x, y, noise)``, each ``(1, K, bands, frames)``: a crop of each copy's source
    and target speaker, and Gaussian noise (a false anchor). Optimizers ``"d"`` and ``"g"``.
    Losses are summed over copies; the returned logs are per copy (``"D"``, ``"D_hard"`` summed
    over the two discriminators). ``band_scale``: as in :func:`generator_loss`.
    """
    x, y, noise = batch                                         # noise: the false anchor (SoftGAN)
    with ctx.autocast():
        fake_y, fake_x = model.g_xy(x), model.g_yx(y)           # with graphs: reused by the G step
        d_y_loss, logs_y = discriminator_loss(model.d_y, y, fake_y.detach(), [x, noise], recipe)
        d_x_loss, logs_x = discriminator_loss(model.d_x, x, fake_x.detach(), [y, noise], recipe)
        d_loss = (d_y_loss + d_x_loss).sum()
    ctx.update(d_loss, "d")
    with frozen(model.d_x, model.d_y), ctx.autocast():
        g_loss, g_logs = generator_loss(model, x, y, fake_y, fake_x, recipe, band_scale)
        g_loss = g_loss.sum()
    ctx.update(g_loss, "g")
    k = x.shape[1]
    return {"D": d_loss.detach() / k, "G": g_loss.detach() / k, "D_hard": logs_y["D_hard"] + logs_x["D_hard"],
            "D(real)": (logs_y["D(real)"] + logs_x["D(real)"]) / 2,
            "D(fake)": (logs_y["D(fake)"] + logs_x["D(fake)"]) / 2, **g_logs}


# ----------------------------------------------------------------------------- data

def band_stats(bands: Sequence[torch.Tensor]) -> tuple[float, float]:
    """One mean and one std of log band power over all frames of ``bands`` (``(n_bands, frames)``
    each): a single affine map, so per-frame energies keep their relation (section 3.3)."""
    allv = torch.cat([torch.as_tensor(b).reshape(-1).float() for b in bands])
    return float(allv.mean()), float(allv.std())


class EnvelopeCrops(torch.utils.data.Dataset):
    """Random ``frames``-long crops for K copies: item ``i`` is ``(x, y, noise)``, each ``(K,
    bands, frames)``, copy ``k`` cropping a training utterance of its source (``x``) and of its
    target (``y``), plus standard Gaussian noise (SoftGAN's noise anchor). ``copies``:
    ``[(source speaker, target speaker, seed)]``; ``by_speaker``: ``{speaker: [(bands, frames)
    normalised tensors]}``. Item ``i`` of copy ``k`` depends only on ``(seed, source, target,
    i)``: a copy's data are its own, whatever else trains beside it, so K copies trained
    together end where K lone trainings would. Non-parallel: x and y are drawn independently.
    """

    def __init__(self, by_speaker: Mapping[str, Sequence[torch.Tensor]], copies: Sequence[tuple[str, str, int]], *,
                 frames: int = 128, length: int = 100_000):
        for s, t, _ in copies:
            for spk in (s, t):
                if not by_speaker.get(spk):
                    raise ValueError(f"EnvelopeCrops: no training utterance of speaker {spk!r}")
        self.by_speaker, self.copies, self.frames, self.length = by_speaker, list(copies), frames, length

    def __len__(self) -> int:
        return self.length

    def _crop(self, rng: np.random.Generator, utts: Sequence[torch.Tensor]) -> torch.Tensor:
        b = utts[rng.integers(len(utts))]
        if b.shape[1] < self.frames:                      # short utterance: repeat it
            b = b.repeat(1, -(-self.frames // b.shape[1]))
        start = rng.integers(b.shape[1] - self.frames + 1)
        return b[:, start:start + self.frames]

    def __getitem__(self, i: int):
        xs, ys, noises = [], [], []
        for s, t, seed in self.copies:
            rng = np.random.default_rng([seed, i, *map(ord, s), 0, *map(ord, t)])
            xs.append(self._crop(rng, self.by_speaker[s]))
            ys.append(self._crop(rng, self.by_speaker[t]))
            noises.append(torch.from_numpy(rng.standard_normal(xs[-1].shape).astype(np.float32)))
        return torch.stack(xs), torch.stack(ys), torch.stack(noises)


def _init_copies(model: CycleGAN, recipe: Recipe, seeds: Sequence[int], width: float, bands: int, frames: int) -> None:
    """Give copy k the initial weights a ``groups=1`` CycleGAN gets from ``torch.manual_seed(seeds[k])``."""
    ones = []
    for s in seeds:
        torch.manual_seed(s)
        ones.append(CycleGAN(recipe, width=width, groups=1, bands=bands, frames=frames).state_dict())
    # every grouped tensor is its copies' tensors stacked along dim 0 (the inverse of cyclegan_vc.single)
    state = {name: torch.cat([o[name] for o in ones], dim=0) for name in model.state_dict()}
    model.load_state_dict(state)


def train_cyclegans(recipe: Recipe, data: EnvelopeCrops, *, steps: int, width: float = 1.0, lr_g: float = 2e-4,
                    lr_d: float = 1e-4, band_scale: float = 1.0, seed: int = 0, device=None, ckpt_dir=None,
                    desc: str = "CycleGAN", log_every: int = 10,
                    progress: bool = True) -> tuple[CycleGAN, train.History]:
    """Train one CycleGAN per entry of ``data.copies`` (K copies at once), batch size 1, Adam
    (betas 0.5, 0.999, CycleGAN-VC's). Copy k starts from seed ``data.copies[k][2]``'s weights.
    ``band_scale``: the std of :func:`band_stats` (the energy constraint's units).
    ``ckpt_dir``: resume / return at once from a finished run. -> (model in eval mode, history)."""
    bands = data.by_speaker[data.copies[0][0]][0].shape[0]
    model = CycleGAN(recipe, width=width, groups=len(data.copies), bands=bands, frames=data.frames)
    _init_copies(model, recipe, [c[2] for c in data.copies], width, bands, data.frames)
    opts = {"g": torch.optim.Adam(model.generators(), lr_g, betas=(0.5, 0.999)),
            "d": torch.optim.Adam(model.discriminators(), lr_d, betas=(0.5, 0.999))}
    step = functools.partial(cyclegan_step, recipe=recipe, band_scale=band_scale)
    history = train.fit(model, data, step_fn=step, optimizer=opts, steps=steps, batch_size=1, seed=seed,
                        device=device, ckpt_dir=ckpt_dir, desc=desc, log_every=log_every, progress=progress,
                        ckpt_every=max(100, steps // 10) if ckpt_dir is not None else 0)
    return model.eval(), history


# ----------------------------------------------------------------------------- conversion

@torch.no_grad()
def convert_bands(generator: Generator, bands, stats: tuple[float, float]) -> np.ndarray:
    """Log band envelope ``(n_bands, frames)`` -> converted ``(n_bands, frames)`` (numpy).

    ``generator``: one copy (``groups=1``, e.g. :func:`voicebook.models.cyclegan_vc.single`);
    ``stats``: the training normaliser of :func:`band_stats`. The generator is fully
    convolutional: a whole utterance goes through at once, its frames padded (edge) to a
    multiple of 4 and cropped back. Its instance norms then normalise over the whole utterance,
    not over 128-frame crops as in training (CycleGAN-VC converts the same way). Outputs beyond
    ``CLIP`` standard deviations of the training log power (only a diverged generator gets
    there) are clipped, NaN set to the mean.
    """
    if generator.groups != 1:
        raise ValueError("convert_bands: pass one copy (voicebook.models.cyclegan_vc.single(generator, k))")
    b = torch.as_tensor(np.asarray(bands), dtype=torch.float32)
    if b.ndim != 2 or b.shape[0] % 4:
        raise ValueError(f"convert_bands: expected (n_bands, frames) log powers with n_bands a multiple of 4, "
                         f"got shape {tuple(b.shape)}")
    if not torch.isfinite(b).all():            # the clean-up below is for the generator's output, not for bad input
        raise ValueError(f"convert_bands: the input bands hold {int((~torch.isfinite(b)).sum())} NaN or infinite values")
    n = b.shape[1]
    pad = (-n) % 4
    x = (b - stats[0]) / stats[1]
    x = torch.cat([x, x[:, -1:].expand(-1, pad)], dim=1) if pad else x
    dev = next(generator.parameters()).device
    y = generator(x[None, None].to(dev))[0, 0, :, :n].float().cpu()
    y = torch.nan_to_num(y, nan=0.0).clamp(-CLIP, CLIP)  # a diverged generator still gives a finite waveform
    return (y * stats[1] + stats[0]).numpy()


def convert_wave(generator: Generator, wav, sr: int, stats: tuple[float, float], f0_source: tuple[float, float],
                 f0_target: tuple[float, float], *, f0_method: str = "dio") -> np.ndarray:
    """End to end, section 4.1: waveform -> WORLD analysis -> 32-band envelope -> generator ->
    WORLD synthesis with the source's excitation (log-F0 moved from ``f0_source`` to
    ``f0_target``, each a ``(mean, std)`` of ln F0; aperiodicity kept) -> waveform.

    ``wav``: mono ``(samples,)`` at ``sr`` = 16000 Hz, at least 0.1 s, not silent, finite; a
    wrong rate, stereo, NaN, silence or a too-short clip raises :class:`AudioError`.
    """
    check_wave(wav, "softgan.convert_wave(wav)", sr=sr, expected_sr=envelope.SR, mono=True, min_seconds=0.1)
    m = envelope.analyze(wav, sr, n_bands=envelope.N_BANDS, f0_method=f0_method)   # WORLD checks the rest
    if not np.any(m.f0 > 0):
        raise AudioError("softgan.convert_wave: no voiced frame found (is the clip speech?)")
    return convert_analysed(generator, m, stats, f0_source, f0_target)[0]


def convert_analysed(generator: Generator, m: envelope.MelEnvelope, stats: tuple[float, float],
                     f0_source: tuple[float, float], f0_target: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The second half of :func:`convert_wave`, for an utterance already analysed
    (:func:`voicebook.envelope.analyze`): converted envelope + the source's moved F0 and
    aperiodicity -> ``(waveform (samples,) float32 at m.sr Hz, converted bands (n_bands, frames))``."""
    bands = convert_bands(generator, m.bands, stats)
    return envelope.synthesize(bands, vocoder.convert_f0(m.f0, f0_source, f0_target), m.ap, m.sr), bands


def collapsed(converted, source, stats: tuple[float, float]) -> bool:
    """Has a conversion ``(n_bands, frames)`` of ``source`` lost the shape of speech? True when it
    is not finite, has less than a quarter of the source's variation over time
    (:func:`flatness`), or sits mostly (over half its values) more than 4 standard deviations
    of the training log power from its mean."""
    c = np.asarray(converted, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        return True
    outside = np.mean(np.abs(c - stats[0]) > 4 * stats[1])
    return bool(flatness(c, source) < 0.25 or outside > 0.5)


def flatness(converted, source) -> float:
    """Temporal variation of a conversion relative to its source: the mean over bands of the std
    over frames, converted / source. A generator that has collapsed to a constant (or near
    constant) output gives ~0; NaN or inf gives 0."""
    c, s = np.asarray(converted, dtype=np.float64), np.asarray(source, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        return 0.0
    return float(c.std(axis=1).mean() / max(s.std(axis=1).mean(), 1e-12))
