"""The small CycleGAN-VC of Ferro, Obin & Roebel (section 4.1), and its bottleneck variant (section 5).

Generator: two convolutions (kernel 2, stride 2) down, two transposed convolutions up, with
256, 512, 256 and 1 filters, instance norm + ReLU after each layer. Discriminator: four
convolutions (kernel 2; 64, 128, 256, 512 filters; the paper gives no stride: stride 2 is our
assumption, like the generator's) with instance norm + LeakyReLU,
then fully connected layers of 512 and 1. Inputs are ``(32 bands, 128 frames)`` images of
the mel-band envelope, batch size 1. The *bottleneck* generator of section 5 adds a
convolution and a transposed convolution (512 filters, kernel 3, stride 1) in the middle.

Convolutions followed by instance norm have no bias (the norm's own shift replaces it; a bias
there has zero gradient, which Adam would turn into a random walk). Two deviations, both
forced: the generator's last layer is linear (instance norm would set each output's mean and
variance to 0 and 1, and ReLU would forbid the negative log powers it must produce), and the
discriminator's 512-unit layer has LeakyReLU but no norm (a vector has no positions for
instance norm to normalise over).

**Many models at once.** Every network takes ``groups=K`` and is then K independent copies
side by side: the input ``(batch, K, bands, frames)`` holds one image per copy, convolutions
are grouped, the fully connected layers are per copy. Copy ``k`` sees only channel ``k``
and its own weights, so K copies trained together are exactly K separate trainings (Adam is
element-wise), in one kernel launch instead of K. The chapter trains one copy per (speaker
pair, seed); :func:`single` takes one copy out as a plain ``groups=1`` network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Generator", "Discriminator", "GroupLinear", "single", "n_params"]


def _ch(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class GroupLinear(nn.Module):
    """K independent fully connected layers: ``(batch, K, in) -> (batch, K, out)``."""

    def __init__(self, groups: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(groups, n_out))
        bound = 1 / math.sqrt(n_in)      # nn.Linear's default initialisation, per copy
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bki,kio->bko", x, self.weight) + self.bias


def _check(x: torch.Tensor, groups: int, who: str, bands: int | None = None, frames: int | None = None) -> None:
    if x.ndim != 4 or x.shape[1] != groups:
        raise ValueError(f"{who}: expected (batch, {groups} copies, bands, frames), got {tuple(x.shape)}")
    if bands is not None and (x.shape[2], x.shape[3]) != (bands, frames):
        raise ValueError(f"{who}: built for {bands} bands x {frames} frames, got {tuple(x.shape[2:])}")
    if x.shape[2] % 4 or x.shape[3] % 4:
        raise ValueError(f"{who}: bands and frames must be multiples of 4 (two stride-2 layers), got {tuple(x.shape[2:])}")


class Generator(nn.Module):
    """Envelope converter: ``(batch, K, bands, frames)`` -> same shape (bands, frames multiples of 4).

    ``channels``: the filters of the two encoder layers and the first decoder layer (the paper:
    256, 512, 256; the last layer has 1). ``bottleneck``: section 5's larger baseline.
    ``width`` scales every channel count (1 = the paper's network).
    """

    def __init__(self, channels=(256, 512, 256), bottleneck: bool = False, width: float = 1.0, groups: int = 1):
        super().__init__()
        c1, c2, c3 = (_ch(c, width) for c in channels)
        K = self.groups = groups
        self.config = dict(channels=tuple(channels), bottleneck=bottleneck, width=width)

        def block(conv, c_out):
            return nn.Sequential(conv, nn.InstanceNorm2d(K * c_out, affine=True), nn.ReLU())

        layers = [block(nn.Conv2d(K, K * c1, 2, 2, groups=K, bias=False), c1),
                  block(nn.Conv2d(K * c1, K * c2, 2, 2, groups=K, bias=False), c2)]
        if bottleneck:
            cb = _ch(512, width)
            layers += [block(nn.Conv2d(K * c2, K * cb, 3, 1, 1, groups=K, bias=False), cb),
                       block(nn.ConvTranspose2d(K * cb, K * c2, 3, 1, 1, groups=K, bias=False), c2)]
        layers += [block(nn.ConvTranspose2d(K * c2, K * c3, 2, 2, groups=K, bias=False), c3),
                   nn.ConvTranspose2d(K * c3, K, 2, 2, groups=K)]   # linear output: log powers
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.groups, "Generator")
        return self.net(x)


class Discriminator(nn.Module):
    """Real/fake critic: ``(batch, K, bands, frames)`` -> ``(batch, K)`` unbounded scores (LSGAN).

    The fully connected layer needs a fixed input: ``bands`` x ``frames`` (the paper: 32 x 128).
    """

    def __init__(self, channels=(64, 128, 256, 512), hidden: int = 512, bands: int = 32, frames: int = 128,
                 width: float = 1.0, groups: int = 1):
        super().__init__()
        K = self.groups = groups
        self.bands, self.frames = bands, frames
        self.config = dict(channels=tuple(channels), hidden=hidden, bands=bands, frames=frames, width=width)
        chans = [1] + [_ch(c, width) for c in channels]
        convs = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            convs += [nn.Conv2d(K * c_in, K * c_out, 2, 2, groups=K, bias=False),
                      nn.InstanceNorm2d(K * c_out, affine=True), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*convs)
        down = 2 ** len(channels)
        if bands % down or frames % down:
            raise ValueError(f"Discriminator: bands and frames must be multiples of {down}, got {bands} x {frames}")
        self.flat = chans[-1] * (bands // down) * (frames // down)
        h = _ch(hidden, width)
        self.fc = nn.Sequential(GroupLinear(K, self.flat, h), nn.LeakyReLU(0.2), GroupLinear(K, h, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.groups, "Discriminator", self.bands, self.frames)
        h = self.convs(x)                                   # (batch, K * C, bands / 16, frames / 16)
        h = h.reshape(x.shape[0], self.groups, self.flat)   # grouped channels are contiguous per copy
        return self.fc(h).squeeze(-1)


def single(model: nn.Module, k: int) -> nn.Module:
    """Copy ``k`` of a ``groups=K`` :class:`Generator` or :class:`Discriminator`, as a ``groups=1``
    network with the same weights (in eval mode if ``model`` is)."""
    K = model.groups
    if not 0 <= k < K:
        raise IndexError(f"single: copy {k} of a model with {K} copies")
    one = type(model)(**model.config, groups=1)
    state = {name: p.reshape(K, p.shape[0] // K, *p.shape[1:])[k].reshape(one.state_dict()[name].shape)
             for name, p in model.state_dict().items()}
    one.load_state_dict(state)
    return one.to(next(model.parameters()).device).train(model.training)


def n_params(model: nn.Module) -> int:
    """Trainable parameters per copy."""
    return sum(p.numel() for p in model.parameters()) // model.groups
