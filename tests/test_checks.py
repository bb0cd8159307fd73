"""check_wave: every bad input raises AudioError naming the input and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.checks import AudioError, CorpusError, check_wave
from helpers_signals import sine


def test_good_clip_is_returned_unchanged():
    x = sine(440, 16000, 0.1)
    assert check_wave(x, "x", sr=16000, expected_sr=16000, min_seconds=0.1) is x
    t = torch.from_numpy(x)
    assert check_wave(t, "t") is t
    batch = np.stack([x, x])  # (batch, samples) is accepted
    assert check_wave(batch, "batch") is batch


def test_errors_are_value_errors():
    # callers that catch ValueError keep working
    assert issubclass(AudioError, ValueError) and issubclass(CorpusError, ValueError)


def test_wrong_sample_rate_names_both_rates():
    with pytest.raises(AudioError, match=r"clip\.wav: sample rate is 16000 Hz, expected 22050 Hz"):
        check_wave(sine(440, 16000, 0.1), "clip.wav", sr=16000, expected_sr=22050)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_rejected_when_mono_needed(channels):
    x = np.tile(sine(440, 16000, 0.1)[:, None], (1, channels))
    with pytest.raises(AudioError, match=rf"stereo\.wav: looks like {channels}-channel audio.*expected mono"):
        check_wave(x, "stereo.wav")
    assert check_wave(x, "stereo.wav", mono=False) is x


def test_empty():
    with pytest.raises(AudioError, match=r"arg: empty audio \(0 samples\)"):
        check_wave(np.zeros(0, np.float32), "arg")
    with pytest.raises(AudioError, match="empty"):
        check_wave(torch.zeros(0), "arg")


def test_silent_clip_rejected_unless_allowed():
    with pytest.raises(AudioError, match=r"quiet: the clip is silent .*threshold -80"):
        check_wave(np.zeros(1600), "quiet")
    # -90 dBFS is below the default -80 dBFS threshold, -70 dBFS is not
    with pytest.raises(AudioError, match="silent"):
        check_wave(sine(440, 16000, 0.1, amp=10 ** (-90 / 20)), "quiet")
    check_wave(sine(440, 16000, 0.1, amp=10 ** (-70 / 20)), "quiet")
    check_wave(np.zeros(1600), "quiet", allow_silence=True)


def test_integer_samples_are_judged_on_the_int16_scale():
    loud = (sine(440, 16000, 0.1) * 32767).astype(np.int16)
    check_wave(loud, "pcm")
    with pytest.raises(AudioError, match="silent"):
        check_wave(np.zeros(1600, np.int16), "pcm")


def test_too_short():
    x = sine(440, 16000, 0.05)  # 800 samples
    with pytest.raises(AudioError, match=r"short\.wav: 0\.050 s is shorter than the 0\.100 s required"):
        check_wave(x, "short.wav", sr=16000, min_seconds=0.1)
    with pytest.raises(AudioError, match="800 samples is shorter than the 1024 samples required"):
        check_wave(x, "short.wav", min_samples=1024)
    check_wave(x, "ok", sr=16000, min_seconds=0.05, min_samples=800)  # boundary is inclusive


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_counted(bad):
    x = sine(440, 16000, 0.1)
    x[[3, 10, 20]] = bad
    with pytest.raises(AudioError, match=r"noisy: 3 samples are NaN or infinite"):
        check_wave(x, "noisy")
    with pytest.raises(AudioError, match="3 samples are NaN"):
        check_wave(torch.from_numpy(x), "noisy")


def test_wrong_rank_and_dtype():
    with pytest.raises(AudioError, match=r"cube: expected \(samples,\) or \(batch, samples\), got shape \(2, 3, 100\)"):
        check_wave(np.ones((2, 3, 100)), "cube")
    with pytest.raises(AudioError, match="complex: expected real-valued samples"):
        check_wave(np.ones(100, np.complex64), "complex")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int16])
def test_a_tensor_is_checked_where_it_lives(monkeypatch, dtype):
    """Tensors are reduced with torch ops (on a GPU: no copy of the clip to the host), in any
    dtype numpy lacks (bf16 under autocast), with the same verdicts as for numpy arrays."""
    def refuse(self, *args, **kw):
        raise AssertionError("check_wave copied the tensor to numpy")
    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    scale = 32767 if dtype == torch.int16 else 0.5
    clip = (torch.sin(torch.arange(1600) / 5.0) * scale).to(dtype)
    assert check_wave(clip, "clip", sr=16000) is clip
    with pytest.raises(AudioError, match="clip: the clip is silent"):
        check_wave(clip * 0, "clip")
    if dtype.is_floating_point:
        broken = clip.clone()
        broken[[3, 7]] = float("nan")
        with pytest.raises(AudioError, match="clip: 2 samples are NaN"):
            check_wave(broken, "clip")
    with pytest.raises(AudioError, match=r"shape \(1600, 2\)"):
        check_wave(torch.stack([clip, clip], 1), "clip")
