"""voicebook.show: embedded players decode back to the clips, tables keep their layout,
spectrogram figures have a panel per clip, videos are real MP4s with a sound track."""

from __future__ import annotations

import base64
import io
import re
import subprocess

import matplotlib

matplotlib.use("Agg")

import imageio_ffmpeg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from voicebook import show  # noqa: E402
from voicebook.checks import AudioError  # noqa: E402
from helpers_signals import sine  # noqa: E402

AUDIO_SRC = re.compile(r'<audio controls[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"></audio>')


def _decode(b64: str):
    return sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float32")


def _expected(clip):
    x = np.asarray(clip, dtype=np.float32)
    return 0.95 * x / np.abs(x).max()


def test_wav_bytes_decode_to_the_peak_normalised_clip():
    x = sine(300, 16000, 0.1, amp=0.2)
    y, sr = sf.read(io.BytesIO(show.wav_bytes(x, 16000)), dtype="float32")
    assert sr == 16000
    np.testing.assert_allclose(y, _expected(x), atol=1.5 / 32768)
    raw, _ = sf.read(io.BytesIO(show.wav_bytes(x, 16000, normalise=False)), dtype="float32")
    np.testing.assert_allclose(raw, x, atol=1.5 / 32768)
    silent, _ = sf.read(io.BytesIO(show.wav_bytes(np.zeros(100), 8000)), dtype="float32")
    assert np.all(silent == 0)  # no division by a zero peak


def test_wav_bytes_rejects_stereo_and_nan():
    with pytest.raises(AudioError, match="2-channel"):
        show.wav_bytes(np.zeros((1000, 2)) + 0.1, 16000)
    with pytest.raises(AudioError, match="NaN"):
        show.wav_bytes(np.array([0.1, np.nan]), 16000)


def test_players_embed_every_clip_at_its_rate():
    a = sine(220, 16000, 0.2, amp=0.3)
    b = torch.from_numpy(sine(440, 22050, 0.1, amp=0.9).astype(np.float32))
    html = show.players({"source <x>": a, "converted & more": (b, 22050)}, sr=16000).data
    srcs = AUDIO_SRC.findall(html)
    assert html.count("<audio") == 2 and len(srcs) == 2
    (ya, ra), (yb, rb) = _decode(srcs[0]), _decode(srcs[1])
    assert (ra, rb) == (16000, 22050)
    np.testing.assert_allclose(ya, _expected(a), atol=1.5 / 32768)
    np.testing.assert_allclose(yb, _expected(b.numpy()), atol=1.5 / 32768)
    assert "<b>source &lt;x&gt;</b>" in html and "converted &amp; more" in html
    assert "<x>" not in html


def test_listening_table_layout_and_missing_cells():
    clip = {name: sine(f, 16000, 0.05, amp=a) for name, f, a in (("s", 200, 0.1), ("t", 300, 0.4), ("u", 400, 0.7))}
    rows = {"VCTK <p225>": {"source": clip["s"], "AutoVC": clip["t"]},
            "VCTK p226": {"AutoVC": clip["u"], "target": (clip["s"], 8000)}}
    html = show.listening_table(rows, sr=16000, caption="Table 1 & co").data
    assert "<caption>Table 1 &amp; co</caption>" in html
    head = re.search(r"<thead>(.*)</thead>", html).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["", "source", "AutoVC", "target"]  # first-seen order
    body_rows = re.findall(r"<tr>(.*?)</tr>", re.search(r"<tbody>(.*)</tbody>", html).group(1))
    assert len(body_rows) == 2
    assert body_rows[0].startswith("<th>VCTK &lt;p225&gt;</th>")
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in body_rows]
    assert [len(c) for c in cells] == [3, 3]
    assert cells[0][2] == "" and cells[1][0] == ""  # missing cells stay empty
    assert html.count("<audio") == 4
    decoded = [_decode(AUDIO_SRC.search(c).group(1)) for row in cells for c in row if c]
    expected = [(clip["s"], 16000), (clip["t"], 16000), (clip["u"], 16000), (clip["s"], 8000)]
    for (y, sr), (x, rate) in zip(decoded, expected):
        assert sr == rate
        np.testing.assert_allclose(y, _expected(x), atol=1.5 / 32768)


def test_spread_and_verdicts_say_the_numbers():
    assert show.spread((7.104, 0.3, 3), unit="dB") == "7.10 ± 0.30 dB"
    assert show.spread((0.5, float("nan"), 1), digits=3) == "0.500"
    assert show.spread(float("nan")) == "n/a" and show.spread(2.0, 1, "%") == "2.0 %"
    assert "<td>n/a</td>" in show.table({"run": {"score": (float("nan"), 0.1, 3)}}).data   # no "nan" in a table
    html = show.verdicts({"A beats B": (True, "1.00 vs 2.00 dB"), "C <helps>": (None, "n/a vs 1.0"),
                          "D": (False, "x")}, caption="claims").data
    rows = re.findall(r"<tr>(.*?)</tr>", re.search(r"<tbody>(.*)</tbody>", html).group(1))
    cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", r) for r in rows]
    assert cells == [["A beats B", "1.00 vs 2.00 dB", "agrees"], ["C &lt;helps&gt;", "n/a vs 1.0", "cannot be told"],
                     ["D", "x", "does not agree"]]


def test_spectrograms_one_panel_per_clip_and_phonemes(speech16):
    from voicebook.audio import log_mel
    x = speech16.wav
    clips = {"waveform": x, "log-mel": log_mel(x, 16000, n_fft=1024, hop=256), "quiet": 0.1 * x}
    phonemes = {"waveform": [("a", 0.0, 0.3), ("sh", 0.6, 0.75)]}
    fig = show.spectrograms(clips, 16000, phonemes=phonemes, title="three clips")
    try:
        panels, colorbar = fig.axes[:3], fig.axes[3:]
        assert len(fig.axes) == 4 and len(colorbar) == 1
        assert [ax.get_title(loc="left") for ax in panels] == list(clips)
        assert sorted(t.get_text() for t in panels[0].texts) == ["a", "sh"]
        assert len(panels[1].texts) == 0 and len(panels[2].texts) == 0
        # a precomputed natural-log mel is shown in the same dB as the waveform's own mel
        image = [np.asarray(ax.collections[0].get_array()).reshape(80, -1) for ax in panels]
        inner = slice(4, -4)  # edge frames depend on the STFT padding mode
        np.testing.assert_allclose(image[1][:, inner], image[0][:, inner], atol=0.05)
        loud = image[0][:, inner] > -75  # above the -100 dB floor after the 20 dB drop
        assert loud.mean() > 0.5
        np.testing.assert_allclose(image[2][:, inner][loud], image[0][:, inner][loud] - 20, atol=0.05, rtol=0)
        assert fig._suptitle.get_text() == "three clips"
        # shared dB scale: every image spans the same 80 dB below the loudest panel
        limits = {ax.collections[0].get_clim() for ax in panels}
        assert len(limits) == 1 and np.diff(next(iter(limits)))[0] == pytest.approx(80)
    finally:
        plt.close(fig)


def _probe(data: bytes, tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr
    return path, info


def test_video_with_sound(tmp_path):
    frames = np.zeros((10, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(10)[:, None, None] * 25
    data = show.video_bytes(frames, 25.0, sine(440, 16000, 0.4), 16000)
    assert data[4:8] == b"ftyp"
    path, info = _probe(data, tmp_path)
    n, secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert n == 10 and secs == pytest.approx(0.4, abs=0.05)
    assert "Video: h264" in info and "Audio:" in info and "16000 Hz" in info


def test_video_without_sound_float_frames_odd_size(tmp_path):
    frames = np.random.default_rng(0).random((5, 33, 47, 3))  # floats in [0, 1], odd size
    data = show.video_bytes(frames, 10.0)
    path, info = _probe(data, tmp_path)
    assert data[4:8] == b"ftyp"
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 5
    assert "Audio:" not in info
    assert "48x34" in info  # padded to even dimensions for yuv420p
    html = show.video(frames, fps=10.0, width=200).data
    assert html.startswith('<video controls width="200" src="data:video/mp4;base64,')


@pytest.mark.parametrize("shape", [(5, 32, 32), (5, 32, 32, 4), (32, 32, 3)])
def test_video_bad_frame_shape(shape):
    with pytest.raises(ValueError, match=r"expected frames of shape \(frames, height, width, 3\)"):
        show.video_bytes(np.zeros(shape, np.uint8), 25.0)


def test_video_sound_without_rate():
    with pytest.raises(ValueError, match="sample rate"):
        show.video_bytes(np.zeros((2, 8, 8, 3), np.uint8), 25.0, wav=sine(440, 16000, 0.1))


def test_video_without_ffmpeg_falls_back_to_a_gif_and_a_player(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(show, "ffmpeg_exe", lambda required=True: None)
    frames = np.zeros((6, 20, 30, 3), np.uint8)
    frames[:, :, :, 1] = np.arange(6)[:, None, None] * 40
    html = show.video(frames, fps=25.0, wav=sine(440, 16000, 0.24), sr=16000, width=200).data
    assert 'src="data:image/gif;base64,' in html and "<audio controls" in html and "no ffmpeg" in html
    gif = base64.b64decode(html.split("data:image/gif;base64,")[1].split('"')[0])
    img = Image.open(io.BytesIO(gif))
    assert img.n_frames == 6 and img.size == (30, 20) and img.info["duration"] == 40
    img.seek(5)
    assert np.asarray(img.convert("RGB"))[0, 0, 1] == 200      # the last frame's colour survives
    with pytest.raises(ValueError, match="sample rate"):
        show.video(frames, wav=sine(440, 16000, 0.1))


def test_grouped_bars_one_group_per_label_one_bar_per_series():
    fig, ax = plt.subplots()
    centres = show.grouped_bars(ax, {"a": [1, 2, 3], "b": (4, 5, 6)}, ["x", "y", "z"])
    assert [p.get_height() for p in ax.patches] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(centres, [0.2, 1.2, 2.2])               # two bars of width 0.4 a group
    a, b = ax.patches[:3], ax.patches[3:]
    np.testing.assert_allclose([p.get_x() + p.get_width() for p in a], centres)   # a left of the centre,
    np.testing.assert_allclose([p.get_x() for p in b], centres)                   # b right of it
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    plt.close(fig)
