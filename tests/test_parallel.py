"""voicebook.parallel: chapter 1's systems trained in worker processes end where training them
in this process does, and the chapter's later call only loads them."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from voicebook.models.cycle_autovc import MelCrops, system_name, train_system
from voicebook.models.speaker_encoder import SpeakerEncoder
from voicebook.parallel import train_in_workers

JOBS = [("autovc", (4, 4), 0), ("cycle", (4, 4), 1), ("cycle-nostyle", (8, 2), 2)]


def tiny_system(ckpt_dir):
    g = torch.Generator().manual_seed(0)
    mels = [torch.randn(40, 80, generator=g) for _ in range(6)]
    speakers = ["a", "a", "b", "b", "c", "c"]
    emb = {s: torch.nn.functional.normalize(torch.randn(256, generator=g), dim=0) for s in "abc"}
    torch.manual_seed(0)
    encoder = SpeakerEncoder(hidden=16, dim_emb=256, layers=1)
    data = dict(crops=MelCrops(mels, speakers, emb, frames=16, seed=0),
                large=MelCrops(mels, speakers, emb, frames=16, seed=0, with_target=True),
                few_shot=MelCrops(mels[:4], speakers[:4], emb, frames=16, seed=0, with_target=True))
    return partial(train_system, data=data, encoder=encoder, width=1 / 32, autovc_steps=4, cycle_steps=(2, 2),
                   ckpt_dir=ckpt_dir, batch_size=2, lr=1e-3, device="cpu", progress=False)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_workers_train_what_this_process_would_and_the_chapter_then_only_loads(tmp_path):
    par = tiny_system(tmp_path / "par")
    train_in_workers(par, JOBS, workers=2, threads=1)
    stamps = {j: (tmp_path / "par" / system_name(*j)).rglob("last.pt") for j in JOBS}
    stamps = {j: sorted((p, p.stat().st_mtime_ns) for p in paths) for j, paths in stamps.items()}
    assert all(len(s) == (1 if j[0] == "autovc" else 2) for j, s in stamps.items())   # cycle: two phases

    threads = torch.get_num_threads()
    torch.set_num_threads(1)                     # the workers' thread count: bit-for-bit on a CPU
    try:
        seq = tiny_system(tmp_path / "seq")
        for job in JOBS:
            trained, hist = seq(*job)
            loaded, hist_par = par(*job)
            for k, v in weights(trained).items():
                assert torch.equal(v, loaded.state_dict()[k]), (job, k)
            assert [h.train[-1]["loss"] for h in hist] == [h.train[-1]["loss"] for h in hist_par]
    finally:
        torch.set_num_threads(threads)
    for job, before in stamps.items():           # loading wrote no checkpoint again
        assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "par" / system_name(*job)).rglob("last.pt")) == before


@pytest.mark.slow
def test_fine_tuning_in_a_worker_starts_from_the_autovc_trained_before(tmp_path):
    par = tiny_system(tmp_path)
    train_in_workers(par, [("autovc", (4, 4), 0), ("autovc", (8, 2), 0)], workers=2, threads=1)
    train_in_workers(par, [("cycle-finetuned", (4, 4), 0), ("cycle", (4, 4), 0)], workers=2, threads=1)
    pretrained, tuned, scratch = par("autovc", (4, 4), 0)[0], par("cycle-finetuned", (4, 4), 0)[0], par("cycle", (4, 4), 0)[0]
    first = lambda m: m.state_dict()["encoder.convs.0.0.weight"]
    # fine-tuning moved the pre-trained weights a little (4 small steps); scratch started elsewhere
    assert (first(tuned.autovc) - first(pretrained)).abs().max() < (first(scratch.autovc) - first(pretrained)).abs().max()
    assert not torch.equal(first(tuned.autovc), first(pretrained))


@pytest.mark.slow
def test_a_failing_job_is_named(tmp_path):
    with pytest.raises(RuntimeError, match=r"job \('vq-vae', \(4, 4\), 0\) failed in its worker: kind must be one of"):
        train_in_workers(tiny_system(tmp_path), [("autovc", (4, 4), 1), ("vq-vae", (4, 4), 0)], workers=2, threads=1)


def test_one_worker_does_nothing(tmp_path):
    train_in_workers(tiny_system(tmp_path), JOBS, workers=1)
    assert not tmp_path.joinpath(system_name(*JOBS[0])).exists()
