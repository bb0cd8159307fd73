"""voicebook.separation: the self-training steps of Wang et al. section 2.1, on tiny songs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voicebook import separation as SEP
from voicebook.data.augment import Augment
from voicebook.models.poconet import PoCoNet


def _tiny_net():
    torch.manual_seed(0)
    return PoCoNet(levels=2, base_ch=4, max_ch=8)


def test_teacher_trains_labels_and_is_scored(tiny_songs):
    _, ss = tiny_songs
    labelled = [s.stems() for s in ss.split("labelled")]
    net = _tiny_net()
    hist = SEP.train_separator(net, labelled, seconds=1.0, steps=30, batch_size=2, lr=3e-3, progress=False,
                               device="cpu", log_every=10, aug=Augment(p_shift=0))
    assert hist.train[-1]["loss"] < hist.train[0]["loss"]
    karaoke = [s.stems() for s in ss.split("karaoke")]
    pseudo = SEP.pseudo_label(net, karaoke, chunk_s=2.0)
    assert len(pseudo) == 2 and all(p.shape == k.shape and np.isfinite(p).all() for p, k in zip(pseudo, karaoke))
    scores = SEP.evaluate(net, [s.stems() for s in ss.split("test")])
    assert set(scores) == {"vocals", "accompaniment"} and all(math.isfinite(v) for v in scores.values())


def test_filter_keeps_the_cleanest_songs(tiny_songs, tiny_vads):
    """Detectors from ``SEP.voice_activity_detectors`` (conftest.tiny_vads) keep the clean songs
    of a candidate list and drop the bleeding karaoke songs at top 50 %."""
    _, ss = tiny_songs
    # clean stems (the two labelled songs) first, then the two bleeding karaoke songs; with two
    # tiny songs to learn from, the detectors do not generalise well to new singers (test_vad.py
    # checks an unseen clean singer against karaoke), so the clean songs here are the seen ones
    candidates = [s.stems() for s in ss.split("labelled")] + [s.stems() for s in ss.split("karaoke")]
    kept, fractions = SEP.filter_pseudo_labels(tiny_vads, candidates, top=0.5, threshold=0.5)
    assert kept == [0, 1] and fractions[:2].max() < fractions[2:].min()


def test_segments_cut_and_pad_as_section_3_2():
    st = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    parts = SEP.segments(st, sr=10, seconds=1.0)                  # 10-sample pieces
    assert [p.shape for p in parts] == [(2, 10)] * 3
    np.testing.assert_array_equal(np.concatenate(parts, axis=1)[:, :25], st)
    assert not parts[-1][:, 5:].any()                             # zero-padded tail
    with pytest.raises(ValueError, match="expected \\(2, samples\\)"):
        SEP.segments(np.zeros(10), sr=10)
