"""voicebook.models.towers: L + 1 LSTM towers run as one masked LSTM equal separate towers
(chapter 3, Li & Zen eq. 1), and the tower combination equals its explicit sum."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from voicebook.models.towers import Towers, combine

N_IN, RELU, CELLS, PROJ, LAYERS, K = 7, 6, 5, 3, 2, 3


def _gate_rows(k: int, n: int, cells: int) -> torch.Tensor:
    """Rows of tower k in a (4 * n * cells, ...) gate matrix (gates i, f, g, o)."""
    return torch.cat([torch.arange(g * n * cells + k * cells, g * n * cells + (k + 1) * cells) for g in range(4)])


def separate_tower(t: Towers, k: int) -> tuple[nn.LSTM, torch.Tensor, torch.Tensor]:
    """Tower k as its own nn.LSTM with the weights of its blocks (and its input projection)."""
    lstm = nn.LSTM(RELU, CELLS, num_layers=LAYERS, proj_size=PROJ, batch_first=True)
    rows = _gate_rows(k, t.towers, CELLS)
    with torch.no_grad():
        for layer in range(LAYERS):
            width = RELU if layer == 0 else PROJ
            getattr(lstm, f"weight_ih_l{layer}").copy_(
                getattr(t.lstm, f"weight_ih_l{layer}")[rows][:, k * width:(k + 1) * width])
            getattr(lstm, f"weight_hh_l{layer}").copy_(getattr(t.lstm, f"weight_hh_l{layer}")[rows][:, k * PROJ:(k + 1) * PROJ])
            for b in ("bias_ih", "bias_hh"):
                getattr(lstm, f"{b}_l{layer}").copy_(getattr(t.lstm, f"{b}_l{layer}")[rows])
            getattr(lstm, f"weight_hr_l{layer}").copy_(
                getattr(t.lstm, f"weight_hr_l{layer}")[k * PROJ:(k + 1) * PROJ, k * CELLS:(k + 1) * CELLS])
    return lstm, t.w_in[k].detach(), t.b_in[k].detach()


def test_towers_run_together_equal_towers_run_apart():
    torch.manual_seed(0)
    t = Towers(N_IN, K, relu=RELU, cells=CELLS, proj=PROJ, layers=LAYERS)
    x = torch.randn(2, 11, N_IN)
    out = t(x)
    assert out.shape == (K, 2, 11, PROJ)
    for k in range(K):
        lstm, w, b = separate_tower(t, k)
        expected, _ = lstm(torch.relu(x @ w + b))
        torch.testing.assert_close(out[k], expected, atol=1e-5, rtol=1e-5)


def test_a_tower_ignores_the_others_and_gets_no_gradient_across_blocks():
    torch.manual_seed(1)
    t = Towers(N_IN, K, relu=RELU, cells=CELLS, proj=PROJ, layers=LAYERS)
    x = torch.randn(1, 9, N_IN)
    before = t(x)
    with torch.no_grad():
        t.w_in[2].add_(1.0)                                     # change tower 2 only
    after = t(x)
    torch.testing.assert_close(after[:2], before[:2])
    assert not torch.allclose(after[2], before[2])
    t(x)[0].sum().backward()                                    # a loss on tower 0 alone
    g = t.lstm.weight_hh_l1.grad
    rows = _gate_rows(0, K, CELLS)
    assert g[rows][:, :PROJ].abs().sum() > 0
    off = g.clone()
    off[rows.unsqueeze(1), torch.arange(PROJ)] = 0
    assert off.abs().sum() == 0                                 # nothing outside tower 0's block
    assert t.w_in.grad[1:].abs().sum() == 0


def test_combination_is_the_mean_tower_plus_the_weighted_bases():
    out = torch.randn(1 + 2, 4, 6, PROJ)                        # mean tower + L = 2 bases
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -2.0], [0.0, 0.0]])
    h = combine(out, codes)
    for b in range(4):
        torch.testing.assert_close(h[b], out[0, b] + codes[b, 0] * out[1, b] + codes[b, 1] * out[2, b])
    with pytest.raises(ValueError, match="codes must be"):
        combine(out, torch.ones(4, 3))


def test_tower_masks_select_one_tower_exactly():
    torch.manual_seed(3)
    t = Towers(N_IN, K, relu=RELU, cells=CELLS, proj=PROJ, layers=LAYERS)
    masks = t.tower_masks(1)
    assert set(masks) == {name for name, _ in t.named_parameters()}
    x = torch.randn(1, 8, N_IN)
    before = t(x).detach()
    with torch.no_grad():                                       # move tower 1's entries only
        for name, p in t.named_parameters():
            p.add_(masks[name] * 0.5)
    after = t(x).detach()
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])    # the other towers did not move
    assert not torch.allclose(after[1], before[1])
    total = sum(m.sum() for m in masks.values())
    per_tower = (N_IN * RELU + RELU) + sum(                      # a lone tower's parameter count
        p.numel() for p in nn.LSTM(RELU, CELLS, num_layers=LAYERS, proj_size=PROJ).parameters())
    assert total == per_tower
    with pytest.raises(ValueError, match="tower 3 of 3"):
        t.tower_masks(3)


def test_tower_masks_live_on_the_models_device():
    """On a GPU chapter 3's adaptation v2-v4 multiply gradients by these masks; built on the
    CPU they would fail there ("expected all tensors to be on the same device"). The meta
    device stands in for CUDA: a CPU tensor mixed with a meta one fails the same way."""
    t = Towers(N_IN, K, relu=RELU, cells=CELLS, proj=PROJ, layers=LAYERS).to("meta")
    masks = t.tower_masks(0)
    assert {m.device.type for m in masks.values()} == {"meta"}
    assert t(torch.empty(2, 4, N_IN, device="meta")).device.type == "meta"
