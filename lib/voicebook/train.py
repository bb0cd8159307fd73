"""The one training loop every chapter uses.

:func:`fit` trains a model for a number of optimizer steps and returns a :class:`History`.
It picks the device, runs mixed precision on CUDA, seeds everything, shows a progress bar,
evaluates every few steps, writes atomic checkpoints and resumes from the last one, and runs
data-parallel under ``torchrun``. Its promise: a run that is killed and started again with the
same ``ckpt_dir`` ends with exactly the parameters of a run that was never interrupted (on CPU;
CUDA kernels are not all bitwise deterministic). Three things make that hold:

* the data order is a pure function of ``(seed, epoch)`` (:class:`EpochSampler`), and a
  resumed run starts mid-epoch at the batch after the checkpoint;
* the RNG states (python ``random``, numpy, torch CPU and CUDA) of every rank are saved in
  the checkpoint and restored, so dropout and augmentation draw the same numbers;
* the DataLoader draws its worker seeds from its own generator, never from the global one.

Two ways to say what one step is.

``loss_fn(model, batch) -> loss`` or ``(loss, {"name": value})``: the usual case. ``fit``
runs it under autocast, backpropagates, clips, steps the one optimizer and the scheduler.
Under ``torchrun`` ``model`` is the DistributedDataParallel wrapper: call ``model(...)``.

``step_fn(model, batch, ctx) -> {"name": value}``: for GANs and anything with several
optimizers. The step does its own forward passes inside ``ctx.autocast()`` and calls
``ctx.update(loss, "name")`` once per optimizer it wants to step: that zeroes that
optimizer's gradients, backpropagates (scaled under fp16), averages the gradients across
ranks under ``torchrun``, clips and steps. A CycleGAN with a generator and a discriminator::

    def cyclegan_step(model, batch, ctx):
        x, y = batch
        with ctx.autocast():
            fake_y, fake_x = model.g_xy(x), model.g_yx(y)
            d_loss = model.d_loss(x, y, fake_x.detach(), fake_y.detach())
        ctx.update(d_loss, "d")                  # steps only the D optimizer
        with ctx.autocast():
            g_loss = model.g_loss(x, y, fake_x, fake_y)  # D's fresh weights judge the fakes
        ctx.update(g_loss, "g")                  # zeroes G's grads first, steps only G
        return {"d": d_loss, "g": g_loss}

    opts = {"g": Adam(gen_params, 2e-4), "d": Adam(disc_params, 1e-4)}
    history = fit(model, pairs, step_fn=cyclegan_step, optimizer=opts, steps=2000, batch_size=8)

Schedulers (one, or a dict) are stepped once per step, after the step. Log the same keys
every step (the logged means are averaged across ranks).

Limits. Exact resume covers randomness drawn in the main process; what DataLoader workers
draw (``num_workers > 0``) is seeded per ``(seed, epoch)`` but not restored mid-epoch. Under
fp16 each optimizer may be updated at most once per step. With ``step_fn`` under torchrun the
model is not wrapped in DDP: gradients are averaged by ``ctx.update``, buffers (BatchNorm
statistics) stay per rank and rank 0's are saved.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .files import atomic_path, atomic_write_json

__all__ = [
    "CheckpointError", "EpochSampler", "History", "StepContext", "deterministic_kernels", "fit",
    "load_checkpoint", "pick_device", "plot_history", "rng_state", "save_checkpoint", "seed_everything",
    "set_rng_state", "to_device", "unwrap",
]

FORMAT = "voicebook.checkpoint/1"
LAST, BEST, HISTORY = "last.pt", "best.pt", "history.json"

if os.environ.get("VOICEBOOK_DETERMINISTIC") == "1":   # cuBLAS reads it when it starts: see deterministic_kernels
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the model or the run."""


# ---------------------------------------------------------------- devices, seeds, ranks


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else ``$VOICEBOOK_DEVICE``, else cuda or cpu.

    Raises ``ValueError`` if CUDA is asked for and ``torch.cuda.is_available()`` is false.
    """
    prefer = prefer if prefer is not None else os.environ.get("VOICEBOOK_DEVICE") or None
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch.cuda.is_available() is False; use 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator, torch on CPU and every CUDA device.

    With ``$VOICEBOOK_DETERMINISTIC=1`` it also turns on :func:`deterministic_kernels`.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if os.environ.get("VOICEBOOK_DETERMINISTIC") == "1":
        deterministic_kernels()


def deterministic_kernels() -> None:
    """Ask for CUDA runs that repeat bit for bit, at some cost in speed.

    On the CPU voicebook's runs repeat already; on a GPU some kernels (atomic adds in scatter and
    index backward passes, cuBLAS' split reductions, cuDNN's autotuner) may differ run to run.
    This picks deterministic algorithms (an op that has none warns instead of failing), turns
    the cuDNN autotuner off, and sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` if unset: cuBLAS reads
    it when it starts, so set ``VOICEBOOK_DETERMINISTIC=1`` before the first CUDA matrix product
    (for the book: in the environment of ``make book``; ``voicebook.train`` reads it on import).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the variables torchrun sets; ``(0, 1, 0)`` without it."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def _init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group torchrun set up (nccl on CUDA, gloo on CPU); -> (rank, world, device)."""
    rank, world, local = dist_env()
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size(), device


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel and/or ``torch.compile`` wrapper."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts, nested) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# ---------------------------------------------------------------- RNG states


def rng_state(device: torch.device | None = None) -> dict:
    """This process's RNG states as tensors and plain lists (loadable with ``weights_only=True``).

    Keys: ``torch`` (uint8 tensor), ``cuda`` (uint8 tensor of ``device``, or None), ``numpy``
    and ``random`` (dicts of tensors, ints, floats and lists).
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = device is not None and device.type == "cuda"
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if cuda else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "random": {"version": version, "state": list(internal), "gauss": gauss_next},
    }


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore states saved by :func:`rng_state` (the CUDA one only if ``device`` is CUDA)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    r = state["random"]
    random.setstate((r["version"], tuple(r["state"]), r["gauss"]))


def _mix(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed from ``(seed, epoch)``."""
    return int(np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(1, np.uint64)[0] >> 1)


# ---------------------------------------------------------------- history


@dataclass
class History:
    """What a run logged. ``train``: ``{"step", "loss", ...}`` means over each logging window;
    ``eval``: ``{"step", metric: value}`` from ``eval_fn``; ``best``: ``{"metric", "value",
    "step"}`` of the best evaluation when ``keep_best`` is set. Steps count optimizer steps."""

    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    best: dict | None = None

    def to_dict(self) -> dict:
        return {"train": [dict(e) for e in self.train], "eval": [dict(e) for e in self.eval], "best": self.best}

    @classmethod
    def from_dict(cls, d: Mapping) -> "History":
        return cls(list(d.get("train", [])), list(d.get("eval", [])), d.get("best"))

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of ``key``, from the training log, or else the evaluations."""
        for log in (self.train, self.eval):
            rows = [e for e in log if key in e]
            if rows:
                return [e["step"] for e in rows], [e[key] for e in rows]
        raise KeyError(f"{key!r} was never logged; logged keys: {sorted(self.keys())}")

    def keys(self) -> set[str]:
        return {k for log in (self.train, self.eval) for e in log for k in e} - {"step"}


def plot_history(history: History, keys: list[str] | None = None, ax=None, logy: bool = False):
    """Plot logged values against the step (all keys unless ``keys``); returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
    for key in keys or sorted(history.keys()):
        steps, values = history.series(key)
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log" if logy else "linear")
    ax.legend()
    return ax


# ---------------------------------------------------------------- checkpoints


def _named(obj) -> dict:
    """None -> {}, one object -> {"main": obj}, a mapping -> a dict of it."""
    if obj is None:
        return {}
    return dict(obj) if isinstance(obj, Mapping) else {"main": obj}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer=None, scheduler=None,
                    *, step: int = 0, **extra) -> Path:
    """Write model (unwrapped), optimizer(s), scheduler(s), ``step`` and ``extra`` atomically.

    ``optimizer`` / ``scheduler``: one object or a dict of them by name. ``extra`` values must
    be tensors, numbers, strings, None, or lists/dicts of them, so that the file loads with
    ``torch.load(path, weights_only=True)``. A crash mid-write leaves the old file intact.
    """
    ckpt = {"format": FORMAT, "step": int(step), "model": unwrap(model).state_dict(),
            "optimizers": {k: o.state_dict() for k, o in _named(optimizer).items()},
            "schedulers": {k: s.state_dict() for k, s in _named(scheduler).items()},
            **extra}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, optimizer=None,
                    scheduler=None, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` and load it into whatever is given.

    Returns the checkpoint dict (``step``, ``model``, ``optimizers``, ... and the extras).
    ``path`` may also hold a plain ``state_dict``. Raises :class:`CheckpointError` naming the
    file when it is unreadable or does not fit (missing, unexpected or reshaped keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(e).__name__}: {e})") from e
    if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
        if not (isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())):
            raise CheckpointError(f"{path}: neither a voicebook checkpoint nor a state_dict")
        ckpt = {"format": FORMAT, "step": 0, "model": ckpt}
    if model is not None:
        _load_model(path, unwrap(model), ckpt["model"])
    _load_named(path, "optimizer", _named(optimizer), ckpt.get("optimizers", {}))
    _load_named(path, "scheduler", _named(scheduler), ckpt.get("schedulers", {}))
    return ckpt


def _load_model(path: Path, model: nn.Module, state: Mapping) -> None:
    """``model.load_state_dict(state)``, or a CheckpointError listing what does not match."""
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    reshaped = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                for k, v in mine.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or reshaped:
        def few(xs):
            return ", ".join(xs[:6]) + (f" (+{len(xs) - 6} more)" if len(xs) > 6 else "")
        parts = [f"{name}: {few(xs)}" for name, xs in (("missing from the checkpoint", missing),
                 ("not in the model", unexpected), ("different shapes", reshaped)) if xs]
        raise CheckpointError(f"{path} does not fit this {type(model).__name__}; " + "; ".join(parts)
                              + ". Use the model it was saved from, or (for fit) a fresh ckpt_dir.")
    model.load_state_dict(state)


def _load_named(path: Path, what: str, objs: dict, states: Mapping) -> None:
    for name, obj in objs.items():
        if name not in states:
            raise CheckpointError(f"{path} has no {what} state named {name!r} (it has {sorted(states)})")
        try:
            obj.load_state_dict(states[name])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: its {what} state {name!r} does not fit: {e}") from e


# ---------------------------------------------------------------- data order


class EpochSampler(Sampler[int]):
    """This rank's indices for one epoch: a pure function of ``(seed, epoch, rank, world)``.

    Each epoch is a fresh permutation of ``range(n)`` (or the identity if ``shuffle`` is
    false), cut to a multiple of ``world`` and dealt round-robin to the ranks, so each rank
    sees ``n // world`` items. ``set_epoch(epoch, start)`` picks the epoch and skips its
    first ``start`` items of this rank (how a resumed run lands mid-epoch).
    """

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.per_rank = n // world
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def indices(self, epoch: int) -> list[int]:
        """All of this rank's indices of ``epoch``, in order."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
        else:
            order = torch.arange(self.n)
        return order[: self.per_rank * self.world][self.rank :: self.world].tolist()

    def __iter__(self):
        return iter(self.indices(self.epoch)[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from the seed torch gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------- one step


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"]]


def _allreduce_grads(params: list[torch.Tensor], world: int) -> None:
    """Average the gradients of ``params`` over the ranks (missing ones count as zeros)."""
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1).float() for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


@dataclass
class StepContext:
    """What a ``step_fn`` gets besides the model and batch.

    ``step``: the step being taken (1-based); ``optimizers``: by name; ``device``.
    ``autocast()``: the mixed-precision context for forward passes (a no-op in fp32; CPU
    autocast with amp="bf16" on a CPU).
    ``update(loss, name)``: zero that optimizer's grads, backward, sync, clip, step.
    """

    step: int
    optimizers: dict
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    grad_clip: float | None = None
    world: int = 1
    sync: bool = False  # average grads by hand (step_fn under torchrun: there is no DDP wrapper)
    updates: int = 0

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, loss: torch.Tensor, name: str | None = None, *, retain_graph: bool = False) -> None:
        """One optimizer step on scalar ``loss`` for optimizer ``name`` (None: the only one)."""
        opt = self._optimizer(name)
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(retain_graph=retain_graph)
        params = _params(opt)
        if self.sync:
            _allreduce_grads(params, self.world)
        if self.grad_clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)
        self.updates += 1

    def _optimizer(self, name: str | None) -> torch.optim.Optimizer:
        if name is None and len(self.optimizers) == 1:
            return next(iter(self.optimizers.values()))
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; fit was given {sorted(self.optimizers)}")
        return self.optimizers[name]


def _split_loss(out) -> tuple[torch.Tensor, Mapping]:
    """``loss_fn``'s result -> ``(scalar loss, logs)``, with errors that say what was wrong."""
    loss, logs = (out[0], out[1]) if isinstance(out, (tuple, list)) and len(out) == 2 else (out, {})
    if not isinstance(loss, torch.Tensor) or not isinstance(logs, Mapping):
        raise TypeError(f"loss_fn must return a scalar tensor or (loss, dict); got {type(out).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn returned a loss of shape {tuple(loss.shape)}; reduce it to a scalar (e.g. .mean())")
    if not loss.requires_grad:
        raise ValueError("the loss does not require grad: did loss_fn detach it or run under torch.no_grad()?")
    return loss.reshape(()), logs


class _Meter:
    """Sums of logged scalars over a window, kept on the device so logging costs no sync."""

    def __init__(self, device: torch.device):
        self.device, self.sums, self.n = device, {}, 0

    def add(self, logs: Mapping) -> None:
        for k, v in logs.items():
            if isinstance(v, torch.Tensor) and v.numel() != 1:
                raise ValueError(f"logged value {k!r} has shape {tuple(v.shape)}; log scalars only")
            v = v.detach().float().reshape(()) if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            v = v.to(self.device)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.n += 1

    def flush(self, world: int) -> dict[str, float]:
        """Window means (averaged over ranks too); resets the window."""
        if not self.n:
            return {}
        keys = sorted(self.sums)
        means = torch.stack([self.sums[k] for k in keys]) / self.n
        if world > 1:
            dist.all_reduce(means)
            means /= world
        self.sums, self.n = {}, 0
        return dict(zip(keys, means.tolist()))


# ---------------------------------------------------------------- fit


@dataclass
class _Run:
    """Everything one call of :func:`fit` carries between its helpers."""

    model: nn.Module  # what loss_fn / step_fn get: the DDP wrapper under torchrun (loss_fn mode)
    module: nn.Module  # the plain module: what is saved, evaluated and restored
    ctx: StepContext
    schedulers: dict
    loss_fn: Callable | None
    step_fn: Callable | None
    eval_fn: Callable | None
    steps: int
    eval_every: int
    log_every: int
    ckpt_dir: Path | None
    ckpt_every: int
    keep_best: str | None
    best_mode: str
    rank: int
    meta: dict
    history: History = field(default_factory=History)
    say: Callable = print

    @property
    def world(self) -> int:
        return self.ctx.world


def _check_args(steps, batch_size, loss_fn, step_fn, eval_fn, ckpt_dir, ckpt_every, eval_every,
                log_every, keep_best, best_mode) -> None:
    """Raise ValueError/TypeError for arguments that cannot make a run."""
    for name, v, least in (("steps", steps, 1), ("batch_size", batch_size, 1), ("ckpt_every", ckpt_every, 0),
                           ("eval_every", eval_every, 0), ("log_every", log_every, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    if (loss_fn is None) == (step_fn is None):
        raise TypeError("pass exactly one of loss_fn(model, batch) and step_fn(model, batch, ctx)")
    if ckpt_every and ckpt_dir is None:
        raise ValueError(f"ckpt_every={ckpt_every} but no ckpt_dir to write checkpoints into")
    if keep_best is not None and eval_fn is None:
        raise ValueError(f"keep_best={keep_best!r} needs an eval_fn that returns it")
    if best_mode not in ("min", "max"):
        raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")


def _check_dataset(dataset, batch_size: int, world: int) -> int:
    """Number of items; raises if the dataset has no length or too few items for one batch."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"fit needs a map-style dataset (__len__ and __getitem__), got {type(dataset).__name__}")
    n = len(dataset)
    if n // world < batch_size:
        per = f" per process ({world} processes share {n})" if world > 1 else ""
        raise ValueError(f"the dataset has {n} items, fewer than batch_size={batch_size}{per}; "
                         "lower batch_size or add data")
    return n


def _amp(amp, device: torch.device) -> torch.dtype | None:
    """``amp`` ('auto', 'bf16', 'fp16', 'off'/None/False) -> autocast dtype, None for fp32."""
    if amp not in ("auto", "bf16", "fp16", "off", None, False):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")
    if amp in ("off", None, False):
        return None
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16          # CPU autocast: what the GPU's bf16 path computes in lower precision, roughly
    if device.type != "cuda":
        if amp != "auto":
            warnings.warn(f"amp={amp!r} is only used on CUDA (and 'bf16' on the CPU); training in float32 on {device}",
                          stacklevel=3)
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _optimizers(module: nn.Module, optimizer, lr: float, several: bool) -> dict:
    """The optimizers by name (default: one Adam over all parameters), checked against the model."""
    opts = _named(optimizer) or {"main": torch.optim.Adam(module.parameters(), lr=lr)}
    if not several and len(opts) != 1:
        raise ValueError(f"loss_fn takes one optimizer, got {sorted(opts)}; use step_fn for several")
    mine = {id(p) for p in module.parameters()}
    for name, opt in opts.items():
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer {name!r} is a {type(opt).__name__}, not a torch.optim.Optimizer")
        if any(id(p) not in mine for p in _params(opt)):
            raise ValueError(f"optimizer {name!r} holds parameters that are not the model's "
                             "(was it built for another copy of the model?)")
    return opts


def _schedulers(scheduler) -> dict:
    scheds = _named(scheduler)
    for name, s in scheds.items():
        if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise TypeError(f"scheduler {name!r}: ReduceLROnPlateau needs a metric; step it from eval_fn instead")
    return scheds


def _resume(run: _Run, seed: int) -> int:
    """Load ``ckpt_dir/last.pt`` if there is one; -> the number of steps already done."""
    if run.rank == 0:
        for stale in run.ckpt_dir.glob(".*.tmp.*"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
    path = run.ckpt_dir / LAST
    if not path.exists():
        return 0
    ckpt = load_checkpoint(path, run.module, run.ctx.optimizers, run.schedulers)
    old = ckpt.get("meta", {})
    for key in ("seed", "batch_size", "n_items"):
        if key in old and old[key] != run.meta[key]:
            raise CheckpointError(f"{path} was written by a run with {key}={old[key]}, this run has "
                                  f"{key}={run.meta[key]}: resuming would not repeat its data order. "
                                  f"Use {key}={old[key]}, or a fresh ckpt_dir.")
    if ckpt.get("scaler"):
        run.ctx.scaler.load_state_dict(ckpt["scaler"])
    run.history = History.from_dict(ckpt.get("history", {}))
    rngs = ckpt.get("rng") or []
    if len(rngs) == run.world:
        set_rng_state(rngs[run.rank], run.ctx.device)
    else:
        warnings.warn(f"{path} holds RNG states of {len(rngs)} processes, this run has {run.world}; reseeding")
        seed_everything(seed + run.rank + 7919 * int(ckpt["step"]))
    done = int(ckpt["step"]) >= run.steps
    run.say(f"{path} holds a finished run ({ckpt['step']} steps): loading it" if done
            else f"resuming from {path} at step {ckpt['step']} of {run.steps}")
    return int(ckpt["step"])


def _check_ranks_agree(run: _Run) -> None:
    """Raise if the ranks' parameters differ (a loss_fn that bypassed the DDP wrapper's forward)."""
    total = torch.stack([p.detach().double().sum() for p in run.module.parameters()]).sum()
    both = torch.stack([total, -total])
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    if both[0] != -both[1]:
        raise RuntimeError("the ranks' parameters differ: under torchrun loss_fn must call model(...) "
                           "(the DistributedDataParallel forward), not its submodules")


def _checkpoint(run: _Run, step: int, name: str) -> None:
    """Every rank hands over its RNG state; rank 0 writes ``ckpt_dir/name`` atomically."""
    mine = rng_state(run.ctx.device)
    rngs = [mine]
    if run.world > 1:
        _check_ranks_agree(run)
        rngs = [None] * run.world
        dist.all_gather_object(rngs, mine)
    if run.rank != 0:
        return
    save_checkpoint(run.ckpt_dir / name, run.module, run.ctx.optimizers, run.schedulers, step=step,
                    scaler=run.ctx.scaler.state_dict(), rng=rngs, history=run.history.to_dict(), meta=run.meta)
    if name == LAST:
        run.history.save(run.ckpt_dir / HISTORY)


def _evaluate(run: _Run, step: int) -> None:
    """Rank 0 runs ``eval_fn(module)`` in eval mode without grad; every rank logs the result."""
    metrics = None
    if run.rank == 0:
        modes = {m: m.training for m in run.module.modules()}
        run.module.eval()
        try:
            with torch.no_grad():
                raw = run.eval_fn(run.module)
        finally:
            for m, training in modes.items():
                m.train(training)
        if not isinstance(raw, Mapping):
            raise TypeError(f"eval_fn must return a dict of numbers, got {type(raw).__name__}")
        try:
            metrics = {k: float(v) for k, v in raw.items()}
        except (TypeError, ValueError) as e:
            raise TypeError(f"eval_fn must return a dict of numbers: {e}") from e
    if run.world > 1:
        box = [metrics]
        dist.broadcast_object_list(box, src=0)
        metrics = box[0]
    run.history.eval.append({"step": step, **metrics})
    if run.keep_best is not None:
        _keep_best(run, step, metrics)


def _keep_best(run: _Run, step: int, metrics: dict) -> None:
    if run.keep_best not in metrics:
        raise KeyError(f"keep_best={run.keep_best!r} but eval_fn returned only {sorted(metrics)}")
    value, best = metrics[run.keep_best], run.history.best
    if best is None or (value < best["value"] if run.best_mode == "min" else value > best["value"]):
        run.history.best = {"metric": run.keep_best, "value": value, "step": step}
        if run.ckpt_dir is not None:
            _checkpoint(run, step, BEST)


def _train_step(run: _Run, batch, step: int) -> Mapping:
    """One optimizer step (or one ``step_fn`` call) -> the values to log."""
    ctx = run.ctx
    ctx.step, ctx.updates = step, 0
    if run.step_fn is not None:
        logs = run.step_fn(run.model, batch, ctx)
        if not isinstance(logs, Mapping):
            raise TypeError(f"step_fn must return a dict of values to log, got {type(logs).__name__}")
    else:
        with ctx.autocast():
            loss, extra = _split_loss(run.loss_fn(run.model, batch))
        ctx.update(loss)
        logs = {"loss": loss, **extra}
    if ctx.updates:
        ctx.scaler.update()
    for s in run.schedulers.values():
        s.step()
    return logs


def _after_step(run: _Run, step: int, meter: _Meter) -> dict | None:
    """Log, evaluate and checkpoint when due, in that order; -> the logged means, if logged."""
    final = step == run.steps
    ckpt = run.ckpt_dir is not None and (final or (run.ckpt_every and step % run.ckpt_every == 0))
    logged = None
    if final or ckpt or (run.log_every and step % run.log_every == 0):
        logged = meter.flush(run.world)
        bad = {k: v for k, v in logged.items() if not np.isfinite(v)}
        if bad and not run.ctx.scaler.is_enabled():  # fp16 overflows are the scaler's to skip
            raise FloatingPointError(f"step {step}: {bad} is not finite; lower lr or set grad_clip")
        run.history.train.append({"step": step, **logged})
    if run.eval_fn is not None and (final or (run.eval_every and step % run.eval_every == 0)):
        _evaluate(run, step)
    if final and run.world > 1:
        _check_ranks_agree(run)
    if ckpt:
        _checkpoint(run, step, LAST)
    return logged


def _loop(run: _Run, loader: DataLoader, sampler: EpochSampler, start: int, batch_size: int, bar) -> None:
    """Train from step ``start`` to ``run.steps``, an epoch at a time, landing mid-epoch on resume."""
    per_epoch = sampler.per_rank // batch_size
    meter, step = _Meter(run.ctx.device), start
    run.module.train()
    while step < run.steps:
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch, start=offset * batch_size)
        loader.generator.manual_seed(_mix(sampler.seed + 1, epoch))
        for batch in loader:
            step += 1
            meter.add(_train_step(run, to_device(batch, run.ctx.device), step))
            logged = _after_step(run, step, meter)
            bar.update(1)
            if logged:
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(logged.items())[:4]}, refresh=False)
            if step >= run.steps:
                break


def fit(model: nn.Module, dataset, loss_fn: Callable | None = None, *, steps: int, batch_size: int,
        step_fn: Callable | None = None, optimizer=None, lr: float = 1e-3, scheduler=None,
        collate_fn: Callable | None = None, eval_fn: Callable | None = None, eval_every: int = 0,
        ckpt_dir: str | os.PathLike | None = None, ckpt_every: int | None = None, keep_best: str | None = None,
        best_mode: str = "min", seed: int = 0, device: str | torch.device | None = None, amp="auto",
        grad_clip: float | None = None, num_workers: int = 0, log_every: int = 10, progress: bool = True,
        desc: str = "train", find_unused_parameters: bool = False) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps; -> its :class:`History`.

    model: moved to the device and left in train mode. dataset: map-style, ``dataset[i]`` an
        item that ``collate_fn`` (default: stacking) turns into a batch.
    loss_fn(model, batch) -> scalar loss, or (loss, {name: scalar}) to log too. Or instead
    step_fn(model, batch, ctx) -> {name: scalar}: does its own updates (see the module doc).
    steps: total steps of the run, those done before a resume included. batch_size: per process.
    optimizer: one, or a dict by name (step_fn); default Adam(lr). scheduler: one or a dict,
        stepped every step.
    eval_fn(module) -> {metric: number}: called every ``eval_every`` steps (0: only at the end)
        and at the end, in eval mode under no_grad, on rank 0; logged into ``History.eval``.
    ckpt_dir: where ``last.pt`` (every ``ckpt_every`` steps and at the end; by default every
        tenth of the run, at least 50 steps apart, so a killed run loses little), ``history.json``
        and, with ``keep_best`` (a metric of eval_fn; ``best_mode`` 'min' or 'max'), ``best.pt``
        go. If it already holds ``last.pt`` the run resumes from it.
    seed: seeds everything (rank r uses seed + r) and fixes the data order.
    device: default :func:`pick_device`. amp: 'auto' (bf16 on CUDA, off on CPU), 'bf16' (CUDA or
        CPU autocast; on the CPU it lets the tests try the GPU's mixed-precision path; oneDNN
        has no bf16 LSTM without AVX-512, so there an LSTM needs bf16 input),
        'fp16' (CUDA, with a GradScaler) or 'off'. grad_clip: max global grad norm, or None.
    log_every: steps per logged mean (also logged at checkpoints and at the end).
    progress: show a tqdm bar (rank 0 only). Under torchrun (WORLD_SIZE > 1) each process
    trains on its shard; gradients are averaged (DDP for loss_fn, all-reduce for step_fn).
    """
    if ckpt_every is None:
        ckpt_every = 0 if ckpt_dir is None or not isinstance(steps, int) else max(50, -(-steps // 10))
    _check_args(steps, batch_size, loss_fn, step_fn, eval_fn, ckpt_dir, ckpt_every, eval_every,
                log_every, keep_best, best_mode)
    rank, world, device = _init_distributed(pick_device(device))
    n_items = _check_dataset(dataset, batch_size, world)
    seed_everything(seed + rank)
    module = unwrap(model).to(device)
    amp_dtype = _amp(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    opts = _optimizers(module, optimizer, lr, several=step_fn is not None)
    ctx = StepContext(0, opts, device, amp_dtype, scaler, grad_clip, world, sync=world > 1 and step_fn is not None)
    quiet = not progress or rank != 0
    run = _Run(module, module, ctx, _schedulers(scheduler), loss_fn, step_fn, eval_fn, steps, eval_every,
               log_every, Path(ckpt_dir) if ckpt_dir is not None else None, ckpt_every, keep_best, best_mode,
               rank, {"seed": seed, "batch_size": batch_size, "n_items": n_items, "world_size": world},
               say=(lambda msg: None) if quiet else tqdm.write)
    start = _resume(run, seed) if run.ckpt_dir is not None else 0
    if world > 1:
        if step_fn is None:
            run.model = nn.parallel.DistributedDataParallel(
                module, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters)
        else:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)  # what DDP does on construction
    sampler = EpochSampler(n_items, seed=seed, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, collate_fn=collate_fn,
                        num_workers=num_workers, pin_memory=device.type == "cuda", generator=torch.Generator(),
                        worker_init_fn=_seed_worker, persistent_workers=num_workers > 0)
    with tqdm(total=steps, initial=min(start, steps), desc=desc, disable=quiet, dynamic_ncols=True) as bar:
        _loop(run, loader, sampler, start, batch_size, bar)
    return run.history
