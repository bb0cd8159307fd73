"""Speaker-dependent recurrent output layers (Li & Zen, eq. 2; Zen & Sak's RNN output layer).

Each speaker ``s`` has its own linear recurrent layer from the shared hidden activations to the
vocoder parameters: ``y_t = W_s h_t + U_s y_{t-1} + b_s`` (the paper: 128 -> 49 forward, 49 x 49
recurrent). A batch may mix speakers: each utterance gathers its speaker's weights, so one
pass serves them all, and only the layers of the speakers in the batch receive gradients
(section 2: "the other ... speaker dependent RNN output layers will remain unchanged unless the
corresponding data samples are provided").

The recurrence is linear, so it needs no loop over frames: with ``d_t = W_s h_t + b_s``,
``y_t = sum_k d_{t-k} U_s^k``, which :func:`linear_recurrence` sums in ``ceil(log2 frames)``
doubling steps (after step ``j`` each frame holds the terms ``k < 2^j``), each one batched
``(frames, n) x (n, n)`` product: 10 steps for 1000 frames instead of 1000.

Shapes: ``h`` ``(batch, frames, n_in)``, ``speakers`` ``(batch,)`` indices -> ``(batch, frames, n_out)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..fp32 import no_autocast

__all__ = ["SpeakerOutputs", "linear_recurrence"]


def linear_recurrence(drive: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``y_t = drive_t + y_{t-1} u`` with ``y_{-1} = 0``, by doubling (see the module doc).

    ``drive``: ``(batch, frames, n)``; ``u``: ``(batch, n, n)`` -> ``(batch, frames, n)``.
    """
    y, power, shift = drive, u, 1
    while shift < drive.shape[1]:
        # add the terms k in [shift, 2 shift): y_{t - shift} (holding k < shift) times u^shift
        y = torch.cat([y[:, :shift], y[:, shift:] + torch.bmm(y[:, :-shift], power)], dim=1)
        power, shift = torch.bmm(power, power), 2 * shift
    return y


class SpeakerOutputs(nn.Module):
    """One recurrent output layer per speaker: ``y_t = W_s h_t + U_s y_{t-1} + b_s``, ``y_0 = 0``."""

    def __init__(self, n_speakers: int, n_in: int = 128, n_out: int = 49):
        super().__init__()
        k = 1 / math.sqrt(n_in)
        self.w = nn.Parameter(torch.empty(n_speakers, n_in, n_out).uniform_(-k, k))
        self.u = nn.Parameter(torch.empty(n_speakers, n_out, n_out).uniform_(-0.5 / math.sqrt(n_out),
                                                                              0.5 / math.sqrt(n_out)))
        self.b = nn.Parameter(torch.zeros(n_speakers, n_out))

    def forward(self, h: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        n_speakers, n_in, _ = self.w.shape
        if h.ndim != 3 or h.shape[-1] != n_in:
            raise ValueError(f"SpeakerOutputs: expected h of shape (batch, frames, {n_in}), got {tuple(h.shape)}")
        speakers = torch.as_tensor(speakers).long()     # checked where it lives: no GPU sync for CPU indices
        if speakers.shape != (h.shape[0],) or bool(((speakers < 0) | (speakers >= n_speakers)).any()):
            raise ValueError(f"SpeakerOutputs: need one speaker index in [0, {n_speakers}) per utterance, "
                             f"got {speakers.tolist()} for a batch of {h.shape[0]}")
        speakers = speakers.to(h.device)
        with no_autocast(h.device.type):                          # powers of U_s need float32
            drive = torch.einsum("bti,bio->bto", h.float(), self.w[speakers]) + self.b[speakers][:, None]
            return linear_recurrence(drive, self.u[speakers])     # W_s h_t + b_s + U_s y_{t-1}
