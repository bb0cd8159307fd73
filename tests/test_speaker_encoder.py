"""Tests of the GE2E speaker encoder (voicebook.models.speaker_encoder), chapter 1 section 3.2."""

import numpy as np
import pytest
import torch

from voicebook.models.speaker_encoder import (GE2EBatches, SpeakerEncoder, embed_utterance, ge2e_loss_fn,
                                              random_crop, speaker_embeddings)
from voicebook.train import fit, seed_everything

SPEAKERS = ["en-us-f2", "en-us-m2", "en-gb-f2", "en-gb-m3"]  # two women, two men, two accents


def tiny(seed=0, **kw):
    seed_everything(seed)
    return SpeakerEncoder(**{"hidden": 32, "dim_emb": 16, "layers": 2, **kw})


def test_shapes_and_unit_norm():
    enc = tiny()
    e = enc(torch.randn(5, 30, 80))
    assert e.shape == (5, 16)
    assert torch.allclose(e.norm(dim=-1), torch.ones(5), atol=1e-5)
    paper = SpeakerEncoder()  # the paper's sizes: 3 x 768 LSTM, 256-d
    assert paper.lstm.hidden_size == 768 and paper.lstm.num_layers == 3 and paper.proj.out_features == 256
    with pytest.raises(ValueError, match=r"\(batch, frames, 80\)"):
        enc(torch.randn(5, 80))


def test_embed_utterance_windows():
    enc = tiny()
    mel = torch.randn(90, 80)
    # shorter than the window: one window, the model's own embedding of the whole utterance
    with torch.no_grad():
        whole = enc.eval()(mel[None])[0]
    assert torch.allclose(embed_utterance(enc, mel, window=100), whole, atol=1e-6)
    # 90 frames, window 40, hop 20: windows at 0, 20, 40 and 50 (the last aligned to the end)
    with torch.no_grad():
        parts = enc(torch.stack([mel[s:s + 40] for s in (0, 20, 40, 50)]))
    expected = torch.nn.functional.normalize(parts.mean(0), dim=0)
    assert torch.allclose(embed_utterance(enc, mel, window=40), expected, atol=1e-6)
    enc.train()
    embed_utterance(enc, mel)
    assert enc.training  # the mode is restored


def test_embed_utterance_bad_inputs():
    enc = tiny()
    with pytest.raises(ValueError, match="band-major"):
        embed_utterance(enc, torch.randn(80, 120))
    with pytest.raises(ValueError, match="no frames"):
        embed_utterance(enc, torch.randn(0, 80))
    bad = torch.randn(50, 80)
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        embed_utterance(enc, bad)
    with pytest.raises(ValueError, match="window must be at least 1 frame, got 0"):
        embed_utterance(enc, torch.randn(50, 80), window=0)               # was a ZeroDivisionError


def test_random_crop_and_padding():
    rng = np.random.default_rng(0)
    mel = torch.arange(10.0)[:, None].repeat(1, 3)
    crop = random_crop(mel, 4, rng)
    assert crop.shape == (4, 3) and torch.equal(crop[1:] - crop[:-1], torch.ones(3, 3))  # contiguous frames
    short = torch.tensor([[1.0, 5.0], [2.0, 4.0]])
    padded = random_crop(short, 5, rng)
    assert torch.equal(padded[:2], short) and torch.equal(padded[2:], torch.tensor([[1.0, 4.0]] * 3))


def test_ge2e_batches_are_a_function_of_seed_and_index():
    rng = np.random.default_rng(1)
    mels = {f"s{k}": [torch.randn(int(rng.integers(20, 60)), 80) + 10 * k for _ in range(k + 1)] for k in range(5)}
    ds = GE2EBatches(mels, speakers=3, utterances=4, frames=25, length=10, seed=7)
    a, b = ds[3], GE2EBatches(mels, speakers=3, utterances=4, frames=25, length=10, seed=7)[3]
    assert a.shape == (3, 4, 25, 80) and torch.equal(a, b)
    assert not torch.equal(ds[3], ds[4])
    means = a.mean(dim=(1, 2, 3)).div(10).round()  # speaker k's mels sit around 10 k
    assert len(set(means.tolist())) == 3  # three distinct speakers
    with pytest.raises(ValueError, match="at least 2 utterances"):
        GE2EBatches(mels, utterances=1)


@pytest.fixture(scope="module")
def smoke_mels():
    """Normalised mels of four speakers of the smoke corpus: (train by speaker, test by speaker)."""
    from voicebook.data import load_corpus
    from voicebook.data.features import AUTOVC_MEL, log_mels
    from voicebook.models.cycle_autovc import group_by_speaker, prepare_mels

    corpus = load_corpus(size="smoke").select(speaker=SPEAKERS)
    feats = log_mels(corpus.items, **AUTOVC_MEL, progress=False)
    train, test = corpus.split("train"), corpus.split("test")
    mels, stats = prepare_mels({u.id: feats[u.id] for u in train})
    test_mels, _ = prepare_mels({u.id: feats[u.id] for u in test}, stats)
    return group_by_speaker(train, mels), group_by_speaker(test, test_mels)


def same_and_different(enc, by_speaker):
    """Mean cosine similarity of held-out utterance d-vectors: same speaker, different speakers."""
    emb = {s: torch.stack([embed_utterance(enc, m, window=64) for m in ms]) for s, ms in by_speaker.items()}
    same, diff = [], []
    for a in emb:
        s = emb[a] @ emb[a].T
        same.append(s[~torch.eye(len(s), dtype=torch.bool)].mean())
        diff += [(emb[a] @ emb[b].T).mean() for b in emb if b != a]
    return torch.stack(same).mean().item(), torch.stack(diff).mean().item()


def test_ge2e_training_separates_speakers(smoke_mels):
    """A small encoder trained 30 steps with GE2E on 4 speakers (6 utterances each): the loss
    falls, and on held-out sentences same-speaker d-vectors end much closer than different
    speakers' (measured over seeds 0-3: 0.91-0.99 vs -0.28-0.05; untrained: 0.998 vs 0.997)."""
    train, test = smoke_mels
    enc = tiny(hidden=64, dim_emb=32, layers=3)
    same0, diff0 = same_and_different(enc, test)
    batches = GE2EBatches(train, speakers=4, utterances=4, frames=48, length=1000, seed=0)
    h = fit(enc, batches, ge2e_loss_fn, steps=30, batch_size=1, lr=3e-3, grad_clip=3.0, log_every=5,
            progress=False, device="cpu")
    first, last = h.train[0]["loss"], h.train[-1]["loss"]
    assert last < 0.6 * first, [r["loss"] for r in h.train]
    same, diff = same_and_different(enc, test)
    assert abs(same0 - diff0) < 0.05  # untrained: everything looks alike
    assert same > diff + 0.5, (same, diff)
    spk = speaker_embeddings(enc, test, window=64)
    assert set(spk) == set(SPEAKERS) and all(torch.isclose(v.norm(), torch.tensor(1.0)) for v in spk.values())
