"""voicebook.models.vad: energy-ratio targets, the CRNN, and the filter of Wang et al. 2.1.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.models import vad

SR = 16000


def test_energy_ratio_by_hand():
    t = torch.arange(SR) / SR
    tone = torch.sin(2 * np.pi * 440 * t)
    voice = torch.cat([tone, torch.zeros(SR)])[None]                   # 1 s voice, then silence
    acc = torch.cat([tone, tone])[None] * 0.5                          # the same tone, half amplitude
    ratio = vad.energy_ratio(voice, voice + acc)
    frames = ratio.shape[1]
    assert ratio.shape == (1, 2 * SR // 256 + 1)
    np.testing.assert_allclose(ratio[0, 5:frames // 2 - 5].numpy(), 1 / 1.5 ** 2, rtol=1e-3)   # (1 / 1.5)^2
    assert float(ratio[0, frames // 2 + 5:].max()) < 1e-6
    silent = vad.energy_ratio(torch.zeros(1, SR), torch.zeros(1, SR))
    assert float(silent.abs().max()) == 0.0                            # both silent -> 0


def test_crnn_shapes_and_keep_best():
    model = vad.CRNN(channels=4, hidden=8)
    y = model(torch.randn(3, 2 * SR)).detach()
    assert y.shape == (3, 2 * SR // 256 + 1) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert vad.keep_best([0.3, 0.1, 0.5, 0.1], 0.5).tolist() == [1, 3]
    with pytest.raises(ValueError, match="top must be"):
        vad.keep_best([0.1], 0)


def _bce(model, pairs):
    """Section 2.1.1's training loss: BCE of the predicted energy ratio on (input, target) pairs."""
    with torch.no_grad():
        return float(torch.nn.functional.binary_cross_entropy_with_logits(
            model.logits(torch.stack([p[0] for p in pairs])), torch.stack([p[1] for p in pairs])))


def test_the_filter_ranks_a_clean_song_above_a_bleeding_one(tiny_songs, tiny_vads):
    """Detectors trained on two labelled songs (conftest.tiny_vads) fit their data far better
    than untrained ones, and rank a clean song by an unseen singer above both karaoke songs
    (amateur singer, backing bleeding into the vocal track and voice into the backing track)."""
    _, ss = tiny_songs
    labelled = [torch.tensor(s.stems()) for s in ss.split("labelled")]
    # each detector saw mixtures and the lone sources (as self-labelled tracks will be)
    examples = [x for st in labelled for x in (st.sum(0), st[0], st[1])]
    for k, model in enumerate(tiny_vads):
        # source k's share: all of the mixture's k part, all of its own lone track, none of the other's
        targets = [vad.energy_ratio((st[k] if j in (0, k + 1) else 0 * st[k])[None], x[None])[0]
                   for st in labelled for j, x in enumerate((st.sum(0), st[0], st[1]))]
        torch.manual_seed(k)                                         # the detector's own initial weights
        untrained = vad.CRNN(channels=8, hidden=16).eval()
        pairs = list(zip(examples, targets))
        assert _bce(model, pairs) < 0.7 * _bce(untrained, pairs)
        with torch.no_grad():                                          # source k alone vs the other alone
            own = torch.cat([model(st[k][None].float()) for st in labelled]).mean()
            other = torch.cat([model(st[1 - k][None].float()) for st in labelled]).mean()
        assert float(own) > 0.5 > float(other), (k, float(own), float(other))
    clean = torch.tensor(ss.split("test")[0].stems())
    bleeding = [torch.tensor(s.stems()) for s in ss.split("karaoke")]
    tracks = torch.stack([clean] + bleeding)                           # (songs, 2, samples)
    poor = vad.poor_frames(*tiny_vads, tracks[:, 0], tracks[:, 1], threshold=0.5)
    assert float(poor[0]) < float(poor[1:].min())
    assert vad.keep_best(poor.numpy(), 1 / 3).tolist() == [0]
