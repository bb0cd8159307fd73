"""voicebook.models.mlms: the multi-language multi-speaker model (Li & Zen eqs. 1-2), its
training data, adaptation (section 4.2: only the adapted parameters change), prediction, scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from voicebook import metrics, vocoder
from voicebook.data import features
from voicebook.models import mlms as M
from voicebook.models.towers import combine

N_IN, N_OUT = 9, 5
SIZE = dict(relu=6, cells=5, proj=4, layers=2, n_out=N_OUT)
LANGS, SPKS = ["aa", "bb", "cc"], ["aa-f", "bb-f", "bb-m", "cc-f"]


def toy_examples(n: int = 12, seed: int = 0) -> list[M.Example]:
    """Utterances whose targets are a fixed causal function of the last two input frames, per language."""
    g = torch.Generator().manual_seed(seed)
    mix = {lang: torch.randn(N_IN, N_OUT, generator=g) for lang in LANGS}
    out = []
    for i in range(n):
        spk = SPKS[i % len(SPKS)]
        lang = spk[:2]
        x = torch.randn(20 + 3 * i, N_IN, generator=g)
        y = x @ mix[lang] + 0.5 * nn.functional.pad(x[:-1], (0, 0, 1, 0)) @ mix[lang] + (spk.endswith("m"))
        out.append(M.Example(f"u{i}", x, y, lang, spk))
    return out


@pytest.fixture()
def toy():
    exs = toy_examples()
    return exs, M.Normaliser.fit(exs)


def model(init="rand", seed=0):
    torch.manual_seed(seed)
    return M.MLMS(N_IN, LANGS, SPKS, len(LANGS), code_init=init, **SIZE)


def test_papers_sizes_and_shapes():
    m = M.MLMS(30, ["a", "b"], ["a1", "b1", "b2"], 2)
    assert m.towers.towers == 3 and m.codes.shape == (2, 2)
    assert m.outputs.w.shape == (3, 128, 49) and m.outputs.u.shape == (3, 49, 49) and m.outputs.b.shape == (3, 49)
    y = m(torch.randn(2, 17, 30), torch.tensor([0, 1]), torch.tensor([2, 0]))
    assert y.shape == (2, 17, 49)
    base = M.MLMS(30, ["a"], ["a1"], 0)                          # the baseline: mean tower alone
    lone = sum(p.numel() for p in nn.LSTM(256, 256, num_layers=3, proj_size=128).parameters())
    assert M.n_params(base) == 30 * 256 + 256 + lone + 128 * 49 + 49 * 49 + 49
    assert M.n_params(m) == 3 * (30 * 256 + 256 + lone) + 4 + 3 * (128 * 49 + 49 * 49 + 49)


def test_forward_is_the_explicit_sum_of_eq1_then_eq2():
    m = model()
    with torch.no_grad():
        m.codes.normal_()
    x, lang, spk = torch.randn(2, 7, N_IN), torch.tensor([2, 0]), torch.tensor([3, 0])
    towers = m.towers(x)
    h = torch.stack([towers[0, b] + sum(m.codes[lang[b], l] * towers[1 + l, b] for l in range(len(LANGS)))
                     for b in range(2)])
    torch.testing.assert_close(combine(towers, m.codes[lang]), h)
    torch.testing.assert_close(m(x, lang, spk), m.outputs(h, spk))


def test_code_initialisations_and_errors():
    assert torch.equal(model("1-hot (init)").codes.detach(), torch.eye(3)) and model("1-hot (init)").codes.requires_grad
    fixed = model("1-hot (fixed)")
    assert not fixed.codes.requires_grad
    with pytest.raises(ValueError, match="one basis tower per language"):
        M.MLMS(N_IN, LANGS, SPKS, 2, code_init="1-hot (init)", **SIZE)
    with pytest.raises(ValueError, match="code_init must be one of"):
        M.MLMS(N_IN, LANGS, SPKS, 3, code_init="onehot", **SIZE)
    with pytest.raises(ValueError, match=r"unknown language \['zz'\]"):
        fixed.index(["zz"], ["aa-f"])
    x = torch.randn(2, 7, N_IN)
    with pytest.raises(ValueError, match=r"one language index in \[0, 3\) per utterance, got \[0, 5\] for a batch of 2"):
        fixed(x, torch.tensor([0, 5]), torch.tensor([0, 0]))
    with pytest.raises(TypeError, match=r"model.index\(languages, speakers\) gives them from names"):
        fixed(x, ["aa", "bb"], torch.tensor([0, 0]))


def test_training_lowers_the_loss_and_fixed_codes_stay(toy, tmp_path):
    exs, norm = toy
    m = model("1-hot (fixed)")
    before = M.dev_mse(m, exs, norm)
    hist = M.train(m, exs, norm, steps=150, batch_size=4, frames=16, lr=1e-2, progress=False, device="cpu",
                   log_every=25, ckpt_dir=tmp_path)
    assert hist.train[-1]["loss"] < 0.6 * hist.train[0]["loss"]
    assert M.dev_mse(m, exs, norm) < 0.6 * before
    assert torch.equal(m.codes.detach(), torch.eye(3))
    assert (tmp_path / "last.pt").exists()


def test_normaliser_and_crops(toy):
    exs, norm = toy
    z = torch.cat([norm.y(e.y) for e in exs])
    torch.testing.assert_close(z.mean(0), torch.zeros(N_OUT), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(N_OUT), atol=1e-4, rtol=0)
    flat = M.Normaliser.fit([M.Example("c", torch.ones(4, 2), torch.ones(4, 1), "aa", "aa-f")])
    assert torch.equal(flat.x_std, torch.ones(2))                 # a constant input keeps std 1
    crops = M.FrameCrops(exs, norm, model(), frames=40, seed=3)
    a, b = crops[5], crops[5]
    assert all(torch.equal(p, q) if torch.is_tensor(p) else p == q for p, q in zip(a, b))
    x, y, lang, spk, mask = crops[5]
    assert x.shape == (40, N_IN) and y.shape == (40, N_OUT) and mask.shape == (40,)
    n = int(mask.sum())                                           # shorter utterances are padded, masked
    assert 20 <= n <= 40 and torch.all(mask[:n] == 1) and torch.all(x[n:] == 0) and torch.all(y[n:] == 0)
    assert any(int(crops[i][4].sum()) < 40 for i in range(30))    # the 20-frame utterance gets drawn
    assert M.masked_mse(torch.ones(1, 3, 2), torch.zeros(1, 3, 2), torch.tensor([[1.0, 1.0, 0.0]])) == 1.0


def test_prediction_of_a_padded_batch_equals_one_at_a_time(toy):
    exs, norm = toy
    m = model()
    together = M.predict(m, exs[:5], norm, batch_size=5)
    alone = [M.predict(m, [e], norm)[0] for e in exs[:5]]
    for a, b, e in zip(together, alone, exs):
        assert a.shape == e.y.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _adapted_entries(before: dict, after: dict) -> dict[str, torch.Tensor]:
    return {n: before[n] != after[n] for n in before}


@pytest.mark.parametrize("parts", [("code", "speaker"), ("code", "mean", "speaker"), ("mean", "speaker")])
def test_adaptation_changes_only_the_adapted_parameters(toy, parts):
    """v1 (code), v2/v4 (code + mean tower), v3 (mean tower), each with the new speaker's layer:
    every other number of the model stays bit-for-bit equal."""
    exs, norm = toy
    m = M.extend(model("rand"), "dd", "dd-f", seed=1)
    new = [M.Example(f"n{i}", e.x, e.y[:, [1, 0, 2, 4, 3]], "dd", "dd-f") for i, e in enumerate(exs[:4])]
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    grads_on = {n: p.requires_grad for n, p in m.named_parameters()}
    M.adapt(m, parts, new, norm, steps=5, batch_size=2, frames=16, lr=1e-2, progress=False, device="cpu")
    after = {n: p.detach() for n, p in m.named_parameters()}
    allowed = M._masks(m, parts, "dd", "dd-f")
    for name in before:
        outside = allowed[name] == 0 if name in allowed else torch.ones_like(before[name], dtype=torch.bool)
        assert torch.equal(before[name][outside], after[name][outside]), name
        if name in allowed:
            assert (before[name] != after[name])[allowed[name] > 0].any(), f"{name} did not learn"
    assert {n: p.requires_grad for n, p in m.named_parameters()} == grads_on   # restored afterwards
    expected = {"outputs"} | ({"codes"} if "code" in parts else set()) | ({"towers"} if "mean" in parts else set())
    assert {n.split(".")[0] for n in allowed} == expected


def test_extend_keeps_the_trained_voices():
    m = model()
    x = torch.randn(1, 11, N_IN)
    old = m(x, torch.tensor([1]), torch.tensor([2])).detach()
    big = M.extend(m, "dd", "dd-f", seed=0)
    assert big.languages == LANGS + ["dd"] and big.speakers == SPKS + ["dd-f"]
    torch.testing.assert_close(big.codes[-1].detach(), m.codes.mean(0).detach())
    torch.testing.assert_close(big(x, torch.tensor([1]), torch.tensor([2])).detach(), old)
    assert torch.equal(M.extend(m, "dd", "dd-f", seed=0).outputs.w, big.outputs.w)      # seeded
    with pytest.raises(ValueError, match="one language and one speaker"):
        M.adapt(big, ("code",), toy_examples(4), M.Normaliser.fit(toy_examples(4)), steps=1)
    with pytest.raises(ValueError, match="unknown part"):
        with M.adapting(big, ("towers",), "dd", "dd-f"):
            pass


def test_the_four_adaptations_chain_as_section_4_2(toy, tmp_path):
    """v1 updates the code, v3 continues v1 with the mean tower only (so keeps v1's code), v4
    continues v3 with both (so keeps nothing of v3 fixed but the basis towers); v2 starts from
    the extended model like v1. The source model is untouched; a rerun resumes to the same weights."""
    exs, norm = toy
    src = model("rand")
    before = {n: p.detach().clone() for n, p in src.named_parameters()}
    new = [M.Example(f"n{i}", e.x, e.y[:, [1, 0, 2, 4, 3]], "dd", "dd-f") for i, e in enumerate(exs[:4])]
    kw = dict(steps=4, batch_size=2, frames=16, lr=1e-2, progress=False, device="cpu")
    v = M.adapt_variants(src, new, norm, ckpt_dir=tmp_path, **kw)
    assert list(v) == ["v1", "v2", "v3", "v4"] and all(m.languages[-1] == "dd" for m in v.values())
    assert all(torch.equal(before[n], p) for n, p in src.named_parameters())
    fresh = M.extend(src, "dd", "dd-f")
    mean = {f"towers.{n}" for n in src.towers.tower_masks(0)}
    p = {k: dict(m.named_parameters()) for k, m in v.items()}
    assert not torch.equal(p["v1"]["codes"][-1], fresh.codes[-1])                        # v1 moved the code
    assert torch.equal(p["v3"]["codes"], p["v1"]["codes"])                               # v3 kept v1's code...
    assert any(not torch.equal(p["v3"][n], p["v1"][n]) for n in mean)                    # ...and moved the mean tower
    assert all(torch.equal(p["v1"][n], dict(fresh.named_parameters())[n]) for n in mean)  # which v1 left alone
    assert not torch.equal(p["v4"]["codes"], p["v3"]["codes"])                           # v4 moved the code again
    assert not torch.equal(p["v2"]["codes"], p["v1"]["codes"])                           # v2: its own run
    again = M.adapt_variants(src, new, norm, ckpt_dir=tmp_path, **kw)                    # resumed from ckpt_dir
    assert all(torch.equal(a, b) for k in v for a, b in zip(v[k].parameters(), again[k].parameters()))


def test_duplicate_language_or_speaker_names_are_refused():
    with pytest.raises(ValueError, match="given more than once: \\['aa'\\]"):
        M.MLMS(N_IN, ["aa", "bb", "aa"], SPKS, 3, **SIZE)
    with pytest.raises(ValueError, match="speaker names must be distinct"):
        M.MLMS(N_IN, LANGS, ["aa-f", "aa-f"], 3, **SIZE)
    with pytest.raises(ValueError, match="already has language 'bb'"):
        M.extend(model(), "bb", "new-f")
    with pytest.raises(ValueError, match="speaker 'aa-f'"):
        M.extend(model(), "dd", "aa-f")


def test_scores_against_a_direct_computation():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((50, 49))
    true[:, 40] = np.log(rng.uniform(100, 200, 50))
    true[:, 41] = (np.arange(50) % 5 != 0)
    pred = true + 0.1 * rng.standard_normal((50, 49))
    pred[:, 41] = (np.arange(50) % 7 != 0)
    s = M.scores(torch.from_numpy(pred), torch.from_numpy(true))
    mcd = np.mean(10 / np.log(10) * np.sqrt(2 * ((true[:, 1:40] - pred[:, 1:40]) ** 2).sum(1)))
    assert s["mcd_db"] == pytest.approx(mcd)
    both = (true[:, 41] > 0.5) & (pred[:, 41] > 0.5)
    assert s["f0_rmse_hz"] == pytest.approx(np.sqrt(np.mean((np.exp(true[both, 40]) - np.exp(pred[both, 40])) ** 2)))
    assert s["vuv_error"] == pytest.approx(np.mean((true[:, 41] > 0.5) != (pred[:, 41] > 0.5)))
    with pytest.raises(ValueError, match=r"scores: expected pred and true of one shape .* got \(50, 49\) and \(50, 42\)"):
        M.scores(torch.from_numpy(pred), torch.from_numpy(true[:, :42]))   # was an IndexError
    with pytest.raises(ValueError, match=r"got \(50, 40\) and \(50, 40\)"):
        M.scores(torch.from_numpy(pred[:, :40]), torch.from_numpy(true[:, :40]))   # mcep only: no F0 columns


def test_always_voiced_is_the_error_of_a_constant_voiced_output():
    rng = np.random.default_rng(1)
    true = rng.standard_normal((60, 49))
    true[:, 40] = np.log(rng.uniform(100, 200, 60))
    true[:, 41] = (np.arange(60) % 4 != 0)           # a quarter of the frames unvoiced
    pred = true.copy()
    pred[:, 41] = 0.8                                 # a V/UV output stuck above the threshold
    ref = M.always_voiced(torch.from_numpy(true))
    assert ref == pytest.approx(0.25)
    assert M.scores(torch.from_numpy(pred), torch.from_numpy(true))["vuv_error"] == pytest.approx(ref)
    with pytest.raises(ValueError, match=r"always_voiced: .* got \(60, 40\)"):
        M.always_voiced(torch.from_numpy(true[:, :40]))


def test_vocoder_features_are_the_papers_49_and_resynthesise(tmp_path, speech22):
    from voicebook import audio
    from voicebook.data.speech import file_utterance

    wav = speech22.wav.astype(np.float32)
    path = audio.save(tmp_path / "u.wav", wav, 22050)
    u = file_utterance(path, id="u", speaker="s", language="en-us", text="", sentence_id="0", sex="F", split="dev")
    f = features.vocoder_features([u], cache_dir=tmp_path, workers=1, progress=False)["u"]
    direct = vocoder.encode(u.load(), 22050, 39, 7, f0_method="dio").stack()
    assert f.shape == (len(wav) * 1000 // 22050 // 5 + 1, 49) == direct.shape
    np.testing.assert_allclose(f.numpy(), direct, rtol=1e-5, atol=1e-4)
    wave = M.to_wave(f)
    back = vocoder.encode(wave, 22050, 39, 7, f0_method="dio").stack()
    n = min(len(back), len(direct))
    assert metrics.mcd(direct[:n, :40], back[:n, :40]) < 3.0     # WORLD round trip of the 49 parameters


def test_an_utterance_without_timings_is_named(tmp_path):
    from voicebook import audio
    from voicebook.data.speech import file_utterance

    path = audio.save(tmp_path / "x.wav", np.zeros(2205, np.float32), 22050)
    u = file_utterance(path, id="spk_001", speaker="spk", language="en-us", text="hi",
                       sentence_id="1", sex="F", split="train")
    with pytest.raises(ValueError, match=r"utterance spk_001 .*no phoneme timings"):
        M.examples([u], {"spk_001": torch.zeros(10, 49)}, ["sil", "a"])
    with pytest.raises(ValueError, match="no vocoder features for utterance spk_001"):
        M.examples([u], {}, ["sil", "a"])
