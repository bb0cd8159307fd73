"""Build the published book: execute every chapter with papermill, then jupyter-book.

    python -m voicebook.book --preset smoke          # what `make book` runs

Chapters are the ``notebooks/NN_*.md`` files named in ``book/_toc.yml``; each is executed into
``book/chapters/<name>/`` (notebook + metrics.json), and jupyter-book 1.x renders the executed
notebooks (``execute_notebooks: "off"``) into ``book/_build/html`` without any network access.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from .runner import PRESETS, run_chapter

ROOT = Path(__file__).resolve().parents[2]


def chapters_in_toc(book_dir: Path) -> list[str]:
    """Names of the executed chapters the table of contents lists (``chapters/<name>/<name>``)."""
    toc = (book_dir / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/([^/\s]+)/\1", toc)


def execute_chapters(book_dir: Path, notebooks_dir: Path, *, preset: str, data_dir=None, seed: int = 0,
                     only: list[str] | None = None) -> dict:
    """Run each chapter in the table of contents; return ``{chapter: metrics}``."""
    results = {}
    for name in chapters_in_toc(book_dir):
        if only and name not in only:
            continue
        source = notebooks_dir / f"{name}.md"
        print(f"[voicebook] executing {source.name} (preset={preset})", flush=True)
        results[name] = run_chapter(source, book_dir / "chapters" / name, preset=preset,
                                    data_dir=data_dir, seed=seed, progress=True)
    return results


def build_html(book_dir: Path) -> Path:
    """Render the book with jupyter-book (offline); return the path of ``index.html``."""
    exe = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(exe), "build", str(book_dir), "--builder", "html"], check=True)
    index = book_dir / "_build" / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book did not write {index}")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute every chapter and build the HTML book.")
    parser.add_argument("--preset", default="smoke", choices=PRESETS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="execute only these chapters (the rest keep their last run)")
    parser.add_argument("--book-dir", default=str(ROOT / "book"))
    args = parser.parse_args(argv)
    book_dir = Path(args.book_dir)
    execute_chapters(book_dir, ROOT / "notebooks", preset=args.preset, data_dir=args.data_dir,
                     seed=args.seed, only=args.only)
    print(f"[voicebook] built {build_html(book_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
