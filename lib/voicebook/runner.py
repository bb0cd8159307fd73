"""Run a chapter headlessly: jupytext notebook -> papermill (with parameters) -> executed
notebook + ``metrics.json``. Used by the tests, by ``make book`` and from the command line::

    python -m voicebook.runner notebooks/00_voice_as_numbers.md --preset smoke --out runs/smoke

Inside a chapter, :func:`save_metrics` writes the results that the tests bound and the book
quotes, and :func:`pick_preset` turns the ``preset`` parameter into the chapter's settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path

from .files import atomic_write_json

PRESETS = ("smoke", "standard", "paper")


def _shaped_like(default, value):
    """``value`` with the tuples of ``default`` where it has lists: papermill passes parameters
    as JSON, which has no tuples, so ``(32, 8)`` arrives as ``[32, 8]`` (and could not be a dict
    key). Items of a list take the shape of the default's first item, of a tuple the one in
    their place."""
    if not isinstance(value, list) or not isinstance(default, (list, tuple)) or not default:
        return value
    items = [_shaped_like(default[min(i, len(default) - 1) if isinstance(default, tuple) else 0], v)
             for i, v in enumerate(value)]
    return tuple(items) if isinstance(default, tuple) else items


def pick_preset(name: str, table: dict, overrides: dict | None = None) -> dict:
    """The settings of preset ``name`` from a chapter's ``{preset: {setting: value}}`` table,
    with ``overrides`` (a papermill parameter, e.g. ``{"steps": 1000}``) replacing some of them;
    an override given as a list where the preset has a tuple becomes a tuple again."""
    if name not in table:
        raise ValueError(f"unknown preset {name!r}: this chapter has {', '.join(table)}")
    unknown = sorted(set(overrides or {}) - set(table[name]))
    if unknown:
        raise ValueError(f"overrides: {unknown} are not settings of preset {name!r} (it has {sorted(table[name])})")
    return {**table[name], **{k: _shaped_like(table[name][k], v) for k, v in (overrides or {}).items()}}


def preset_tag(name: str, overrides: dict | None = None, seed: int = 0, data_dir=None) -> str:
    """A folder name for a preset's checkpoints: ``name``, plus a short hash of whatever else
    decides what gets trained (``overrides``, a ``seed`` other than 0, a ``data_dir``, taken as an
    absolute path), so that a run with other settings, another seed or another corpus never
    resumes from this one's checkpoints. The defaults give the bare ``name``."""
    key = {}
    if overrides:
        key["overrides"] = overrides
    if seed != 0:
        key["seed"] = int(seed)
    if data_dir is not None:
        key["data_dir"] = str(Path(data_dir).expanduser().resolve())
    if not key:
        return name
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def save_metrics(out_dir, metrics: dict, name: str = "metrics.json") -> Path:
    """Write a chapter's results as JSON into ``out_dir`` (atomically) and return the path.

    Strict JSON: a NaN or infinite number (e.g. the spread of a single seed) is written as null.
    """
    path = Path(out_dir) / name
    atomic_write_json(path, _finite(metrics))
    return path


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def load_metrics(out_dir, name: str = "metrics.json") -> dict:
    """Read the ``metrics.json`` a chapter wrote into ``out_dir``."""
    path = Path(out_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: the chapter did not write its metrics (did it call save_metrics?)")
    return json.loads(path.read_text())


def to_ipynb(notebook, dest) -> Path:
    """Convert a jupytext (MyST markdown) notebook to ``.ipynb`` with a python3 kernelspec."""
    import jupytext

    nb = jupytext.read(notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, dest, fmt="ipynb")
    return dest


def run_chapter(notebook, out_dir, *, preset: str = "smoke", data_dir=None, seed: int = 0,
                parameters: dict | None = None, progress: bool = False, timeout: int | None = None) -> dict:
    """Execute one chapter with papermill and return the metrics it saved.

    Args:
        notebook: the chapter's ``.md`` (jupytext) or ``.ipynb`` file.
        out_dir: where the executed ``<name>.ipynb``, ``metrics.json`` and any other outputs go.
        preset: ``smoke`` (CI, minutes on a CPU), ``standard`` (one GPU) or ``paper``.
        data_dir: a local copy of a real corpus, or None for the generated default.
        parameters: more papermill parameters for the chapter's ``parameters`` cell.

    Raises papermill's ``PapermillExecutionError`` (with the failing cell) if a cell fails.
    """
    notebook, out_dir = Path(notebook), Path(out_dir).resolve()
    if not notebook.exists():
        raise FileNotFoundError(f"{notebook}: no such chapter")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # never report a previous run's numbers
    with tempfile.TemporaryDirectory() as tmp:
        source = notebook if notebook.suffix == ".ipynb" else to_ipynb(notebook, Path(tmp) / f"{notebook.stem}.ipynb")
        _execute(source, out_dir / f"{notebook.stem}.ipynb", notebook.resolve().parent, progress, timeout,
                 dict(preset=preset, data_dir=str(data_dir) if data_dir else None, out_dir=str(out_dir),
                      seed=seed, **(parameters or {})))
    return load_metrics(out_dir)


def _execute(source: Path, dest: Path, cwd: Path, progress: bool, timeout, params: dict) -> None:
    import papermill

    papermill.execute_notebook(
        str(source), str(dest), parameters=params, kernel_name="python3", language="python",
        cwd=str(cwd), progress_bar=progress, execution_timeout=timeout, log_output=False)


def _parameter(text: str) -> tuple[str, object]:
    """``"name=JSON"`` -> ``(name, value)``; a value that is not JSON is taken as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise SystemExit(f"--param wants NAME=JSON (e.g. n_seeds=1), got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="chapter files (.md or .ipynb)")
    parser.add_argument("--preset", default="smoke", choices=PRESETS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs", help="one sub-folder per chapter is made here")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                        help='another papermill parameter, e.g. --param n_seeds=1 --param \'overrides={"steps": 500}\'')
    args = parser.parse_args(argv)
    parameters = dict(_parameter(p) for p in args.param)
    for nb in args.notebooks:
        out = Path(args.out) / Path(nb).stem
        print(f"[voicebook] {nb} (preset={args.preset}) -> {out}", flush=True)
        metrics = run_chapter(nb, out, preset=args.preset, data_dir=args.data_dir, seed=args.seed,
                              parameters=parameters, progress=True)
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
