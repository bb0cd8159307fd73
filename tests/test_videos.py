"""voicebook.data.videos: LRW and VoxCeleb2 folders, on tiny mp4 fixtures written with ffmpeg."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from voicebook.checks import AudioError, CorpusError
from voicebook.data import videos
from voicebook.files import ffmpeg_exe

SIZE, FPS, SR, TONE = 64, 25, 16000, 440.0


def _moving_square(n: int = FPS) -> np.ndarray:
    """``n`` frames, a white 12 x 12 square moving 1.5 px right per frame on dark grey."""
    frames = np.full((n, SIZE, SIZE, 3), 30, np.uint8)
    for k in range(n):
        x = int(4 + 1.5 * k)
        frames[k, 26:38, x:x + 12] = 255
    return frames


def _encode(path, audio: bool = True) -> None:
    """1 s of :func:`_moving_square` at 25 fps, H.264, with a 440 Hz AAC tone if ``audio``."""
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{SIZE}x{SIZE}", "-r", str(FPS), "-i", "-"]
    if audio:
        wav = path.with_suffix(".wav")
        t = np.arange(SR) / SR
        sf.write(wav, 0.5 * np.sin(2 * np.pi * TONE * t), SR)
        cmd += ["-i", str(wav), "-c:a", "aac", "-b:a", "64k"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12", str(path)]
    subprocess.run(cmd, input=_moving_square().tobytes(), check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two encoded files: with and without a sound track."""
    folder = tmp_path_factory.mktemp("mp4")
    _encode(folder / "av.mp4")
    _encode(folder / "silent.mp4", audio=False)
    return folder / "av.mp4", folder / "silent.mp4"


def _place(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def _lrw(root, av):
    for rel in ("ABOUT/train/ABOUT_00001.mp4", "ABOUT/train/ABOUT_00002.mp4", "ABOUT/val/ABOUT_00001.mp4",
                "ABOUT/test/ABOUT_00001.mp4", "WORLD/train/WORLD_00007.mp4"):
        _place(av, root / "lipread_mp4" / rel)
    (root / "lipread_mp4/ABOUT/train/ABOUT_00001.txt").write_text("Word: ABOUT\n")   # LRW's metadata: ignored
    return root


def _vox(root, av):
    for rel in ("dev/mp4/id00012/abcDEF12345/00001.mp4", "dev/mp4/id00012/abcDEF12345/00002.mp4",
                "dev/mp4/id00015/Zz9-_yy8Xw0/00001.mp4", "test/mp4/id00017/qwertyUIOP1/00003.mp4"):
        _place(av, root / rel)
    return root


def _check_decoded(v: videos.Video):
    frames, fps, audio, sr = v
    assert frames.dtype == np.uint8 and frames.shape[1:] == (SIZE, SIZE, 3) and abs(len(frames) - FPS) <= 1
    assert fps == FPS and sr == SR and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / sr - 1.0) < 0.1
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert abs(np.argmax(spectrum) * sr / len(audio) - TONE) < 5
    x = [np.nonzero(f[32, :, 0] > 128)[0].mean() for f in frames]          # the square's centre, row 32
    assert np.all(np.diff(x) > 0) and abs(x[0] - 10) < 1.5 and abs(x[10] - 25) < 1.5


def test_lrw_layout_reads_words_splits_frames_and_audio(tmp_path, clips):
    root = _lrw(tmp_path, clips[0])
    for where in (root, root / "lipread_mp4"):
        vs = videos.load_videos(where)
        assert vs.corpus == "lrw" and len(vs) == 5 and vs.words == ["ABOUT", "WORLD"]
        assert vs.splits == ["test", "train", "val"] and len(vs.split("train")) == 3
    item = vs.split("val")[0]
    assert item.id == "val/ABOUT_00001" and item.word == "ABOUT" and item.speaker == ""
    _check_decoded(item.load())
    half = item.load(fps=12.5, sr=8000)
    assert abs(len(half.frames) - 12.5) <= 1 and abs(len(half.audio) - 8000) < 800 and half.sr == 8000


def test_voxceleb2_layout_reads_speakers_and_splits(tmp_path, clips):
    root = _vox(tmp_path, clips[0])
    vs = videos.load_videos(root)
    assert vs.corpus == "voxceleb2" and len(vs) == 4 and vs.splits == ["dev", "test"]
    assert vs.speakers == ["id00012", "id00015", "id00017"] and len(vs.split("dev")) == 3
    item = vs.split("test")[0]
    assert (item.id, item.speaker, item.video) == ("id00017/qwertyUIOP1/00003", "id00017", "qwertyUIOP1")
    native = item.load(fps=None)
    assert native.fps == pytest.approx(FPS)
    _check_decoded(native)
    assert len(videos.load_videos(root / "dev")) == 3                   # one split folder
    assert videos.load_videos(root / "test" / "mp4").splits == ["test"]  # its mp4 folder
    with pytest.raises(ValueError, match="no 'train' split"):
        vs.split("train")


def test_folders_of_neither_layout_say_what_was_expected(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(CorpusError, match=r"neither an LRW nor a VoxCeleb2.*lipread_mp4.*\{dev,test\}/mp4"):
        videos.load_videos(tmp_path)
    with pytest.raises(CorpusError, match="no such folder"):
        videos.load_videos(tmp_path / "missing")
    (tmp_path / "lipread_mp4/ABOUT/train").mkdir(parents=True)
    (tmp_path / "lipread_mp4/ABOUT/train/about.mp4").write_bytes(b"")            # misnamed: not a video of LRW
    with pytest.raises(CorpusError, match="looks like LRW but holds no videos"):
        videos.load_videos(tmp_path)


def test_corrupt_missing_and_silent_files_are_named(tmp_path, clips):
    root = _vox(tmp_path, clips[0])
    _place(clips[1], root / "dev/mp4/id00020/silentvideo1/00001.mp4")
    broken = root / "dev/mp4/id00021/brokenvideo/00001.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(clips[0].read_bytes()[:400])                  # truncated
    vs = {v.speaker: v for v in videos.load_videos(root)}
    with pytest.raises(AudioError, match=r"id00020/silentvideo1/00001\.mp4: the file has no audio track"):
        vs["id00020"].load()
    with pytest.raises(CorpusError, match=r"brokenvideo/00001\.mp4: ffmpeg cannot decode"):
        vs["id00021"].load()
    vs["id00015"].path.unlink()
    with pytest.raises(CorpusError, match=r"00001\.mp4: no such video file"):
        vs["id00015"].load()


def test_a_rate_that_is_not_positive_is_refused_before_decoding(tmp_path, clips):
    with pytest.raises(ValueError, match="read_video: sr must be a positive number of Hz, got 0"):
        videos.read_video(clips[0], sr=0)
    with pytest.raises(ValueError, match="read_video: fps must be positive or None"):
        videos.read_video(clips[0], fps=0)
