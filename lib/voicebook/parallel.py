"""Train independent models side by side, one worker process each (several on one GPU).

A chapter that trains many small models one after another (chapter 1: 10 systems x 3 seeds)
leaves a GPU mostly idle: each step of a small LSTM is a few hundred short kernel launches, and
Python issues them one at a time. :func:`train_in_workers` runs such trainings in ``workers``
spawned processes at once, each with its own CUDA context; on a CPU it splits the cores.

It returns nothing: ``fn`` must save what it trains (through ``fit``'s ``ckpt_dir``), so that
the chapter's own, later call of ``fn(*job)`` finds the finished run and only loads it (its
numbers are then those of the worker's run; on a CPU, with the same number of threads, they are
bit-for-bit those of training in the chapter's process: tested). With ``workers <= 1`` it does
nothing and the chapter trains in its own process, as before.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["train_in_workers"]

_FN: Callable | None = None


def _start_worker(payload: bytes, threads: int) -> None:
    """In each worker: the shared function (tensors mapped to the CPU) and a thread budget."""
    global _FN
    torch.set_num_threads(threads)
    # An in-memory hand-over between this package's own processes, not a file read from disk:
    # it carries a function and datasets, so it cannot be weights_only.
    _FN = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


def _run_job(job: tuple) -> tuple:
    _FN(*job)
    return job


def train_in_workers(fn: Callable, jobs: Sequence[tuple], *, workers: int, threads: int | None = None,
                     desc: str = "training in workers") -> None:
    """Call ``fn(*job)`` for every job in ``workers`` spawned processes; a bar counts jobs done.

    Args:
        fn: a module-level function, or a ``functools.partial`` of one, that trains one model and
            checkpoints it; its bound data (datasets, a frozen encoder) are sent to each worker
            once, with any GPU tensors moved to the CPU (``fit`` moves the model to its device).
        jobs: argument tuples, e.g. ``[("autovc", (32, 8), seed), ...]``; independent of each
            other (a job that needs another's result goes in a later call).
        workers: processes at once, at most one per CPU core (each needs one to issue its
            GPU launches); ``<= 1`` (or fewer than 2 jobs) does nothing.
        threads: torch threads per worker (default: the CPU cores shared out, at least 1).

    Raises RuntimeError naming the job when one fails (the other workers are stopped).
    """
    jobs = [tuple(j) for j in jobs]
    workers = min(workers, len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    buf = io.BytesIO()
    torch.save(fn, buf)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                             initargs=(buf.getvalue(), threads)) as pool:
        futures = {pool.submit(_run_job, job): job for job in jobs}
        with tqdm(total=len(jobs), desc=f"{desc} ({workers} processes)") as bar:
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as err:
                    for f in futures:
                        f.cancel()
                    raise RuntimeError(f"{desc}: job {futures[future]} failed in its worker: {err}") from err
                bar.update(1)
