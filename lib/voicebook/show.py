"""What a reader sees and hears inline: audio players, spectrogram comparisons, listening
tables and videos with sound.

Everything returns an IPython display object (or a matplotlib figure) whose HTML embeds the
media as base64, so the sound survives papermill execution and the jupyter-book build: the
published page plays it without a server.
"""

from __future__ import annotations

import base64
import html
import io
import subprocess
import tempfile
from pathlib import Path

import librosa.display
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
import torch
from IPython.display import HTML

from .checks import AudioError, check_wave
from .files import ffmpeg_exe


def _numpy(wav) -> np.ndarray:
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    return x.astype(np.float32).squeeze()


def wav_bytes(wav, sr: int, normalise: bool = True) -> bytes:
    """16-bit PCM WAV file bytes of a mono ``(samples,)`` clip at ``sr`` Hz (peak-normalised)."""
    x = _numpy(wav)
    check_wave(x, "show: clip", allow_silence=True)
    if x.ndim != 1:
        raise AudioError(f"show: expected a mono clip (samples,), got shape {x.shape}")
    peak = np.abs(x).max()
    if normalise and peak > 0:
        x = 0.95 * x / peak
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), int(sr), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audio_tag(wav, sr: int) -> str:
    """An HTML ``<audio controls>`` element with the clip embedded as a base64 WAV data URI."""
    data = base64.b64encode(wav_bytes(wav, sr)).decode()
    return f'<audio controls preload="metadata" style="width: 220px" src="data:audio/wav;base64,{data}"></audio>'


def players(clips: dict, sr: int) -> HTML:
    """Several labelled players side by side: ``clips`` maps label -> ``(samples,)`` clip.

    A value may also be ``(clip, sr)`` to give that clip its own rate.
    """
    cells = []
    for label, clip in clips.items():
        wav, rate = clip if isinstance(clip, tuple) else (clip, sr)
        cells.append(f'<div style="display:inline-block; margin: 0 1em 0.5em 0; text-align:center">'
                     f'<div><b>{html.escape(str(label))}</b></div>{audio_tag(wav, rate)}</div>')
    return HTML('<div class="voicebook-players">' + "".join(cells) + "</div>")


def listening_table(rows: dict, sr: int, caption: str | None = None) -> HTML:
    """A table of players: ``rows`` maps row label -> {column label -> clip (or (clip, sr))}.

    Columns are the union of all rows' keys in first-seen order; a missing cell stays empty.
    """
    columns: list = []
    for cells in rows.values():
        columns += [c for c in cells if c not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for label, cells in rows.items():
        tds = []
        for c in columns:
            clip = cells.get(c)
            if clip is None:
                tds.append("<td></td>")
                continue
            wav, rate = clip if isinstance(clip, tuple) else (clip, sr)
            tds.append(f"<td>{audio_tag(wav, rate)}</td>")
        body.append(f"<tr><th>{html.escape(str(label))}</th>{''.join(tds)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return HTML(f'<table class="voicebook-listening">{cap}<thead><tr><th></th>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


def _cell(value, digits: int) -> str:
    if isinstance(value, (tuple, float)):   # a number, or (mean, std, n) from conversion.mean_spread; NaN -> "n/a"
        return spread(value, digits, pm="&plusmn;")
    return html.escape(str(value))


def table(rows: dict, columns: dict | None = None, caption: str | None = None, digits: int = 3) -> HTML:
    """A results table: ``rows`` maps row label -> {column key -> value}.

    A value is a number, a string, or ``(mean, std, n)`` (shown as ``mean ± std``; a single
    run shows the mean alone). ``columns`` maps key -> header and sets the order (default:
    every key in first-seen order).
    """
    if columns is None:
        columns = {}
        for cells in rows.values():
            columns.update({k: k for k in cells if k not in columns})
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in columns.values())
    body = "".join(
        f"<tr><th>{html.escape(str(label))}</th>"
        + "".join(f"<td>{_cell(cells[k], digits) if k in cells else ''}</td>" for k in columns) + "</tr>"
        for label, cells in rows.items())
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return HTML(f'<table class="voicebook-results">{cap}<thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")


def spread(value, digits: int = 2, unit: str = "", pm: str = "±") -> str:
    """Plain text of a score: ``(mean, std, n)`` as ``"7.10 ± 0.30 dB"`` (a single run, std
    NaN, as ``"7.10 dB"``), a number as ``"7.10 dB"``, NaN as ``"n/a"``; ``pm`` is the sign
    between mean and spread (:func:`table` passes the HTML entity)."""
    mean, std = (value[0], value[1]) if isinstance(value, tuple) else (value, float("nan"))
    if mean is None or np.isnan(mean):
        return "n/a"
    text = f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" {pm} {std:.{digits}f}")
    return f"{text} {unit}" if unit else text


def verdicts(claims: dict, caption: str | None = None) -> HTML:
    """The paper's claims checked on one run: ``claims`` maps claim -> ``(agrees, numbers)``,
    ``agrees`` True, False, or None (cannot be told: a number is missing), ``numbers`` the
    text of the measured numbers the verdict rests on (see :func:`spread`)."""
    word = {True: "agrees", False: "does not agree", None: "cannot be told"}
    return table({claim: {"our numbers": numbers, "verdict": word[agrees]}
                  for claim, (agrees, numbers) in claims.items()}, caption=caption)


def grouped_bars(ax, series: dict, labels, **tick_kw) -> np.ndarray:
    """A bar chart on ``ax`` with one group per label of ``labels`` and one bar per entry of
    ``series`` (``{name: values, one per label}``, the name going to the legend); ``tick_kw``
    styles the labels (e.g. ``rotation``). -> the groups' centres ``(len(labels),)``."""
    width = 0.8 / len(series)
    x = np.arange(len(labels))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + k * width, list(values), width, label=name)
    centres = x + 0.4 - width / 2
    ax.set_xticks(centres, list(labels), **tick_kw)
    return centres


def spectrograms(clips: dict, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                 phonemes: dict | None = None, title: str | None = None, height: float = 2.4):
    """Log-mel spectrograms stacked one above the other on a shared dB scale and time axis.

    ``clips`` maps label -> ``(samples,)`` clip, or label -> ``(n_mels, frames)`` log-mel
    already computed (a 2-D array). ``phonemes`` maps a label to its ``(phone, start_s, end_s)``
    list, drawn as boundaries and names over that panel. Returns the matplotlib figure.
    """
    fig, axes = plt.subplots(len(clips), 1, figsize=(10, height * len(clips)), squeeze=False, sharex=True)
    mels = {}
    for label, clip in clips.items():
        x = _numpy(clip)
        if x.ndim == 1:
            # mel of the magnitude (power=1), as voicebook.audio.log_mel computes it: a clip and
            # its precomputed log-mel must land on the same dB scale
            m = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=1.0)
            mels[label] = librosa.amplitude_to_db(m, ref=1.0, amin=1e-5, top_db=None)
        else:
            mels[label] = 20 / np.log(10) * x  # natural-log magnitude -> dB
    vmax = max(m.max() for m in mels.values())
    for ax, (label, m) in zip(axes[:, 0], mels.items()):
        img = librosa.display.specshow(m, sr=sr, hop_length=hop, x_axis="time", y_axis="mel", ax=ax,
                                       vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set_title(str(label), fontsize=10, loc="left")
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")                  # one time axis label, under the last panel
        for phone, start, end in (phonemes or {}).get(label, []):
            ax.axvline(start, color="w", lw=0.6, alpha=0.7)
            ax.text((start + end) / 2, 0.92, phone, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", color="w", fontsize=7)
    fig.colorbar(img, ax=axes[:, 0].tolist(), format="%+.0f dB", pad=0.01)
    if title:
        fig.suptitle(title)
    return fig


def video_bytes(frames, fps: float, wav=None, sr: int | None = None) -> bytes:
    """Encode ``(frames, height, width, 3)`` uint8 RGB frames (and a mono clip) as H.264/AAC MP4.

    Uses the ffmpeg binary shipped in the imageio-ffmpeg wheel (no system ffmpeg needed).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video: expected frames of shape (frames, height, width, 3), got {frames.shape}")
    if wav is not None and sr is None:
        raise ValueError("video: a sound track (wav) needs its sample rate: pass sr=")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "video.mp4"
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
        if wav is not None:
            (Path(tmp) / "a.wav").write_bytes(wav_bytes(wav, sr, normalise=False))
            cmd += ["-i", str(Path(tmp) / "a.wav"), "-c:a", "aac", "-b:a", "96k", "-shortest"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                "-movflags", "+faststart", str(out)]
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"video: ffmpeg failed: {proc.stderr.decode(errors='replace')[-500:]}")
        return out.read_bytes()


def gif_bytes(frames, fps: float) -> bytes:
    """``(frames, height, width, 3)`` RGB frames (uint8, or floats in [0, 1]) as a looping
    animated GIF (Pillow; no ffmpeg needed). GIF has no sound track."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video: expected frames of shape (frames, height, width, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)))
    return buf.getvalue()


def video(frames, fps: float = 25.0, wav=None, sr: int | None = None, width: int = 320) -> HTML:
    """An inline ``<video controls>`` of the frames, with the clip as its sound track if given.

    Where no ffmpeg can be found (neither imageio-ffmpeg's nor one on ``PATH``), a silent
    animated GIF with an audio player under it instead, and a line saying so."""
    if ffmpeg_exe(required=False) is None:
        if wav is not None and sr is None:
            raise ValueError("video: a sound track (wav) needs its sample rate: pass sr=")
        data = base64.b64encode(gif_bytes(frames, fps)).decode()
        sound = audio_tag(wav, sr) if wav is not None else ""
        return HTML(f'<div><img width="{width}" src="data:image/gif;base64,{data}"/><br/>{sound}'
                    '<br/><small>no ffmpeg here: a silent GIF, its sound beside it '
                    '(install imageio-ffmpeg for a video with sound)</small></div>')
    data = base64.b64encode(video_bytes(frames, fps, wav, sr)).decode()
    return HTML(f'<video controls width="{width}" src="data:video/mp4;base64,{data}"></video>')
