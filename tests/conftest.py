"""Shared fixtures (speech-like test signals with a known F0, see helpers_signals.py; the smoke
runs of the chapters) and how the suite is shared out between pytest-xdist workers.

The suite runs in two worker processes (``-n 2`` in pyproject.toml; ``-n 0`` runs it in one).
Each worker gets its share of the cores (``OMP_NUM_THREADS``, which the chapter kernels and
torchrun children inherit). A work unit is a test module (with its module fixtures), or modules
that share an expensive session fixture (``SHARED_UNITS``). A chapter's smoke run is made once
per session by whichever worker asks first (``helpers_chapters.smoke_chapter``): its own module
and the book test share it. The chapter modules go first and the book test last.
"""

from __future__ import annotations

import os

import pytest

from helpers_chapters import smoke_chapter
from helpers_signals import speech_like

# The suite pins CPU behaviour (exact resume, bit-for-bit workers): on a machine with a GPU,
# ``fit`` would otherwise pick CUDA and bf16. VOICEBOOK_DEVICE=cuda runs it there on purpose.
os.environ.setdefault("VOICEBOOK_DEVICE", "cpu")

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# Work units (pytest-xdist's loadscope): a test module, so its module fixtures are made once;
# these modules share session fixtures too expensive to make on both workers, so they are one.
SHARED_UNITS = {"test_songs.py": "tiny songs", "test_vad.py": "tiny songs", "test_separation.py": "tiny songs"}
# Units start in this order: the chapters' smoke runs, longest first (measured; the book test
# waits for any still running elsewhere), then the other modules, then the book.
FIRST = ["test_chapter01.py", "test_chapter04.py", "test_chapter05.py", "test_chapter02.py", "test_chapter03.py",
         "test_chapter00.py"]
LAST = ["test_book.py"]


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_UNITS.get(module.rsplit("/", 1)[-1], module)

    return ModuleUnits(config, log)


def _rank(item: pytest.Item) -> int:
    """0, 1, ... for the modules in FIRST, then one rank for all others, then LAST."""
    name = item.path.name
    if name in FIRST:
        return FIRST.index(name)
    return len(FIRST) + (1 if name in LAST else 0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: a module's tests keep their order


def _smoke(name: str):
    """A session fixture: chapter ``name`` at preset=smoke, seed 0 -> ``(its folder, its metrics)``."""
    return pytest.fixture(scope="session", name=f"chapter{name[:2]}")(
        lambda tmp_path_factory: smoke_chapter(tmp_path_factory, name))


chapter00 = _smoke("00_voice_as_numbers")
chapter01 = _smoke("01_cycle_autovc")
chapter02 = _smoke("02_softgan_cyclegan_vc")
chapter03 = _smoke("03_multilingual_lstm_tts")
chapter04 = _smoke("04_singing_voice_separation")
chapter05 = _smoke("05_you_said_that")


@pytest.fixture(scope="session")
def speech22():
    """Speech-like clip at 22050 Hz: 0.6 s voiced (F0 100->200 Hz), noise burst, silence."""
    return speech_like(22050)


@pytest.fixture(scope="session")
def speech16():
    """The same clip generated at 16000 Hz."""
    return speech_like(16000)


@pytest.fixture(scope="session")
def tiny_songs(tmp_path_factory):
    """Generated songs of 4 s: two labelled, two karaoke, one test (voicebook.data.songs)."""
    from voicebook.data import songs

    saved = dict(songs.SIZES)
    songs.SIZES["tiny"] = {"labelled": 2, "karaoke": 2, "test": 1, "seconds": 4.0}
    try:
        root = tmp_path_factory.mktemp("songs")
        yield root, songs.generate_songs(root, "tiny", seed=0, workers=1)
    finally:
        songs.SIZES.clear()
        songs.SIZES.update(saved)


@pytest.fixture(scope="session")
def tiny_vads(tiny_songs):
    """The two activity detectors of section 2.1.1 (``separation.voice_activity_detectors``),
    small, trained 80 steps on the two labelled tiny songs, whole 4-s songs per window; shared
    by test_vad.py and test_separation.py (the training is the slow part of both)."""
    from voicebook import separation

    _, ss = tiny_songs
    return separation.voice_activity_detectors([s.stems() for s in ss.split("labelled")], steps=80, seconds=4.0,
                                               batch_size=2, lr=3e-3, channels=8, hidden=16, progress=False,
                                               device="cpu", log_every=10)
