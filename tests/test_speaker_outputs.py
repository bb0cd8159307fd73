"""voicebook.models.speaker_outputs: one recurrent output layer per speaker (Li & Zen eq. 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.models.speaker_outputs import SpeakerOutputs


def test_shapes_of_the_papers_layer():
    layer = SpeakerOutputs(5)                                  # 128 -> 49 forward, 49 x 49 recurrent
    assert layer.w.shape == (5, 128, 49) and layer.u.shape == (5, 49, 49) and layer.b.shape == (5, 49)
    assert layer(torch.randn(3, 20, 128), torch.tensor([0, 4, 4])).shape == (3, 20, 49)


def test_recurrence_against_numpy_per_speaker():
    torch.manual_seed(0)
    layer = SpeakerOutputs(3, n_in=4, n_out=2)
    with torch.no_grad():
        layer.b.normal_()
    h = torch.randn(2, 6, 4)
    speakers = torch.tensor([2, 0])
    y = layer(h, speakers).detach().numpy()
    for i, s in enumerate(speakers.tolist()):
        w, u, b = (p[s].detach().numpy() for p in (layer.w, layer.u, layer.b))
        prev = np.zeros(2)
        for t in range(6):
            prev = h[i, t].numpy() @ w + prev @ u + b
            np.testing.assert_allclose(y[i, t], prev, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frames", [1, 2, 5, 64, 100])
def test_doubling_equals_the_step_by_step_recurrence(frames):
    from voicebook.models.speaker_outputs import linear_recurrence

    g = torch.Generator().manual_seed(frames)
    d = torch.randn(3, frames, 4, generator=g, dtype=torch.float64)
    u = 0.3 * torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    y, prev = linear_recurrence(d, u), torch.zeros(3, 4, dtype=torch.float64)
    for t in range(frames):
        prev = d[:, t] + torch.bmm(prev[:, None], u)[:, 0]
        torch.testing.assert_close(y[:, t], prev)


def test_only_the_speakers_in_the_batch_learn():
    layer = SpeakerOutputs(4, n_in=3, n_out=2)
    layer(torch.randn(2, 5, 3), torch.tensor([1, 3])).pow(2).sum().backward()
    for p in (layer.w, layer.u, layer.b):
        assert p.grad[[1, 3]].abs().sum() > 0 and p.grad[[0, 2]].abs().sum() == 0


def test_bad_speaker_indices_are_named():
    layer = SpeakerOutputs(2, n_in=3, n_out=2)
    with pytest.raises(ValueError, match=r"speaker index in \[0, 2\)"):
        layer(torch.randn(1, 4, 3), torch.tensor([2]))
    with pytest.raises(ValueError, match="expected h of shape"):
        layer(torch.randn(1, 4, 5), torch.tensor([0]))
