"""A small training run for tests/test_train.py to kill, resume and launch under torchrun.

A dropout MLP regresses a fixed random teacher function. Randomness is drawn from every
source a resume must restore: torch (dropout, input jitter in ``__getitem__``), numpy (label
noise in the loss) and python ``random`` (a loss weight). The final parameters are saved to
``--out`` (``--out`` + ``.rank<r>.pt`` per rank under torchrun), the history beside them.

    python tests/train_script.py --ckpt-dir CK --out params.pt [--steps 40] [--sleep 0.05]
    torchrun --standalone --nproc_per_node=2 tests/train_script.py --ckpt-dir CK --out params.pt [--step-fn]
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch
from torch import nn

from voicebook.train import fit, seed_everything


class Teacher(torch.utils.data.Dataset):
    """``n`` items ``(x, y)``: x ``(8,)`` standard normal (+ fresh jitter), y ``(1,)``."""

    def __init__(self, n: int = 50):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, 8, generator=g)
        w = torch.randn(8, 1, generator=g)
        self.y = torch.tanh(self.x @ w) + 0.5 * self.x[:, :1] ** 2

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.01 * torch.randn(8), self.y[i]


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt-dir", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ckpt-every", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step-fn", action="store_true", help="train through step_fn and ctx.update instead")
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per step, so a test can kill mid-run")
    args = ap.parse_args()
    torch.set_num_threads(1)

    def loss_fn(model, batch):
        x, y = batch
        time.sleep(args.sleep)
        y = y + torch.from_numpy(np.random.normal(0, 0.01, size=tuple(y.shape)).astype(np.float32))
        weight = 1.0 + 0.01 * random.random()
        return weight * nn.functional.mse_loss(model(x), y)

    def step_fn(model, batch, ctx):
        with ctx.autocast():
            loss = loss_fn(model, batch)
        ctx.update(loss)
        return {"loss": loss}

    seed_everything(args.seed)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.5)
    how = {"step_fn": step_fn} if args.step_fn else {"loss_fn": loss_fn}
    history = fit(model, Teacher(), **how, steps=args.steps, batch_size=args.batch_size, optimizer=opt,
                  scheduler=sched, ckpt_dir=args.ckpt_dir, ckpt_every=args.ckpt_every if args.ckpt_dir else 0,
                  seed=args.seed, device="cpu", progress=False, log_every=5)
    out = args.out if int(os.environ.get("WORLD_SIZE", 1)) == 1 else f"{args.out}.rank{os.environ['RANK']}.pt"
    torch.save(model.state_dict(), out)
    with open(out + ".history.json", "w") as f:
        json.dump(history.to_dict(), f)


if __name__ == "__main__":
    main()
