"""The book built by jupyter-book from the six chapters executed at preset=smoke (the session
fixtures ``chapter00`` ... ``chapter05`` in conftest.py): audio players, figures and maths are in
the HTML, offline."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from helpers_chapters import ROOT
from voicebook.book import chapters_in_toc

pytestmark = pytest.mark.slow


def _build_book(tmp_path: Path, executed: dict[str, Path]) -> Path:
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    for name, folder in executed.items():
        shutil.copytree(folder, book / "chapters" / name)
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe), "build", str(book), "--builder", "html"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return book / "_build" / "html"


def test_book_builds_with_audio_and_figures(chapter00, chapter01, chapter02, chapter03, chapter04, chapter05,
                                            tmp_path):
    names = chapters_in_toc(ROOT / "book")
    assert names == ["00_voice_as_numbers", "01_cycle_autovc", "02_softgan_cyclegan_vc", "03_multilingual_lstm_tts",
                     "04_singing_voice_separation", "05_you_said_that"]
    html_dir = _build_book(tmp_path, {"00_voice_as_numbers": chapter00[0], "01_cycle_autovc": chapter01[0],
                                      "02_softgan_cyclegan_vc": chapter02[0], "03_multilingual_lstm_tts": chapter03[0],
                                      "04_singing_voice_separation": chapter04[0], "05_you_said_that": chapter05[0]})
    page = (html_dir / "chapters" / "00_voice_as_numbers" / "00_voice_as_numbers.html").read_text()
    clips = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(clips) >= 10
    wav, sr = sf.read(io.BytesIO(base64.b64decode(clips[0])))
    assert sr == 22050 and len(wav) > sr // 2 and abs(wav).max() > 0.5  # a real, playable clip
    figures = re.findall(r'<img[^>]+src="([^"]+\.png)"', page)
    assert len(figures) >= 6
    for src in figures:
        assert (html_dir / "chapters" / "00_voice_as_numbers" / src).resolve().stat().st_size > 5000
    assert "intro.html" in (html_dir / "index.html").read_text()  # the landing page redirects...
    intro = (html_dir / "intro.html").read_text()
    assert "How a voice becomes numbers" in intro   # ...to a page whose table of contents links the chapter
    page = (html_dir / "chapters" / "01_cycle_autovc" / "01_cycle_autovc.html").read_text()
    clips = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(clips) >= 20                            # the listening table: 4 pairs x 5 columns
    wav, sr = sf.read(io.BytesIO(base64.b64decode(clips[-1])))
    assert sr == 16000 and len(wav) > sr // 2
    assert len(re.findall(r'<img[^>]+src="([^"]+\.png)"', page)) >= 5
    assert "voicebook-results" in page and "Cycle-consistent AutoVC" in intro
    mathjax = re.search(r'<script[^>]+src="([^"]*mathjax[^"]*\.js)"', page)  # maths typeset offline
    assert mathjax and not mathjax.group(1).startswith("http")
    assert (html_dir / "chapters" / "01_cycle_autovc" / mathjax.group(1)).resolve().is_file()
    page = (html_dir / "chapters" / "02_softgan_cyclegan_vc" / "02_softgan_cyclegan_vc.html").read_text()
    clips = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(clips) >= 16                            # 2 players + 2 pairs x 7 columns at smoke
    wav, sr = sf.read(io.BytesIO(base64.b64decode(clips[-1])))
    assert sr == 16000 and len(wav) > sr               # a converted sentence (> 2 s sources)
    assert len(re.findall(r'<img[^>]+src="([^"]+\.png)"', page)) >= 4
    assert "MCD-DTW to target" in page and "SoftGAN" in intro   # Table 1 is shown
    page = (html_dir / "chapters" / "03_multilingual_lstm_tts" / "03_multilingual_lstm_tts.html").read_text()
    clips = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(clips) >= 34                            # 6 training languages x 4 columns + 2 new x 5
    wav, sr = sf.read(io.BytesIO(base64.b64decode(clips[-1])))
    assert sr == 22050 and len(wav) > sr               # a synthesised test sentence
    assert len(re.findall(r'<img[^>]+src="([^"]+\.png)"', page)) >= 5
    assert "Dev MSE after adaptation" in page and "one LSTM voice" in intro
    page = (html_dir / "chapters" / "04_singing_voice_separation" / "04_singing_voice_separation.html").read_text()
    clips = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(clips) >= 28                            # 6 + 3 + 4 + 3 test songs x 5 columns
    wav, sr = sf.read(io.BytesIO(base64.b64decode(clips[-1])))
    assert sr == 16000 and len(wav) > 5 * sr           # a separated 10-s test song
    assert len(re.findall(r'<img[^>]+src="([^"]+\.png)"', page)) >= 3
    assert "Teacher candidates" in page and "Table 3" in page and "noisy self-training" in intro
    page = (html_dir / "chapters" / "05_you_said_that" / "05_you_said_that.html").read_text()
    assert len(re.findall(r'<video[^>]+src="data:video/mp4;base64,', page)) >= 4   # talking faces with sound
    assert len(re.findall(r'<img[^>]+src="([^"]+\.png)"', page)) >= 3 and "talking faces" in intro
