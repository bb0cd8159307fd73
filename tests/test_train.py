"""Tests of voicebook.train: learning, seeding, checkpoints, exact resume (also after SIGKILL), DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from voicebook import train
from voicebook.train import (CheckpointError, EpochSampler, History, fit, load_checkpoint, pick_device,
                             plot_history, save_checkpoint, seed_everything)

SCRIPT = Path(__file__).with_name("train_script.py")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def diabetes():
    """sklearn's diabetes data (442 patients, 10 features), standardised; -> (train set, X_test, y_test)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32)
    y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)[:, None]
    return torch.utils.data.TensorDataset(X[:350], y[:350]), X[350:], y[350:]


def mse_loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def mlp(seed=0, dropout=0.0):
    seed_everything(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 1))


def same_params(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- learning and seeding


def test_loss_falls_on_a_real_regression(diabetes):
    data, X_test, y_test = diabetes
    model = mlp()
    history = fit(model, data, mse_loss, steps=200, batch_size=32, lr=3e-3, progress=False,
                  eval_fn=lambda m: {"mse": nn.functional.mse_loss(m(X_test), y_test)}, eval_every=50)
    first, last = history.train[0]["loss"], history.train[-1]["loss"]
    assert last < 0.65 * first, (first, last)
    assert [e["step"] for e in history.eval] == [50, 100, 150, 200]
    assert history.eval[-1]["mse"] < 0.6  # variance of the standardised target is 1; linear fits reach ~0.5
    assert model.training  # left in train mode


def test_same_seed_same_parameters_other_seed_differs(diabetes):
    data = diabetes[0]
    runs = []
    for seed in (0, 0, 1):
        model = mlp(seed=0, dropout=0.3)
        fit(model, data, mse_loss, steps=20, batch_size=16, seed=seed, progress=False)
        runs.append(model)
    assert same_params(runs[0], runs[1])
    assert not same_params(runs[0], runs[2])


def test_seed_everything_seeds_all_generators():
    import random
    import numpy as np

    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_deterministic_mode_is_asked_for_by_the_environment_and_set_before_cuda_starts():
    """In a fresh process (the flags are global): on import, before any CUDA work, the cuBLAS
    setting; at seeding, deterministic algorithms (warning where none exist) and no autotuner."""
    probe = ("import os, torch\n"
             "import voicebook.train as t\n"
             "cublas = os.environ.get('CUBLAS_WORKSPACE_CONFIG')\n"
             "before = torch.are_deterministic_algorithms_enabled()\n"
             "t.seed_everything(0)\n"
             "print(cublas, before, torch.are_deterministic_algorithms_enabled(),\n"
             "      torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)\n")
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}

    def out(**extra):
        return subprocess.run([sys.executable, "-c", probe], env={**env, **extra}, check=True,
                              capture_output=True, text=True).stdout.split()

    assert out(VOICEBOOK_DETERMINISTIC="1") == [":4096:8", "False", "True", "True", "False"]
    assert out(VOICEBOOK_DETERMINISTIC="0")[:3] == ["None", "False", "False"]


def test_data_order_is_a_function_of_seed_and_epoch():
    s = EpochSampler(10, seed=3)
    assert s.indices(0) == EpochSampler(10, seed=3).indices(0)
    assert s.indices(0) != s.indices(1) and sorted(s.indices(1)) == list(range(10))
    s.set_epoch(1, start=4)
    assert list(s) == s.indices(1)[4:] and len(s) == 6
    shards = [EpochSampler(11, seed=3, rank=r, world=2).indices(2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5 and not set(shards[0]) & set(shards[1])


def test_workers_give_the_same_result_as_the_main_process(diabetes):
    data = diabetes[0]
    a, b = mlp(), mlp()
    fit(a, data, mse_loss, steps=12, batch_size=32, progress=False)
    fit(b, data, mse_loss, steps=12, batch_size=32, progress=False, num_workers=1)
    assert same_params(a, b)


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_load_with_weights_only(diabetes, tmp_path):
    data, X_test, y_test = diabetes
    history = fit(mlp(dropout=0.1), data, mse_loss, steps=30, batch_size=32, ckpt_dir=tmp_path, ckpt_every=10,
                  eval_fn=lambda m: {"mse": nn.functional.mse_loss(m(X_test), y_test)}, eval_every=10,
                  keep_best="mse", progress=False)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert last["step"] == 30 and last["format"] == train.FORMAT
    assert set(last) >= {"model", "optimizers", "schedulers", "rng", "history", "meta", "scaler"}
    assert best["step"] == history.best["step"] and history.best["metric"] == "mse"
    assert history.best["value"] == min(e["mse"] for e in history.eval)
    assert History.load(tmp_path / "history.json") == history
    model = mlp(seed=5)
    ckpt = load_checkpoint(tmp_path / "last.pt", model)
    assert torch.equal(model[0].weight, ckpt["model"]["0.weight"])
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_a_run_with_a_ckpt_dir_checkpoints_on_the_way_by_default(diabetes, tmp_path):
    """Without ckpt_every, a run given a ckpt_dir still writes last.pt every tenth of the run
    (at least 50 steps apart): a run killed at step 130 of 200 resumes from step 100."""
    data, _, _ = diabetes
    calls = {"n": 0}

    def dies_at_130(model, batch):
        calls["n"] += 1
        if calls["n"] == 131:
            raise KeyboardInterrupt
        return mse_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        fit(mlp(), data, dies_at_130, steps=200, batch_size=32, ckpt_dir=tmp_path, progress=False)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 100   # max(50, 200 / 10) = 50: 50, 100
    resumed, whole = mlp(), mlp()
    fit(resumed, data, mse_loss, steps=200, batch_size=32, ckpt_dir=tmp_path, progress=False)
    fit(whole, data, mse_loss, steps=200, batch_size=32, progress=False)
    assert same_params(resumed, whole)


def test_a_crash_during_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    model = mlp()
    save_checkpoint(path, model, step=1)
    before = path.read_bytes()

    def torn_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path, mlp())["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_resume_in_process_is_exact(diabetes, tmp_path):
    """Stop mid-epoch at step 13, resume to 30: bit-identical to 30 steps in one go."""
    data = diabetes[0]

    def run(steps, ckpt_dir):
        model = mlp(dropout=0.3)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
        fit(model, data, mse_loss, steps=steps, batch_size=48, optimizer=opt, scheduler=sched,
            ckpt_dir=ckpt_dir, ckpt_every=4 if ckpt_dir else 0, seed=3, progress=False)
        return model

    run(13, tmp_path)  # 350 // 48 = 7 steps per epoch: step 13 is mid-epoch
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 13
    assert same_params(run(30, tmp_path), run(30, None))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 30


def test_a_rerun_says_whether_it_resumes_or_loads_a_finished_run(diabetes, tmp_path, capsys):
    def run(steps):
        fit(mlp(), diabetes[0], mse_loss, steps=steps, batch_size=48, ckpt_dir=tmp_path, ckpt_every=5, seed=3)
        return capsys.readouterr().out

    assert "resuming" not in run(5)
    assert f"resuming from {tmp_path / 'last.pt'} at step 5 of 8" in run(8)
    said = run(8)
    assert "holds a finished run (8 steps): loading it" in said and "resuming" not in said


# ---------------------------------------------------------------- several optimizers (GAN)


class TinyGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        self.d = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(16, 1))


def gan_step(model, batch, ctx):
    """Discriminator step on detached fakes, then a generator step through the updated D."""
    (x,) = batch
    bce = nn.functional.binary_cross_entropy_with_logits
    with ctx.autocast():
        fake = model.g(torch.randn(x.shape[0], 4, device=x.device))
        real_logit, fake_logit = model.d(x), model.d(fake.detach())
        d_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
    ctx.update(d_loss, "d")
    with ctx.autocast():
        fake_logit = model.d(fake)
        g_loss = bce(fake_logit, torch.ones_like(fake_logit))
    ctx.update(g_loss, "g")
    return {"d": d_loss, "g": g_loss}


def gan_run(steps, ckpt_dir=None):
    seed_everything(0)
    data = torch.utils.data.TensorDataset(3 + 0.5 * torch.randn(256, 1))
    gan = TinyGAN()
    opts = {name: torch.optim.Adam(getattr(gan, name).parameters(), 1e-2, betas=(0.5, 0.999)) for name in "gd"}
    history = fit(gan, data, step_fn=gan_step, optimizer=opts, steps=steps, batch_size=32, progress=False,
                  log_every=50, ckpt_dir=ckpt_dir, ckpt_every=50 if ckpt_dir else 0)
    return gan, history


def test_a_gan_trains_with_two_optimizers_and_resumes_exactly(tmp_path):
    gan, history = gan_run(300)
    assert set(history.train[-1]) == {"step", "d", "g"}
    with torch.no_grad():
        samples = gan.g(torch.randn(2000, 4))
    assert abs(samples.mean().item() - 3.0) < 0.5  # G moved its samples from ~0 to the data's mean
    gan_run(70, tmp_path)
    assert same_params(gan_run(300, tmp_path)[0], gan)


def test_step_context_update_names_the_optimizer():
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    ctx = train.StepContext(1, {"g": opt, "d": opt}, torch.device("cpu"), None,
                            torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(KeyError, match="no optimizer named 'x'"):
        ctx.update(torch.zeros((), requires_grad=True), "x")


# ---------------------------------------------------------------- bad input


def test_resuming_a_different_model_names_the_file_and_keys(diabetes, tmp_path):
    data = diabetes[0]
    fit(mlp(), data, mse_loss, steps=3, batch_size=32, ckpt_dir=tmp_path, progress=False)
    other = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    with pytest.raises(CheckpointError) as err:
        fit(other, data, mse_loss, steps=6, batch_size=32, ckpt_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / "last.pt") in msg
    assert "0.weight: checkpoint (32, 10) vs model (16, 10)" in msg and "missing from the checkpoint: 2.weight" in msg
    with pytest.raises(CheckpointError, match="seed=0, this run has seed=1"):
        fit(mlp(), data, mse_loss, steps=6, batch_size=32, ckpt_dir=tmp_path, seed=1, progress=False)


def test_bad_arguments_are_refused_clearly(diabetes, tmp_path):
    data = diabetes[0]
    with pytest.raises(ValueError, match="350 items, fewer than batch_size=400"):
        fit(mlp(), data, mse_loss, steps=1, batch_size=400, progress=False)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        fit(mlp(), data, mse_loss, steps=0, batch_size=8, progress=False)
    with pytest.raises(TypeError, match="exactly one of"):
        fit(mlp(), data, steps=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="no ckpt_dir"):
        fit(mlp(), data, mse_loss, steps=1, batch_size=8, ckpt_every=5, progress=False)
    with pytest.raises(ValueError, match="reduce it to a scalar"):
        fit(mlp(), data, lambda m, b: (m(b[0]) - b[1]) ** 2, steps=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="not the model's"):
        fit(mlp(), data, mse_loss, steps=1, batch_size=8, optimizer=torch.optim.SGD(mlp().parameters(), 0.1))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")


def test_pick_device(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("VOICEBOOK_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    monkeypatch.delenv("VOICEBOOK_DEVICE")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="is_available"):
            pick_device("cuda")


def test_history_plots(diabetes):
    import matplotlib

    matplotlib.use("Agg")
    history = fit(mlp(), diabetes[0], mse_loss, steps=20, batch_size=32, progress=False, log_every=5)
    assert history.series("loss")[0] == [5, 10, 15, 20]
    assert plot_history(history).get_xlabel() == "step"
    assert json.loads(json.dumps(history.to_dict())) == history.to_dict()


# ---------------------------------------------------------------- subprocesses: SIGKILL and torchrun


def run_script(*args, **kwargs):
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_parameters(tmp_path):
    ckpt = tmp_path / "ckpt"
    cmd = [sys.executable, SCRIPT, "--ckpt-dir", ckpt, "--out", tmp_path / "killed.pt", "--sleep", 0.1]
    victim = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reference = subprocess.Popen(list(map(str, [sys.executable, SCRIPT, "--out", tmp_path / "reference.pt"])))
    try:  # the uninterrupted reference runs meanwhile (the victim mostly sleeps)
        deadline = time.time() + 60
        while not (ckpt / "last.pt").exists() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert victim.poll() is None, f"the run ended before it could be killed: {victim.stderr.read()}"
        assert (ckpt / "last.pt").exists(), "no checkpoint within 60 s"
        victim.send_signal(signal.SIGKILL)
        assert reference.wait(timeout=120) == 0
    finally:
        for p in (victim, reference):
            p.kill()
            p.wait()
    killed_at = torch.load(ckpt / "last.pt", weights_only=True)["step"]
    print(f"killed after the checkpoint of step {killed_at}")
    assert 5 <= killed_at < 40 and not (tmp_path / "killed.pt").exists()
    run_script("--ckpt-dir", ckpt, "--out", tmp_path / "resumed.pt")
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    reference = torch.load(tmp_path / "reference.pt", weights_only=True)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference), f"differs after resuming at {killed_at}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["loss_fn", "step_fn"])
def test_torchrun_with_two_processes(tmp_path, mode):
    """loss_fn trains through DistributedDataParallel, step_fn through ctx.update's all-reduce."""
    torchrun = Path(sys.executable).with_name("torchrun")
    ckpt, out = tmp_path / "ckpt", tmp_path / "ddp.pt"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", SCRIPT, "--ckpt-dir", ckpt, "--out", out, "--steps", 30]
    cmd += ["--step-fn"] if mode == "step_fn" else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(list(map(str, cmd)), check=True, capture_output=True, text=True, timeout=180, env=env)
    ranks = [torch.load(f"{out}.rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert sorted(p.name for p in ckpt.iterdir()) == ["history.json", "last.pt"]
    last = torch.load(ckpt / "last.pt", weights_only=True)
    assert last["step"] == 30 and last["meta"]["world_size"] == 2 and len(last["rng"]) == 2
    assert all(torch.equal(last["model"][k], ranks[0][k]) for k in ranks[0])
    losses = [e["loss"] for e in last["history"]["train"]]
    assert losses[-1] < 0.8 * losses[0], losses
