"""Tests of AutoVC and CycleAutoVC (voicebook.models.autovc, voicebook.models.cycle_autovc), chapter 1."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from voicebook.models.autovc import AutoVC, ContentEncoder, content_codes, convert, downsample, upsample
from voicebook.models.cycle_autovc import (CycleAutoVC, MelCrops, autovc_loss_fn, cycle_loss_fn, fine_tune,
                                           prepare_mels, restore_log_mel, train_autovc, train_two_phase)
from voicebook.models.speaker_encoder import SpeakerEncoder
from voicebook.train import seed_everything

SPEAKERS = ["en-us-f2", "en-us-m2", "en-gb-f2", "en-gb-m3"]
EMB = 16


def small(dim_neck=4, freq=4, seed=0, width=1 / 32):
    seed_everything(seed)
    return AutoVC(dim_neck, freq, dim_emb=EMB, width=width)


def unit(*shape, seed=0):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ---------------------------------------------------------------- the architecture (Fig. 7)


@pytest.mark.parametrize("dim_neck,freq", [(1, 1), (4, 2), (8, 4), (16, 16), (32, 32)])
def test_shapes_and_code_size(dim_neck, freq):
    model = small(dim_neck, freq)
    mel, emb = torch.randn(2, 64, 80), unit(2, EMB)
    mel_out, mel_postnet, codes = model(mel, emb)
    assert mel_out.shape == mel_postnet.shape == (2, 64, 80)
    assert codes.shape == (2, 64 // freq, 2 * dim_neck)
    assert codes[0].numel() == model.code_size(64) == 2 * dim_neck * 64 // freq
    assert torch.equal(model(mel, emb, codes_only=True), codes)


def test_paper_sizes():
    """AutoVC's Generator(32, 256, 512, 32): 512-channel convs, LSTMs of 512 and 1024, 5-layer post-net."""
    model = AutoVC()
    enc, dec, post = model.encoder, model.decoder, model.postnet
    assert [c[0].out_channels for c in enc.convs] == [512] * 3 and enc.convs[0][0].in_channels == 80 + 256
    assert enc.blstm.hidden_size == 32 and enc.blstm.bidirectional and enc.blstm.num_layers == 2
    assert dec.lstm1.input_size == 2 * 32 + 256 and dec.lstm1.hidden_size == 512
    assert [c[0].out_channels for c in dec.convs] == [512] * 3
    assert dec.lstm2.hidden_size == 1024 and dec.lstm2.num_layers == 2 and dec.proj.out_features == 80
    assert [c[0].out_channels for c in post.convs] == [512] * 4 + [80]
    assert all(c[0].kernel_size == (5,) for c in [*enc.convs, *dec.convs, *post.convs])


def test_downsample_picks_the_right_time_steps():
    """Forward direction at t = freq-1, 2 freq-1, ...; backward at t = 0, freq, ...; by hand."""
    frames, freq = 6, 3
    t = torch.arange(frames, dtype=torch.float32)
    out = torch.stack([t, 100 + t], dim=-1)[None]  # (1, 6, 2): forward = t, backward = 100 + t
    assert downsample(out, 1, freq).tolist() == [[[2.0, 100.0], [5.0, 103.0]]]
    assert upsample(torch.tensor([[[1.0], [2.0]]]), 3).flatten().tolist() == [1, 1, 1, 2, 2, 2]


def test_content_encoder_down_samples_its_blstm_output():
    enc = ContentEncoder(dim_neck=3, freq=4, dim_emb=EMB, channels=8)
    seen = {}
    enc.blstm.register_forward_hook(lambda mod, inp, out: seen.update(out=out[0]))
    codes = enc(torch.randn(2, 12, 80), unit(2, EMB))
    full = seen["out"]  # (2, 12, 6)
    expected = torch.cat([full[:, [3, 7, 11], :3], full[:, [0, 4, 8], 3:]], dim=-1)
    assert torch.equal(codes, expected)


def test_reconstruction_is_conversion_to_oneself_and_bad_shapes_raise():
    model = small().eval()
    mel, emb = torch.randn(1, 16, 80), unit(1, EMB)
    with torch.no_grad():
        assert torch.equal(model(mel, emb)[1], model(mel, emb, emb)[1])
        _, post, _, recoded = model(mel, emb, recode=True)  # E_c of the output, for L_cont
        assert torch.equal(recoded, model(post, emb, codes_only=True))
    with pytest.raises(ValueError, match="multiple of freq=4"):
        model(torch.randn(1, 10, 80), emb)
    with pytest.raises(ValueError, match="emb_tgt"):
        model(mel, emb, unit(1, EMB + 1))
    with pytest.raises(ValueError, match="n_mels|80"):
        model(torch.randn(1, 16, 40), emb)


def test_convert_and_content_codes_pad_and_trim():
    model = small(dim_neck=4, freq=8)
    model.train()
    mel, a, b = torch.randn(100, 80), unit(EMB, seed=1), unit(EMB, seed=2)
    out = convert(model, mel, a, b)
    assert out.shape == (100, 80) and model.training  # eval inside, mode restored
    assert torch.equal(out, convert(model, mel, a, b))  # eval mode: batch norm's running statistics
    assert convert(model, mel[None].repeat(3, 1, 1), a, b).shape == (3, 100, 80)
    assert content_codes(model, mel, a).shape == (13, 8)  # ceil(100 / 8) blocks of 2 x 4
    with pytest.raises(ValueError, match="band-major"):
        convert(model, mel.T, a, b)
    with pytest.raises(ValueError, match="no frames"):
        convert(model, torch.zeros(0, 80), a, b)
    with pytest.raises(ValueError, match="NaN"):
        convert(model, torch.full((20, 80), float("nan")), a, b)


def test_gradients_reach_every_parameter():
    model = small()
    loss, parts = autovc_loss_fn(model, (torch.randn(2, 32, 80), unit(2, EMB)))
    loss.backward()
    assert set(parts) == {"recon", "recon_postnet", "cont"}
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


# ---------------------------------------------------------------- CycleAutoVC (section 4.3)


def cycle_model(seed=0):
    seed_everything(seed)
    return CycleAutoVC(small(seed=seed), SpeakerEncoder(hidden=24, dim_emb=EMB, layers=2))


def test_cycle_gradients_and_frozen_speaker_encoder():
    encoder = SpeakerEncoder(hidden=24, dim_emb=EMB, layers=2)
    model = CycleAutoVC(small(), encoder)
    model.train()
    assert model.speaker_encoder.training and model.autovc.training   # cuDNN's LSTM backward needs train mode
    probe = torch.randn(2, 32, 80)
    trained_mode = model.speaker_encoder(probe)
    assert torch.equal(trained_mode, model.eval().speaker_encoder(probe))   # the mode changes nothing numerically
    model.train()
    batch = (torch.randn(2, 32, 80), unit(2, EMB, seed=1), unit(2, EMB, seed=2))
    loss, parts = cycle_loss_fn(model, batch, lambda_encod=1.0)
    loss.backward()
    assert set(parts) == {"cycle", "encod", "style"}
    assert all(p.grad is None for p in model.speaker_encoder.parameters())
    assert all(p.grad is not None for p in model.autovc.parameters())
    assert all(p.requires_grad for p in encoder.parameters())  # the caller's encoder is left alone


def test_style_loss_alone_trains_the_converter_through_the_frozen_encoder():
    model = cycle_model()
    mel, a, b = torch.randn(2, 32, 80), unit(2, EMB, seed=1), unit(2, EMB, seed=2)
    out = model(mel, a, b)
    from voicebook import losses
    losses.style_loss(out.emb_converted, b).backward()
    dec = model.autovc.decoder.proj.weight.grad
    assert dec is not None and dec.abs().sum() > 0
    assert all(p.grad is None for p in model.speaker_encoder.parameters())
    no_style = model(mel, a, b, style=False)
    assert no_style.emb_converted is None
    assert no_style.converted.shape == no_style.back.shape == (2, 32, 80)


# ---------------------------------------------------------------- data


def test_mel_crops_are_deterministic_and_targets_differ():
    mels = [torch.randn(n, 80) for n in (40, 70, 20, 90)]
    speakers = ["a", "a", "b", "c"]
    emb = {s: unit(EMB, seed=k) for k, s in enumerate("abc")}
    ds = MelCrops(mels, speakers, emb, frames=32, seed=3, with_target=True)
    assert len(ds) == 400
    x, e_src, e_tgt = ds[5]
    assert x.shape == (32, 80) and torch.equal(e_src, emb["a"]) and not torch.equal(e_tgt, e_src)
    again = MelCrops(mels, speakers, emb, frames=32, seed=3, with_target=True)[5]
    assert all(torch.equal(u, v) for u, v in zip(ds[5], again))
    assert len(MelCrops(mels, speakers, emb, frames=32)[0]) == 2
    with pytest.raises(ValueError, match="no embedding"):
        MelCrops(mels, ["a", "a", "b", "d"], emb)
    with pytest.raises(ValueError, match="2 speakers"):
        MelCrops(mels[:2], ["a", "a"], emb, with_target=True)


def test_prepare_mels_round_trip():
    feats = {"u1": torch.randn(80, 50) * 3 - 4, "u2": torch.randn(80, 30) - 6}
    mels, stats = prepare_mels(feats)
    assert mels["u1"].shape == (50, 80)
    both = torch.cat([mels["u1"], mels["u2"]])
    assert torch.allclose(both.mean(0), torch.zeros(80), atol=1e-5)
    assert torch.allclose(restore_log_mel(mels["u2"], stats), feats["u2"], atol=1e-5)


# ---------------------------------------------------------------- training on the smoke corpus


@pytest.fixture(scope="module")
def smoke_crops():
    """(AutoVC crops, cycle crops) of four speakers of the smoke corpus; embeddings are fixed
    random unit vectors per speaker (the speaker encoder is tested on its own)."""
    from voicebook.data import load_corpus
    from voicebook.data.features import AUTOVC_MEL, log_mels

    corpus = load_corpus(size="smoke").select(speaker=SPEAKERS, split="train")
    mels, _ = prepare_mels(log_mels(corpus.items, **AUTOVC_MEL, progress=False))
    emb = {s: unit(EMB, seed=k) for k, s in enumerate(SPEAKERS)}
    return (MelCrops.from_items(corpus.items, mels, emb, frames=64, seed=0, length=10000),
            MelCrops.from_items(corpus.items, mels, emb, frames=64, seed=0, with_target=True))


def held_out_loss(model, ds, n=8):
    """autovc_loss_fn on fixed crops (items 10000.., not seen in training), in eval mode."""
    batch = [torch.stack(x) for x in zip(*(ds[10000 + i] for i in range(n)))]
    model.eval()
    with torch.no_grad():
        loss = autovc_loss_fn(model, batch)[0].item()
    model.train()
    return loss


def test_autovc_loss_falls_on_smoke_mels(smoke_crops):
    """60 steps of a small AutoVC (width 1/8, neck 16, freq 4) with fit: the loss on held-out crops
    falls by a fifth or more (measured: 2.60 -> 1.79)."""
    crops, _ = smoke_crops
    model = small(dim_neck=16, freq=4, width=1 / 8)
    before = held_out_loss(model, crops)
    history = train_autovc(model, crops, steps=60, batch_size=4, lr=3e-3, log_every=20, progress=False, device="cpu")
    after = held_out_loss(model, crops)
    assert after < 0.8 * before, (before, after, history.train)


def test_two_phase_schedule_and_fine_tuning(smoke_crops, tmp_path):
    """Section 5.2's schedule: the style loss only in phase 2; it resumes from its checkpoints.
    Section 4.4's fine-tuning trains a copy and leaves the pre-trained AutoVC untouched."""
    _, cycle = smoke_crops
    kw = dict(batch_size=2, lr=1e-3, log_every=2, progress=False, device="cpu")
    model = cycle_model()
    h1, h2 = train_two_phase(model, cycle, cycle, steps=(3, 2), ckpt_dir=tmp_path, **kw)
    assert "style" not in h1.train[-1] and "style" in h2.train[-1]
    assert (tmp_path / "phase1" / "last.pt").exists() and (tmp_path / "phase2" / "last.pt").exists()
    resumed = cycle_model(seed=1)
    train_two_phase(resumed, cycle, cycle, steps=(3, 2), ckpt_dir=tmp_path, **kw)  # nothing left to do
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), resumed.state_dict().values()))

    pretrained = small()
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    tuned, h = fine_tune(pretrained, model.speaker_encoder, cycle, steps=2, use_style=False, **kw)
    assert all(torch.equal(before[k], v) for k, v in pretrained.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in tuned.autovc.state_dict().items())
    assert "style" not in h.train[-1]


DDP_SCRIPT = textwrap.dedent("""
    import os, torch
    from voicebook.models.autovc import AutoVC
    from voicebook.models.cycle_autovc import CycleAutoVC, MelCrops, train_autovc, train_two_phase
    from voicebook.models.speaker_encoder import GE2EBatches, SpeakerEncoder, ge2e_loss_fn
    from voicebook.train import fit, seed_everything
    g = torch.Generator().manual_seed(0)
    mels = [torch.randn(int(n), 80, generator=g) for n in torch.randint(40, 90, (12,), generator=g)]
    spk = [f"s{i % 4}" for i in range(12)]
    emb = {s: torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0) for s in sorted(set(spk))}
    kw = dict(batch_size=2, progress=False, device="cpu")
    seed_everything(0)
    train_autovc(AutoVC(4, 4, width=1 / 32, dim_emb=16), MelCrops(mels, spk, emb, frames=32), steps=3, **kw)
    cycle = MelCrops(mels, spk, emb, frames=32, with_target=True)
    model = CycleAutoVC(AutoVC(4, 4, width=1 / 32, dim_emb=16), SpeakerEncoder(hidden=24, dim_emb=16, layers=2))
    train_two_phase(model, cycle, cycle, steps=(2, 2), **kw)
    by = {s: [m for m, t in zip(mels, spk) if t == s] for s in emb}
    enc = SpeakerEncoder(hidden=24, dim_emb=16, layers=2)
    fit(enc, GE2EBatches(by, speakers=3, utterances=2, frames=20, length=20), ge2e_loss_fn, steps=2, batch_size=1,
        progress=False, device="cpu")
    torch.save(dict(model.named_parameters()), os.environ["OUT"] + os.environ["RANK"])
""")


@pytest.mark.slow
def test_steps_run_under_torchrun(tmp_path):
    """The AutoVC, CycleAutoVC and GE2E steps train through DistributedDataParallel (2 CPU
    processes): each computes its loss in one call of the wrapper, so buffers (batch norm) are
    not overwritten between forward passes; the ranks end with equal parameters (batch-norm
    statistics stay per rank)."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(tmp_path / "rank")}
    subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script)], check=True,
                   capture_output=True, text=True, timeout=180, env=env)
    ranks = [torch.load(tmp_path / f"rank{r}", weights_only=True) for r in (0, 1)]
    assert len(ranks[0]) > 20 and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])


def test_the_cycle_models_frozen_encoder_follows_its_mode_from_the_start():
    """cuDNN cannot backpropagate through an LSTM in eval mode: the style loss needs the frozen
    encoder in training mode whenever the model is (it has no dropout or batch norm)."""
    model = cycle_model()
    assert model.training and model.speaker_encoder.training
    assert not any(p.requires_grad for p in model.speaker_encoder.parameters())
    assert not model.eval().speaker_encoder.training
