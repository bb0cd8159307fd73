"""Float32 islands inside autocast: the recurrent layers and the GE2E similarities.

Why: under CUDA autocast PyTorch runs a cuDNN LSTM/GRU in **float16** even when autocast's
dtype is bfloat16 (``aten/src/ATen/cudnn/AutocastRNN.cpp`` casts input, states and weights to
``kHalf``), and ``fit``'s default GPU path is bf16 autocast without a GradScaler. The RNNs'
gradients (about 1e-5 per element for a mean over 1e5 elements) then fall under float16's
smallest normal number and lose their precision or vanish. Every recurrent layer of the book
therefore runs through :func:`fp32_rnn`: autocast off, float32 in and out. The layers around it
keep their bf16 autocast; TF32 keeps a float32 cuDNN RNN fast on recent GPUs.
:func:`at_least_fp32` lifts half-precision tensors for other float32 islands (the GE2E
similarity matrix, whose cosines are scaled by ``w >= 10``); :func:`no_autocast` opens one
(also used by the speaker output layers' linear recurrence).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch.nn.utils.rnn import PackedSequence


def at_least_fp32(x):
    """A floating tensor (or ``PackedSequence``) in float32 if it was in lower precision;
    float64 stays float64; anything else is returned as it is."""
    if isinstance(x, PackedSequence):
        return x._replace(data=at_least_fp32(x.data))
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(torch.promote_types(x.dtype, torch.float32))
    return x


def fp32_rnn(rnn: Callable, x, *args):
    """``rnn(x, *args)`` with autocast off and half-precision inputs cast to float32.

    ``rnn``: an ``nn.LSTM`` / ``nn.GRU`` or any callable around one; ``x``: its input, a tensor
    ``(batch, frames, features)`` or a ``PackedSequence``; ``args``: e.g. the initial states.
    Returns what ``rnn`` returns, in float32.
    """
    device = (x.data if isinstance(x, PackedSequence) else x).device.type
    with no_autocast(device):
        return rnn(at_least_fp32(x), *(at_least_fp32(a) for a in args))


def no_autocast(device_type: str):
    """``torch.autocast(device_type, enabled=False)``; a no-op context on a device autocast
    does not know (e.g. ``meta``)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
