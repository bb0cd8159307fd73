"""voicebook.fp32: recurrent layers and GE2E similarities stay float32 under autocast."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from voicebook.fp32 import at_least_fp32, fp32_rnn
from voicebook.losses import ge2e_loss


def test_an_rnn_under_bf16_autocast_computes_exactly_as_without():
    torch.manual_seed(0)
    gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
    x = torch.randn(3, 7, 6)
    want = gru(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fp32_rnn(gru, x.bfloat16())[0]                   # a bf16 input, as after a conv under autocast
        proj = nn.Linear(6, 6)(x)                              # autocast is on around it
    assert proj.dtype == torch.bfloat16 and got.dtype == torch.float32
    torch.testing.assert_close(got, gru(x.bfloat16().float())[0], rtol=0, atol=0)
    assert (got - want).abs().max() < 0.05                     # only the input's bf16 rounding differs


def test_packed_sequences_and_float64_pass_through():
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 3, batch_first=True)
    x, lengths = torch.randn(2, 5, 4), torch.tensor([5, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fp32_rnn(lstm, pack_padded_sequence(x.bfloat16(), lengths, batch_first=True))[0]
    padded = pad_packed_sequence(out, batch_first=True)[0]
    assert padded.dtype == torch.float32 and padded.shape == (2, 5, 3)
    assert at_least_fp32(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    assert at_least_fp32(torch.ones(2, dtype=torch.float16)).dtype == torch.float32
    assert at_least_fp32(torch.ones(2, dtype=torch.long)).dtype == torch.long


def test_ge2e_loss_under_autocast_equals_float32():
    """The similarity matrix is scaled by w (>= 10 in training): bf16 cosines would add ~0.04
    of noise to the logits; the loss computes them in float32 whatever autocast says."""
    g = torch.Generator().manual_seed(2)
    e, w, b = torch.randn(4, 3, 32, generator=g), torch.tensor(10.0), torch.tensor(-5.0)
    want = ge2e_loss(e, w, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ge2e_loss(e, w, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
