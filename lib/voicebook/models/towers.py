"""Several LSTM towers of the same shape, run as one network (Li & Zen, Fig. 1 and eq. 1).

The multilingual model of chapter 3 has a mean tower and L language basis towers, each a ReLU
projection followed by LSTM layers with a recurrent projection. Run one after another, L + 1
small LSTMs leave a GPU mostly idle. Here they run together:

* the ReLU projections are one ``einsum`` over stacked weights ``(towers, in, relu)``;
* the LSTM layers are *one* ``nn.LSTM`` with ``towers x cells`` cells and ``towers x proj``
  projections whose weight matrices are masked block-diagonal at every forward pass: tower
  ``k``'s gates see only tower ``k``'s inputs and recurrent state. One cuDNN call per layer
  does the work of ``towers`` calls, at ``towers`` times the arithmetic of the blocks (the
  zero blocks are multiplied too), and the masks also zero the gradient off the blocks, so
  the towers stay exactly independent networks;
* :func:`combine` is eq. 1's ``h = M_mean + sum_l lambda_l M_l``.

Shapes: input ``(batch, frames, n_in)``; :class:`Towers` returns ``(towers, batch, frames, proj)``.
"""

from __future__ import annotations

import math
import warnings
from functools import partial

import torch
from torch import nn
from torch.func import functional_call

from ..fp32 import fp32_rnn

__all__ = ["Towers", "combine"]

# CPU only, harmless: PyTorch falls back from oneDNN to its own kernel for projected LSTMs.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
# CUDA: the masked weights are new tensors at every call, so cuDNN copies them into one chunk
# (what the warning is about); that copy is the price of the masks, and a small one.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")


class Towers(nn.Module):
    """``towers`` independent towers: ReLU projection to ``relu`` units, then ``layers`` LSTM
    layers of ``cells`` cells with a ``proj``-d recurrent projection (the paper: 256, 3 x 256, 128)."""

    def __init__(self, n_in: int, towers: int, *, relu: int = 256, cells: int = 256, proj: int = 128,
                 layers: int = 3):
        super().__init__()
        self.towers, self.relu, self.cells, self.proj, self.layers = towers, relu, cells, proj, layers
        bound = 1 / math.sqrt(n_in)
        self.w_in = nn.Parameter(torch.empty(towers, n_in, relu).uniform_(-bound, bound))
        self.b_in = nn.Parameter(torch.empty(towers, relu).uniform_(-bound, bound))
        self.lstm = nn.LSTM(towers * relu, towers * cells, num_layers=layers, proj_size=towers * proj,
                            batch_first=True)
        k = 1 / math.sqrt(cells)                 # what each tower's own nn.LSTM(cells) would draw
        for p in self.lstm.parameters():
            nn.init.uniform_(p, -k, k)
        for name, p in self.lstm.named_parameters():
            if name.startswith("weight"):
                self.register_buffer(f"mask_{name}", self._mask(name, p.shape), persistent=False)

    def _mask(self, name: str, shape) -> torch.Tensor:
        """Block-diagonal 0/1 mask of one LSTM weight: rows and columns grouped by tower."""
        n = self.towers
        if name.startswith("weight_hr"):          # (n * proj, n * cells): projection of each tower's cells
            rows, cols = self.proj, self.cells
            row_tower = torch.arange(shape[0]) // rows
        else:                                     # (4 * n * cells, inputs): gates i, f, g, o, each n * cells
            rows = self.cells
            row_tower = (torch.arange(shape[0]) % (n * rows)) // rows
            cols = self.relu if name.startswith("weight_ih_l0") else self.proj
        col_tower = torch.arange(shape[1]) // cols
        return (row_tower[:, None] == col_tower[None, :]).float()

    def masked_weights(self) -> dict[str, torch.Tensor]:
        """The LSTM's parameters with every weight masked block-diagonal."""
        return {name: p * getattr(self, f"mask_{name}") if name.startswith("weight") else p
                for name, p in self.lstm.named_parameters()}

    def tower_masks(self, k: int) -> dict[str, torch.Tensor]:
        """0/1 masks, one per parameter (``named_parameters()`` names), of the entries that
        belong to tower ``k`` alone: its projection, and its rows (and columns) of the LSTM's
        weights and biases. Training one tower (section 4.2's mean tower) multiplies the
        gradients by these."""
        if not 0 <= k < self.towers:
            raise ValueError(f"Towers.tower_masks: tower {k} of {self.towers}")
        out = {"w_in": torch.zeros_like(self.w_in), "b_in": torch.zeros_like(self.b_in)}
        out["w_in"][k], out["b_in"][k] = 1.0, 1.0
        for name, p in self.lstm.named_parameters():
            n_rows = self.proj if name.startswith("weight_hr") else self.cells
            rows = torch.arange(p.shape[0], device=p.device)
            rows = rows // n_rows if name.startswith("weight_hr") else (rows % (self.towers * n_rows)) // n_rows
            mine = (rows == k).to(p.dtype)
            if name.startswith("weight"):
                out[f"lstm.{name}"] = mine[:, None] * getattr(self, f"mask_{name}")
            else:
                out[f"lstm.{name}"] = mine
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.w_in.shape[1]:
            raise ValueError(f"Towers: expected (batch, frames, {self.w_in.shape[1]}), got {tuple(x.shape)}")
        h = torch.relu(torch.einsum("bti,kio->btko", x, self.w_in) + self.b_in)   # (batch, frames, towers, relu)
        h = h.reshape(x.shape[0], x.shape[1], self.towers * self.relu)
        lstm = partial(functional_call, self.lstm, self.masked_weights())        # the masked LSTM, called on h
        out, _ = fp32_rnn(lstm, h)                                                # (batch, frames, towers * proj)
        return out.reshape(x.shape[0], x.shape[1], self.towers, self.proj).permute(2, 0, 1, 3)


def combine(towers_out: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``h = M_mean(x) + sum_l lambda_l M_l(x)``.

    ``towers_out``: ``(1 + L, batch, frames, proj)``, the mean tower first; ``codes``: the
    language code ``lambda`` of each utterance, ``(batch, L)``. -> ``(batch, frames, proj)``.
    """
    if codes.ndim != 2 or codes.shape[1] != towers_out.shape[0] - 1 or codes.shape[0] != towers_out.shape[1]:
        raise ValueError(f"combine: codes must be (batch={towers_out.shape[1]}, L={towers_out.shape[0] - 1}), "
                         f"got {tuple(codes.shape)}")
    return towers_out[0] + torch.einsum("bl,lbtp->btp", codes, towers_out[1:])
