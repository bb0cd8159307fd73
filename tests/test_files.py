"""Atomic writes leave either the old file or the whole new one, and no temporary files; a lock
makes a second process wait for the first."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from voicebook.files import atomic_path, atomic_write_bytes, atomic_write_json, locked, sha256


def test_atomic_path_replaces_content_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "out.npy"
    dest.write_bytes(b"old")
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        assert tmp.name.endswith(".npy")  # format-sniffing writers see the real suffix
        np.save(tmp, np.arange(5))
        assert dest.read_bytes() == b"old"  # nothing visible until the block ends
    np.testing.assert_array_equal(np.load(dest), np.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_atomic_path_failure_keeps_old_file_and_cleans_up(tmp_path):
    dest = tmp_path / "ckpt.bin"
    dest.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half a chec")
            raise RuntimeError("disk on fire")
    assert dest.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]


def test_atomic_path_failure_without_previous_file(tmp_path):
    dest = tmp_path / "new.bin"
    with pytest.raises(KeyError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"x")
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_creates_parent_and_uses_normal_permissions(tmp_path):
    dest = tmp_path / "a" / "b" / "c.txt"
    atomic_write_bytes(dest, b"hello")
    assert dest.read_bytes() == b"hello"
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_write_json_round_trip(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"nested": "ü"}, "flag": True}
    path = tmp_path / "m.json"
    atomic_write_json(path, obj)
    assert json.loads(path.read_text()) == obj
    text = path.read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')  # sorted keys
    # numpy scalars are not JSON-serialisable by default; they are written as floats
    atomic_write_json(path, {"x": np.float32(0.5), "y": np.float64(2.0)})
    assert json.loads(path.read_text()) == {"x": 0.5, "y": 2.0}


def test_sha256_matches_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3 * 1000 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256(path) == expected
    assert sha256(path, chunk=1000) == expected  # several chunks, the last one partial
    (tmp_path / "empty").write_bytes(b"")
    assert sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_locked_makes_another_process_wait_until_the_holder_lets_go(tmp_path, capfd):
    made, held, done = tmp_path / "x", tmp_path / "held", tmp_path / "done"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, sys, time\n"
        "from voicebook.files import locked\n"
        f"with locked({str(made)!r}):\n"
        f"    pathlib.Path({str(held)!r}).touch(); time.sleep(1.0); pathlib.Path({str(done)!r}).touch()\n")])
    deadline = time.monotonic() + 60
    while not held.exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.02)
    with locked(made, "a test"):
        assert done.exists()                       # entered only after the holder's block ended
    assert holder.wait(30) == 0
    assert f"waiting for another process that is making {made} (a test)" in capfd.readouterr().out
    with locked(made):                             # free again: no wait, no message
        pass
    assert "waiting" not in capfd.readouterr().out
