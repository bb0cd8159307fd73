"""Every chapter's training functions under bf16 autocast, on the CPU (``fit(..., amp="bf16")``).

On a GPU ``fit``'s default ``amp="auto"`` trains in bf16 autocast; here CPU autocast runs the
same path for 2-3 steps on tiny data, so a dtype error (a bf16 tensor reaching an op without a
bf16 kernel, a loss mixing dtypes, a dtype-mismatched in-place op) shows up without a GPU.

Each training run goes through :class:`Recorder`, a stand-in for ``fit`` patched into the
module that calls it (so it also reaches the functions that build their model inside, or that
take no ``amp`` argument: it adds ``amp="bf16"`` where the caller gave none). It records, per
run, the parameters before training and the dtypes the model's layers computed in, and every
test checks the same things: layers really computed in bfloat16, the logged losses are finite,
the trainable parameters changed, every parameter and buffer is still float32 (autocast
keeps float32 master weights), and the recurrent layers computed in float32.

Two CPU/CUDA differences are made visible (fixture ``rec``): an ``nn.LSTM`` / ``nn.GRU`` run
under autocast fails the test (CUDA would run it in float16, see :mod:`voicebook.fp32`), and
``torch.stft`` refuses bf16 input, which the CPU's FFT takes but CUDA's does not. Speech2Vid's
``generate_video`` has its own CUDA-only autocast (inference, not training) and is not run here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from voicebook import judges as J
from voicebook import separation as SEP
from voicebook import talking_faces as TF
from voicebook import train
from voicebook.data.augment import Augment
from voicebook.models import cycle_autovc as CA
from voicebook.models import mlms as M
from voicebook.models import softgan as S
from voicebook.models.autovc import AutoVC
from voicebook.models.poconet import PoCoNet
from voicebook.models.speaker_encoder import GE2EBatches, SpeakerEncoder, ge2e_loss_fn
from voicebook.models.speech2vid import Deblur, Speech2Vid, deblur_loss

KW = dict(device="cpu", progress=False, log_every=1)
REAL_FIT = train.fit
LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.LSTM, nn.GRU)


class Recorder:
    """``fit`` with ``amp="bf16"`` (added if the caller passed no ``amp``), recording each run as
    ``(model, parameters before, history, dtypes the layers' outputs had)``."""

    def __init__(self):
        self.runs = []

    def __call__(self, model, dataset, *args, **kw):
        kw.setdefault("amp", "bf16")
        assert kw["amp"] == "bf16", kw["amp"]
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        seen: set = set()

        def hook(module, inputs, out):
            out = out[0] if isinstance(out, tuple) else out
            if isinstance(out, torch.Tensor) and module.training:
                seen.add(out.dtype)

        def autocast_on(module, inputs):
            if module.training:
                seen.add("autocast bf16" if torch.is_autocast_enabled("cpu")
                         and torch.get_autocast_dtype("cpu") == torch.bfloat16 else "no autocast")

        hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, LAYERS)]
        hooks.append(model.register_forward_pre_hook(autocast_on))
        try:
            history = REAL_FIT(model, dataset, *args, **kw)
        finally:
            for h in hooks:
                h.remove()
        self.runs.append((model, before, history, seen))
        return history

    def check(self, runs: int = 1, bf16_layers: bool = True):
        """``bf16_layers``: some layer module computed in bf16 (false for a model whose only
        layer modules are RNNs, float32 by design)."""
        assert len(self.runs) == runs
        for model, before, history, seen in self.runs:
            assert "no autocast" not in seen, seen                    # every training forward ...
            assert "autocast bf16" in seen or torch.bfloat16 in seen, seen  # ... under bf16 autocast
            assert torch.bfloat16 in seen or not bf16_layers, seen
            assert history.train and all(math.isfinite(v) for row in history.train for v in row.values())
            params = dict(model.named_parameters())
            assert all(p.dtype == torch.float32 for p in params.values()), {p.dtype for p in params.values()}
            assert all(b.dtype == torch.float32 for b in model.buffers() if b.is_floating_point())
            trainable = [n for n, p in params.items() if p.requires_grad]
            unchanged = [n for n in trainable if torch.equal(before[n], params[n])]
            assert trainable and len(unchanged) <= len(trainable) // 10, unchanged   # (measured: none)


_RNN_FORWARD = {cls: cls.forward for cls in (nn.LSTM, nn.GRU)}


def _rnn_outside_autocast(cls):
    """``cls.forward`` that refuses to run under autocast. Under CUDA autocast cuDNN runs an RNN
    in float16 whatever autocast's dtype (``AutocastRNN.cpp`` casts to ``kHalf``), without the
    GradScaler bf16 training goes without: every RNN of the book must run through
    :func:`voicebook.fp32.fp32_rnn` (autocast off, float32)."""
    def forward(self, input, hx=None):
        if torch.is_autocast_enabled("cpu"):
            raise AssertionError(f"{cls.__name__} ran under autocast (float16 on CUDA): call it through fp32_rnn")
        data = input.data if isinstance(input, nn.utils.rnn.PackedSequence) else input
        assert data.dtype == torch.float32, data.dtype
        return _RNN_FORWARD[cls](self, input, hx)
    return forward


_STFT = torch.stft


def _stft_of_fp32(input, *args, **kw):
    """``torch.stft`` that refuses half-precision input, as CUDA's FFT does (CPU's accepts it)."""
    if input.dtype in (torch.bfloat16, torch.float16):
        raise TypeError(f"torch.stft got a {input.dtype} tensor: cuFFT has no bfloat16 transform")
    return _STFT(input, *args, **kw)


@pytest.fixture()
def rec(monkeypatch):
    """A :class:`Recorder` in place of ``fit`` wherever the library calls it; the CPU's LSTM and
    STFT made to behave as CUDA's under autocast."""
    r = Recorder()
    for module in (train, CA, M, SEP):
        monkeypatch.setattr(module, "fit", r)
    for cls in (nn.LSTM, nn.GRU):
        monkeypatch.setattr(cls, "forward", _rnn_outside_autocast(cls))
    monkeypatch.setattr(torch, "stft", _stft_of_fp32)
    return r


# ----------------------------------------------------------------------------- chapter 1

EMB = 16


def _mels(n=12, speakers=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mels = [torch.randn(int(k), 80, generator=g) for k in torch.randint(40, 90, (n,), generator=g)]
    spk = [f"s{i % speakers}" for i in range(n)]
    emb = {s: nn.functional.normalize(torch.randn(EMB, generator=g), dim=0) for s in sorted(set(spk))}
    return mels, spk, emb


def _autovc():
    torch.manual_seed(0)
    return AutoVC(4, 4, width=1 / 32, dim_emb=EMB)


def _encoder():
    torch.manual_seed(1)
    return SpeakerEncoder(hidden=24, dim_emb=EMB, layers=2)


def test_autovc(rec):
    mels, spk, emb = _mels()
    CA.train_autovc(_autovc(), CA.MelCrops(mels, spk, emb, frames=32), steps=3, amp="bf16", **KW)
    rec.check()


def test_cycle_autovc_two_phases_with_style_and_fine_tuning(rec):
    mels, spk, emb = _mels()
    cycle = CA.MelCrops(mels, spk, emb, frames=32, with_target=True)
    h1, h2 = CA.train_two_phase(CA.CycleAutoVC(_autovc(), _encoder()), cycle, cycle, steps=(2, 2), batch_size=2,
                                style=True, amp="bf16", **KW)
    assert "style" not in h1.train[-1] and "style" in h2.train[-1]
    model, h = CA.fine_tune(_autovc(), _encoder(), cycle, steps=2, batch_size=2, use_style=True, amp="bf16", **KW)
    assert "style" in h.train[-1]
    rec.check(runs=3)
    assert all(p.requires_grad is False for p in model.speaker_encoder.parameters())
    for m, before, _, _ in rec.runs:       # the frozen style encoder is left as it was
        assert all(torch.equal(before[f"speaker_encoder.{n}"], p) for n, p in m.speaker_encoder.named_parameters())


def test_ge2e_speaker_encoder(rec):
    mels, spk, _ = _mels()
    by = {s: [m for m, t in zip(mels, spk) if t == s] for s in sorted(set(spk))}
    rec(_encoder(), GE2EBatches(by, speakers=3, utterances=2, frames=20, length=20), ge2e_loss_fn, steps=3,
        batch_size=1, **KW)
    rec.check()


def _judge_corpus():
    """Six utterances of three speakers with espeak-like phone timings, and their log-mels."""
    g = torch.Generator().manual_seed(0)
    utts, mels = [], {}
    for i in range(6):
        phones = (("_:", 0.0, 0.1), ("'a", 0.1, 0.3), ("t", 0.3, 0.4), ("b", 0.4, 0.6), ("_:", 0.6, 0.8))
        u = SimpleNamespace(id=f"u{i}", speaker="abc"[i % 3], split="train", language="xx", phonemes=phones)
        utts.append(u)
        mels[u.id] = torch.randn(80, 50 + 5 * i, generator=g) - 6.0
    return utts, mels


def test_speaker_judge(rec):
    utts, mels = _judge_corpus()
    J.train_speaker_judge(utts, mels=mels, steps=3, batch_size=4, crop_frames=32, channels=16, embed_dim=8,
                          device="cpu", progress=False)
    rec.check()


@pytest.mark.parametrize("rnn_layers", [0, 1])
def test_ctc_content_judge(rec, rnn_layers):
    utts, mels = _judge_corpus()
    J.train_content_judge(utts, mels=mels, steps=3, batch_size=3, channels=16, conv_layers=2, rnn_layers=rnn_layers,
                          hidden=8, device="cpu", progress=False)
    rec.check()


# ----------------------------------------------------------------------------- chapter 2

@pytest.mark.parametrize("system", list(S.SYSTEMS))
def test_softgan_cyclegans(rec, system):
    """Soft and hard labels, with and without the energy constraint, the bottleneck generator."""
    g = torch.Generator().manual_seed(0)
    by = {"a": [torch.randn(32, 150, generator=g)], "b": [torch.randn(32, 140, generator=g)]}
    S.train_cyclegans(S.SYSTEMS[system], S.EnvelopeCrops(by, [("a", "b", 0), ("a", "b", 1)], length=20), steps=2,
                      width=1 / 16, band_scale=2.0, device="cpu", progress=False, log_every=1)
    rec.check()
    model, before, history, _ = rec.runs[0]
    for player in ("g_xy.", "g_yx.", "d_x.", "d_y."):      # both generators and discriminators learned
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n.startswith(player))
    assert {"D", "G", "energy"} <= set(history.train[-1])


# ----------------------------------------------------------------------------- chapter 3

N_IN, N_OUT, LANGS, SPKS = 9, 5, ["aa", "bb"], ["aa-f", "bb-f", "bb-m"]


def _mlms_examples(n=6, seed=0, language=None, speaker=None):
    g = torch.Generator().manual_seed(seed)
    return [M.Example(f"u{i}", torch.randn(20 + 3 * i, N_IN, generator=g), torch.randn(20 + 3 * i, N_OUT, generator=g),
                      language or SPKS[i % 3][:2], speaker or SPKS[i % 3]) for i in range(n)]


def _mlms():
    torch.manual_seed(0)
    return M.MLMS(N_IN, LANGS, SPKS, len(LANGS), relu=6, cells=5, proj=4, layers=2, n_out=N_OUT)


def test_mlms_train_and_adapt(rec):
    exs = _mlms_examples()
    norm = M.Normaliser.fit(exs)
    model = _mlms()
    M.train(model, exs, norm, steps=3, batch_size=4, frames=16, amp="bf16", **KW)
    new = M.extend(model, "cc", "cc-f", seed=1)
    parts = ("code", "mean", "speaker")                           # v2
    M.adapt(new, parts, _mlms_examples(4, seed=1, language="cc", speaker="cc-f"), norm, steps=3, batch_size=2,
            frames=16, amp="bf16", **KW)
    rec.check(runs=2, bf16_layers=False)        # its layers: one LSTM (fp32) and einsums
    allowed = M._masks(new, parts, "cc", "cc-f")
    _, before, _, _ = rec.runs[1]
    for name, p in new.named_parameters():                         # only the adapted entries moved
        outside = allowed[name] == 0 if name in allowed else torch.ones_like(p, dtype=torch.bool)
        assert torch.equal(before[name][outside], p.detach()[outside]), name


# ----------------------------------------------------------------------------- chapter 4

def _stems(n=2, seconds=1.5, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return [np.stack([0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) * (t % 0.5 < 0.3),
                      0.1 * rng.standard_normal(len(t))]).astype(np.float32) for _ in range(n)]


def test_poconet_separator(rec):
    torch.manual_seed(0)
    SEP.train_separator(PoCoNet(levels=2, base_ch=4, max_ch=8), _stems(), seconds=1.0, steps=2, batch_size=2,
                        lr=3e-3, aug=Augment(p_shift=0), amp="bf16", **KW)
    rec.check()


def test_voice_activity_detectors(rec):
    SEP.voice_activity_detectors(_stems(), steps=2, seconds=1.0, batch_size=2, channels=4, hidden=8, amp="bf16", **KW)
    rec.check(runs=2)


# ----------------------------------------------------------------------------- chapter 5

W = 0.125


def _clips(identities=3, frames=16, seed=0):
    rng = np.random.default_rng(seed)
    return [TF.TalkingClip(id=f"c{k}", identity=f"p{k}", split="train",
                           frames=rng.integers(0, 256, (frames, 112, 112, 3), dtype=np.uint8),
                           windows=torch.from_numpy(rng.standard_normal((frames, 1, 12, 35)).astype(np.float32)),
                           audio=np.zeros(16000, np.float32), sr=16000, points=np.zeros((frames, 3, 2)),
                           matrices=np.zeros((frames, 2, 3)), opening=np.zeros(frames))
            for k in range(identities)]


@pytest.mark.parametrize("n_stills, skips", [(1, False), (5, True)])
def test_speech2vid(rec, n_stills, skips):
    torch.manual_seed(0)
    rec(Speech2Vid(n_stills=n_stills, skips=skips, width=W), TF.TalkingFaceFrames(_clips(), n_stills, min_gap=4),
        TF.talking_face_loss, steps=2, batch_size=4, **KW)
    rec.check()


def test_identity_pretraining(rec):
    torch.manual_seed(0)
    rec(TF.IdentityClassifier(3, width=W), TF.IdentityFrames(_clips()), TF.identity_loss, steps=2, batch_size=4, **KW)
    rec.check()


def test_deblurring_cnn(rec):
    torch.manual_seed(0)
    rec(Deblur(channels=16), TF.BlurredFaces(_clips(), crop=32), deblur_loss, steps=2, batch_size=4, **KW)
    rec.check()
