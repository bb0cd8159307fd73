"""Chapter 2's library: SoftGAN labels, the energy constraint, the small CycleGAN-VC networks,
which tensors receive gradients in each step, the crops, and conversion with checked input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from voicebook import losses as L
from voicebook import train
from voicebook.checks import AudioError
from voicebook.models import softgan as S
from voicebook.models.cyclegan_vc import Discriminator, Generator, n_params, single

W = 1 / 16   # narrow networks: fast tests; the paper's widths are checked for shapes and sizes


# ----------------------------------------------------------------------------- labels and losses

def test_soft_labels_against_hand_values():
    d = torch.tensor([[0.2, 0.5, 1.0]], requires_grad=True)
    fake = L.soft_fake_label(d)            # (1 - 0.1) d
    real = L.soft_real_label(d)            # d + 0.9 (1 - d)
    torch.testing.assert_close(fake, torch.tensor([[0.18, 0.45, 0.9]]))
    torch.testing.assert_close(real, torch.tensor([[0.92, 0.95, 1.0]]))
    assert not fake.requires_grad and not real.requires_grad          # labels, detached
    torch.testing.assert_close(L.soft_fake_label(d, rho_gen=1.0), torch.zeros(1, 3))   # rho_gen = 1: the hard 0
    torch.testing.assert_close(L.soft_real_label(d, rho_dis=1.0), torch.ones(1, 3))    # rho_dis = 1: the hard 1


def test_soft_labels_scale_the_lsgan_gradient_by_rho():
    d = torch.tensor([[0.3, 0.8]], requires_grad=True)
    g_soft_d, = torch.autograd.grad(L.lsgan_loss(d, L.soft_fake_label(d)).sum(), d)
    g_hard_d, = torch.autograd.grad(L.lsgan_loss(d, 0.0).sum(), d)
    torch.testing.assert_close(g_soft_d, 0.1 * g_hard_d)      # 2 rho_gen d vs 2 d
    g_soft_g, = torch.autograd.grad(L.lsgan_loss(d, L.soft_real_label(d)).sum(), d)
    g_hard_g, = torch.autograd.grad(L.lsgan_loss(d, 1.0).sum(), d)
    torch.testing.assert_close(g_soft_g, 0.9 * g_hard_g)      # -2 rho_dis (1 - d) vs -2 (1 - d)


def test_lsgan_and_l1_are_per_copy_means():
    scores = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 0.0]])        # (batch 2, K 3)
    torch.testing.assert_close(L.lsgan_loss(scores, 1.0), torch.tensor([0.5, 0.0, 1.0]))
    a = torch.zeros(1, 2, 4, 4)
    b = torch.zeros(1, 2, 4, 4)
    b[0, 1] = 3.0
    b[0, 0, 0, 0] = 16.0
    torch.testing.assert_close(L.l1_per_copy(a, b), torch.tensor([1.0, 3.0]))


def test_energy_loss_against_hand_values():
    src = torch.randn(1, 2, 8, 12)
    # a conversion that moves every band of a frame by +0.5 (copy 0) or -2 (copy 1): energy off by that much
    conv = src + torch.tensor([0.5, -2.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(L.energy_loss(conv, src), torch.tensor([0.5, 2.0]))
    # reshuffling the bands within each frame keeps every frame's energy: no loss
    torch.testing.assert_close(L.energy_loss(src.flip(2), src), torch.zeros(2), atol=1e-6, rtol=0)
    # one band of frame 3 louder by ln 2 (twice the power): the frame's mean power grows by that band's
    # power over the frame's total, in 1 frame of 12 (computed here in numpy, from powers)
    conv = src.clone()
    conv[0, 0, 5, 3] += np.log(2.0)
    p = np.exp(src[0, 0, :, 3].double().numpy())
    expected = abs(np.log((p.sum() + p[5]) / p.sum())) / 12
    torch.testing.assert_close(L.energy_loss(conv, src)[0].double(), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)
    # moving power from one band to another at the same total keeps the energy: it is not a shape penalty
    powers = torch.tensor([1.0, 3.0, 2.0, 2.0])
    moved = torch.tensor([2.0, 2.0, 2.0, 2.0])
    a, b = powers.log().view(1, 1, 4, 1), moved.log().view(1, 1, 4, 1)
    torch.testing.assert_close(L.energy_loss(b, a), torch.zeros(1), atol=1e-6, rtol=0)
    # in normalised units (x - mu) / sigma, scale=sigma gives the same contour, in those units
    mu, sigma = -9.0, 6.0
    torch.testing.assert_close(L.energy_loss((conv - mu) / sigma, (src - mu) / sigma, scale=sigma) * sigma,
                               L.energy_loss(conv, src), rtol=1e-4, atol=1e-6)


def test_discriminator_loss_with_and_without_softgan_by_hand():
    d = lambda x: x.mean(dim=(2, 3))                                  # a "discriminator": the mean value
    real, fake = torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.2)
    anchors = [torch.full((1, 1, 4, 4), 0.3), torch.full((1, 1, 4, 4), -0.1)]
    soft, soft_logs = S.discriminator_loss(d, real, fake, anchors, S.Recipe(soft=True))
    hard, hard_logs = S.discriminator_loss(d, real, fake, anchors, S.Recipe(soft=False))
    # soft: 0.5 [(0.5-1)^2 + (0.2-0.18)^2] + 0.5 mean(0.3^2, 0.1^2); hard: 0.5 [0.25 + 0.2^2], anchors unused
    torch.testing.assert_close(soft, torch.tensor([0.5 * (0.25 + 0.0004) + 0.5 * 0.05]))
    torch.testing.assert_close(hard, torch.tensor([0.5 * (0.25 + 0.04)]))
    # the hard-label log is the hard loss of the same scores, whatever the recipe
    for logs in (soft_logs, hard_logs):
        torch.testing.assert_close(logs["D_hard"], torch.tensor(0.5 * (0.25 + 0.04)))


# ----------------------------------------------------------------------------- networks

def test_paper_sized_networks_on_a_32_by_128_input():
    x = torch.randn(1, 1, 32, 128)
    for g in (Generator(), Generator(bottleneck=True)):
        assert g(x).shape == (1, 1, 32, 128)
    assert Discriminator()(x).shape == (1, 1)
    convs = [m for m in Generator().modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [m.out_channels for m in convs] == [256, 512, 256, 1]
    assert all(m.kernel_size == (2, 2) and m.stride == (2, 2) for m in convs)
    dconvs = [m for m in Discriminator().modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in dconvs] == [64, 128, 256, 512]
    # the bottleneck adds 2 layers of 512 filters, kernel 3: many more parameters (section 5)
    assert n_params(Generator(bottleneck=True)) - n_params(Generator()) == 2 * 512 * 512 * 9 + 2 * 2 * 512


def test_wrong_input_sizes_are_named():
    with pytest.raises(ValueError, match="32 bands x 128 frames"):
        Discriminator()(torch.randn(1, 1, 32, 64))
    with pytest.raises(ValueError, match="multiples of 4"):
        Generator(width=W)(torch.randn(1, 1, 32, 130))
    with pytest.raises(ValueError, match="copies"):
        Generator(width=W, groups=2)(torch.randn(1, 1, 32, 128))


def test_grouped_copies_are_independent_networks():
    torch.manual_seed(0)
    g, d = Generator(width=W, groups=3), Discriminator(width=W, groups=3)
    x = torch.randn(1, 3, 32, 128)
    y, s = g(x), d(x)
    for k in range(3):
        torch.testing.assert_close(single(g, k)(x[:, k:k + 1]), y[:, k:k + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single(d, k)(x[:, k:k + 1]), s[:, k:k + 1], atol=1e-5, rtol=1e-5)
    # copy 0's output does not depend on copy 1's input
    x2 = x.clone()
    x2[:, 1] += 5
    torch.testing.assert_close(g(x2)[:, 0], y[:, 0])


def test_each_copy_starts_from_its_own_seed():
    r = S.SYSTEMS["+SoftGAN+Energy"]
    model = S.CycleGAN(r, width=W, groups=2)
    S._init_copies(model, r, [7, 11], W, 32, 128)
    torch.manual_seed(11)
    alone = S.CycleGAN(r, width=W)
    x = torch.randn(1, 1, 32, 128)
    torch.testing.assert_close(single(model.g_yx, 1)(x), alone.g_yx(x))
    torch.testing.assert_close(single(model.d_x, 1)(x), alone.d_x(x))


# ----------------------------------------------------------------------------- who gets gradients

def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("system", list(S.SYSTEMS))
def test_the_discriminator_step_reaches_only_the_discriminators(system):
    recipe = S.SYSTEMS[system]
    model = S.CycleGAN(recipe, width=W, groups=2)
    x, y = torch.randn(1, 2, 32, 128), torch.randn(1, 2, 32, 128)
    fake_y = model.g_xy(x)
    with pytest.raises(ValueError, match="detach"):
        S.discriminator_loss(model.d_y, y, fake_y, [x], recipe)
    loss, _ = S.discriminator_loss(model.d_y, y, fake_y.detach(), [x, torch.randn_like(x)], recipe)
    loss.sum().backward()
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(model.d_y))
    assert all(g is None for m in (model.g_xy, model.g_yx, model.d_x) for g in _grads(m))


@pytest.mark.parametrize("system", list(S.SYSTEMS))
def test_the_generator_step_reaches_only_the_generators(system):
    recipe = S.SYSTEMS[system]
    model = S.CycleGAN(recipe, width=W, groups=2)
    x, y = torch.randn(1, 2, 32, 128), torch.randn(1, 2, 32, 128)
    fake_y, fake_x = model.g_xy(x), model.g_yx(y)
    with S.frozen(model.d_x, model.d_y):
        loss, logs = S.generator_loss(model, x, y, fake_y, fake_x, recipe)
        loss.sum().backward()
    assert loss.shape == (2,) and set(logs) == {"adv", "adv_hard", "cycle", "identity", "energy"}
    assert all(g is not None and g.abs().sum() > 0 for m in (model.g_xy, model.g_yx) for g in _grads(m))
    assert all(g is None for m in (model.d_x, model.d_y) for g in _grads(m))
    assert all(p.requires_grad for p in model.discriminators())      # unfrozen afterwards


def test_the_adversarial_gradient_reaches_the_generators_through_the_frozen_discriminators():
    """Adversarial term only (no cycle, identity or energy): if D's score of the fake were
    detached, the generators would get no gradient at all. Every *weight* is checked: the
    bias of G's last layer shifts the whole output, which D's first instance norm removes, so
    its adversarial gradient is zero analytically (rounding made it 0 or 1e-9 by the draw)."""
    torch.manual_seed(0)
    for soft in (True, False):
        recipe = S.Recipe(soft=soft, energy=False, lambda_cyc=0.0, lambda_id=0.0)
        model = S.CycleGAN(recipe, width=W)
        x, y = torch.randn(1, 1, 32, 128), torch.randn(1, 1, 32, 128)
        with S.frozen(model.d_x, model.d_y):
            loss, _ = S.generator_loss(model, x, y, model.g_xy(x), model.g_yx(y), recipe)
            loss.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generators() if p.ndim > 1)
        assert all(p.grad is None for p in model.discriminators())


def test_the_paper_weights_and_how_the_generator_loss_combines_them():
    assert S.Recipe() == S.Recipe(lambda_cyc=0.3, lambda_id=0.15, lambda_energy=1.0, rho_gen=0.1, rho_dis=0.9)
    torch.manual_seed(1)
    r = S.Recipe(energy=True)
    model = S.CycleGAN(r, width=W)
    x, y = torch.randn(1, 1, 32, 128), torch.randn(1, 1, 32, 128)
    with torch.no_grad():
        loss, logs = S.generator_loss(model, x, y, model.g_xy(x), model.g_yx(y), r)
    expected = logs["adv"] + 0.3 * logs["cycle"] + 0.15 * logs["identity"] + 1.0 * logs["energy"]
    torch.testing.assert_close(loss, expected.reshape(1))


def test_the_energy_term_is_in_the_generator_loss_only_when_asked():
    torch.manual_seed(0)
    on, off = S.Recipe(energy=True), S.Recipe(energy=False)
    model = S.CycleGAN(on, width=W)
    x, y = torch.randn(1, 1, 32, 128), torch.randn(1, 1, 32, 128)
    with torch.no_grad(), S.frozen(model.d_x, model.d_y):
        fy, fx = model.g_xy(x), model.g_yx(y)
        with_e, logs = S.generator_loss(model, x, y, fy, fx, on)
        without, _ = S.generator_loss(model, x, y, fy, fx, off)
    torch.testing.assert_close(with_e - without, logs["energy"].reshape(1))


def _one_step(recipe, seed=0, k=2):
    """One :func:`S.cyclegan_step` of a fresh K-copy model -> ``(model before, model after, batch, logs)``."""
    torch.manual_seed(seed)
    model = S.CycleGAN(recipe, width=W, groups=k)
    before = copy.deepcopy(model)
    batch = tuple(torch.randn(1, k, 32, 128) for _ in range(3))
    opts = {"g": torch.optim.Adam(model.generators(), 1e-3), "d": torch.optim.Adam(model.discriminators(), 1e-3)}
    ctx = train.StepContext(1, opts, torch.device("cpu"), None, torch.amp.GradScaler("cpu", enabled=False))
    return before, model, batch, S.cyclegan_step(model, batch, ctx, recipe=recipe)


@pytest.mark.parametrize("system", ["-SoftGAN+Energy", "-SoftGAN+Energy+Bottleneck"])
def test_hard_label_logs_equal_the_losses_of_a_hard_recipe(system):
    _, _, _, logs = _one_step(S.SYSTEMS[system])
    torch.testing.assert_close(logs["D_hard"], logs["D"], atol=1e-6, rtol=0)
    torch.testing.assert_close(logs["adv_hard"], logs["adv"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("system", ["+SoftGAN+Energy", "+SoftGAN-Energy"])
def test_hard_label_logs_of_a_soft_recipe_by_hand(system):
    """D's step scores the reals and the step's fakes with the discriminators as they were; G's
    step scores the same fakes with the discriminators just updated (G is updated after)."""
    before, after, (x, y, _), logs = _one_step(S.SYSTEMS[system], seed=3)
    with torch.no_grad():
        fake_y, fake_x = before.g_xy(x), before.g_yx(y)
        d_hard = sum(0.5 * (((d(real) - 1) ** 2).mean() + (d(fake) ** 2).mean())     # (1, K): mean = per-copy mean
                     for d, real, fake in ((before.d_y, y, fake_y), (before.d_x, x, fake_x)))
        adv_hard = sum(((d(fake) - 1) ** 2).mean() for d, fake in ((after.d_y, fake_y), (after.d_x, fake_x)))
    torch.testing.assert_close(logs["D_hard"], d_hard, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logs["adv_hard"], adv_hard, atol=1e-6, rtol=1e-5)
    assert abs(float(logs["D_hard"] - logs["D"])) > 1e-3 and abs(float(logs["adv_hard"] - logs["adv"])) > 1e-3
    # eq. 7's detached target is linear in d: G's soft loss is rho_dis^2 times the hard one
    torch.testing.assert_close(logs["adv"], L.RHO_DIS ** 2 * logs["adv_hard"], atol=1e-6, rtol=1e-5)


def test_a_few_training_steps_change_both_players_and_resume(tmp_path):
    by = {"a": [torch.randn(32, 150)], "b": [torch.randn(32, 140)]}
    data = S.EnvelopeCrops(by, [("a", "b", 0), ("a", "b", 1)], length=50)
    r = S.SYSTEMS["+SoftGAN+Energy"]
    fresh = S.CycleGAN(r, width=W, groups=2)
    S._init_copies(fresh, r, [0, 1], W, 32, 128)
    model, hist = S.train_cyclegans(r, data, steps=4, width=W, seed=0, progress=False, log_every=1,
                                    ckpt_dir=tmp_path / "run")
    for a, b in ((fresh.g_xy, model.g_xy), (fresh.d_y, model.d_y)):
        assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert {"D", "G", "D(real)", "D(fake)", "adv", "cycle", "identity", "energy", "D_hard", "adv_hard"} \
        <= set(hist.train[-1])
    again, _ = S.train_cyclegans(r, data, steps=4, width=W, seed=0, progress=False, ckpt_dir=tmp_path / "run")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4


def test_copies_trained_together_end_where_lone_trainings_do():
    rng = torch.Generator().manual_seed(0)
    by = {"a": [torch.randn(32, 150, generator=rng)], "b": [torch.randn(32, 140, generator=rng)]}
    r = S.SYSTEMS["+SoftGAN+Energy"]
    together, _ = S.train_cyclegans(r, S.EnvelopeCrops(by, [("a", "b", 0), ("a", "b", 1)], length=20), steps=3,
                                    width=W, seed=0, progress=False)
    alone, _ = S.train_cyclegans(r, S.EnvelopeCrops(by, [("a", "b", 1)], length=20), steps=3, width=W, seed=0,
                                 progress=False)
    for name in ("g_xy", "g_yx", "d_x", "d_y"):
        one = single(getattr(together, name), 1)
        for p, q in zip(one.parameters(), getattr(alone, name).parameters()):
            torch.testing.assert_close(p, q, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- data

def test_crops_are_deterministic_per_copy_and_handle_short_utterances():
    rng = torch.Generator().manual_seed(0)
    by = {"a": [torch.randn(32, 300, generator=rng), torch.randn(32, 50, generator=rng)],
          "b": [torch.randn(32, 200, generator=rng)], "c": [torch.randn(32, 400, generator=rng)]}
    both = S.EnvelopeCrops(by, [("a", "b", 0), ("a", "c", 3)], frames=128)
    alone = S.EnvelopeCrops(by, [("a", "c", 3)], frames=128)
    x, y, noise = both[5]
    assert x.shape == y.shape == noise.shape == (2, 32, 128)
    torch.testing.assert_close(both[5][2][1], alone[5][2][0])
    torch.testing.assert_close(both[5][0][1], alone[5][0][0])        # a copy's data ignore the others
    torch.testing.assert_close(both[5][1][1], alone[5][1][0])
    assert not torch.equal(both[5][0][0], both[6][0][0]) or not torch.equal(both[5][1][0], both[6][1][0])
    with pytest.raises(ValueError, match="no training utterance of speaker 'z'"):
        S.EnvelopeCrops(by, [("a", "z", 0)])


def test_band_stats_is_one_affine_map():
    m, s = S.band_stats([torch.tensor([[1.0, 3.0]]), torch.tensor([[5.0, 7.0]])])
    assert m == pytest.approx(4.0) and s == pytest.approx(np.std([1, 3, 5, 7], ddof=1))


# ----------------------------------------------------------------------------- conversion

def test_convert_bands_keeps_any_length():
    g = single(Generator(width=W, groups=2), 1).eval()
    bands = np.random.default_rng(0).normal(-10, 3, size=(32, 203)).astype(np.float32)
    out = S.convert_bands(g, bands, (-10.0, 3.0))
    assert out.shape == (32, 203) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="one copy"):
        S.convert_bands(Generator(width=W, groups=2), bands, (0.0, 1.0))
    bands[3, 7] = np.nan                                            # used to come out finite (nan_to_num)
    with pytest.raises(ValueError, match="the input bands hold 1 NaN or infinite values"):
        S.convert_bands(g, bands, (-10.0, 3.0))


def test_convert_wave_end_to_end_and_bad_input(speech16, speech22):
    g = Generator(width=W).eval()
    args = ((-10.0, 3.0), (np.log(150), 0.2), (np.log(220), 0.2))
    wav = S.convert_wave(g, speech16.wav, 16000, *args)
    assert wav.ndim == 1 and abs(len(wav) - len(speech16.wav)) < 16000 * 0.01 and np.all(np.isfinite(wav))
    bad = {"expected 16000 Hz": (speech22.wav, 22050), "silent": (np.zeros(16000), 16000),
           "shorter": (speech16.wav[:800], 16000), "NaN": (np.full(16000, np.nan), 16000),
           "channel": (np.stack([speech16.wav, speech16.wav], axis=1), 16000)}
    for match, (x, sr) in bad.items():
        with pytest.raises(AudioError, match=match):
            S.convert_wave(g, x, sr, *args)


def test_flatness_detects_a_collapsed_output():
    src = np.random.default_rng(0).normal(size=(32, 100))
    assert S.flatness(src, src) == pytest.approx(1.0)
    assert S.flatness(np.full((32, 100), 3.0), src) == 0.0
    assert S.flatness(np.full((32, 100), np.nan), src) == 0.0
    assert S.flatness(0.5 * src, src) == pytest.approx(0.5)


def test_collapse_is_flat_diverged_or_not_finite_output():
    src = np.random.default_rng(0).normal(-10, 3, size=(32, 100))
    stats = (-10.0, 3.0)
    assert not S.collapsed(src + 0.5, src, stats)
    assert S.collapsed(np.full((32, 100), -10.0), src, stats)               # flat
    assert S.collapsed(src + 40.0, src, stats)                              # diverged: far outside the range
    assert S.collapsed(np.where(src > -10, np.inf, src), src, stats)        # not finite


def test_a_diverged_generator_still_gives_finite_bands():
    g = single(Generator(width=W, groups=1), 0).eval()
    with torch.no_grad():
        g.net[-1].bias.fill_(1e6)                                           # outputs far beyond any log power
    out = S.convert_bands(g, np.zeros((32, 40), np.float32), (-10.0, 3.0))
    assert np.all(np.isfinite(out)) and out.max() == pytest.approx(-10.0 + S.CLIP * 3.0)


def test_same_seed_same_model_on_cpu():
    by = {"a": [torch.randn(32, 150)], "b": [torch.randn(32, 140)]}
    data = S.EnvelopeCrops(by, [("a", "b", 3)], length=20)
    r = S.SYSTEMS["-SoftGAN+Energy"]
    first, _ = S.train_cyclegans(r, data, steps=3, width=W, seed=5, progress=False)
    again, _ = S.train_cyclegans(r, data, steps=3, width=W, seed=5, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters()))
