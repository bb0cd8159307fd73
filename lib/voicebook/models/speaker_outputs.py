"""Speaker-dependent recurrent output layers (Li & Zen, eq. 2; Zen & Sak's RNN output layer).

Each speaker ``s`` has its own linear recurrent layer from the shared hidden activations to the
vocoder parameters: ``y_t = W_s h_t + U_s y_{t-1} + b_s`` (the paper: 128 -> 49 forward, 49 x 49
recurrent). A batch may mix speakers: each utterance gathers its speaker's weights, so one
pass serves them all, and only the layers of the speakers in the batch receive gradients
(section 2: "the other ... speaker dependent RNN output layers will remain unchanged unless the
corresponding data samples are provided").

Shapes: ``h`` ``(batch, frames, n_in)``, ``speakers`` ``(batch,)`` indices -> ``(batch, frames, n_out)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SpeakerOutputs"]


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
        speakers = torch.as_tensor(speakers, device=h.device).long()
        if speakers.shape != (h.shape[0],) or speakers.min() < 0 or speakers.max() >= n_speakers:
            raise ValueError(f"SpeakerOutputs: need one speaker index in [0, {n_speakers}) per utterance, "
                             f"got {speakers.tolist()} for a batch of {h.shape[0]}")
        drive = torch.einsum("bti,bio->bto", h, self.w[speakers]) + self.b[speakers][:, None]  # W_s h_t + b_s
        u = self.u[speakers]                                                                   # (batch, out, out)
        y, ys = torch.zeros_like(drive[:, 0]), []
        for t in range(drive.shape[1]):              # a 49-unit recurrence: cheap steps
            y = drive[:, t] + torch.bmm(y.unsqueeze(1), u).squeeze(1)
            ys.append(y)
        return torch.stack(ys, dim=1)
