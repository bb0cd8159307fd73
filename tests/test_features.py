"""voicebook.data.features: cached log-mels (cache hits, corrupt files, keys that follow settings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook import audio
from voicebook.data import features
from voicebook.data.speech import file_utterance


def write_items(folder, sr):
    """Three short utterances at ``sr`` Hz (tones and noise), as the corpus readers make them."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.4 * sr)) / sr
    waves = [0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t) * (t < 0.3),
             0.05 * rng.standard_normal(len(t) // 2)]
    out = []
    for i, w in enumerate(waves):
        path = audio.save(folder / "wavs" / f"u{i}.wav", w.astype(np.float32), sr)
        out.append(file_utterance(path, id=f"u{i}", speaker="s", language="en-us", text="", sentence_id=str(i),
                                  sex="F", split="train"))
    return out


@pytest.fixture()
def items(tmp_path):
    """At 16 kHz, the features' rate (no resampling: quick)."""
    return write_items(tmp_path, 16000)


def cache_files(cache_dir):
    return sorted((cache_dir / "features").glob("logmel-*.pt"))


def test_values_and_shapes(tmp_path):
    """Utterances at 22050 Hz (the generated corpus' rate) are resampled to 16 kHz first."""
    items = write_items(tmp_path, 22050)
    mels = features.log_mels(items, cache_dir=tmp_path / "cache", progress=False)
    assert sorted(mels) == ["u0", "u1", "u2"]
    for u in items:
        wav16 = audio.resample(u.load(), 22050, 16000)
        assert mels[u.id].shape == (80, len(wav16) // 256 + 1)
        expected = audio.log_mel(audio.to_tensor(wav16), 16000, 1024, 256, 80, 90.0, 7600.0)
        torch.testing.assert_close(mels[u.id], expected)


def test_cache_hit_returns_equal_tensors_without_recomputing(items, tmp_path, monkeypatch):
    first = features.log_mels(items, cache_dir=tmp_path, progress=False)
    assert len(cache_files(tmp_path)) == 1

    def no_compute(*args, **kwargs):
        raise AssertionError("the features were computed again instead of read from the cache")

    monkeypatch.setattr(features, "_compute", no_compute)
    again = features.log_mels(items, cache_dir=tmp_path, progress=False)
    assert again.keys() == first.keys()
    assert all(torch.equal(again[k], first[k]) for k in first)


@pytest.mark.parametrize("damage", [b"", b"not a torch file", "truncate"])
def test_corrupt_cache_file_is_recomputed(items, tmp_path, damage):
    first = features.log_mels(items, cache_dir=tmp_path, progress=False)
    (path,) = cache_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    again = features.log_mels(items, cache_dir=tmp_path, progress=False)
    assert all(torch.equal(again[k], first[k]) for k in first)
    repaired = torch.load(path, weights_only=True)  # the damaged file was replaced by a good one
    assert all(torch.equal(repaired[k], first[k]) for k in first)


def test_a_setting_or_the_items_change_the_key(items, tmp_path):
    default = features.log_mels(items, cache_dir=tmp_path, progress=False)
    fewer_bands = features.log_mels(items, cache_dir=tmp_path, n_mels=40, progress=False)
    assert len(cache_files(tmp_path)) == 2
    assert fewer_bands["u0"].shape[0] == 40 and default["u0"].shape[0] == 80
    longer_hop = features.log_mels(items, cache_dir=tmp_path, hop=160, progress=False)
    assert longer_hop["u0"].shape[1] > default["u0"].shape[1]
    features.log_mels(items, cache_dir=tmp_path, fmax=8000.0, progress=False)
    subset = features.log_mels(items[:2], cache_dir=tmp_path, progress=False)
    assert sorted(subset) == ["u0", "u1"]
    assert len(cache_files(tmp_path)) == 5
    assert torch.equal(subset["u0"], default["u0"])


def test_a_recording_replaced_by_another_of_the_same_length_is_not_served_stale(items, tmp_path):
    import os

    first = features.log_mels(items, cache_dir=tmp_path / "cache", progress=False)
    u = items[0]
    other = 0.3 * np.sin(2 * np.pi * 440 * np.arange(len(u.load())) / u.sr)        # same length, new content
    audio.save(u.path, other.astype(np.float32), u.sr)
    os.utime(u.path, ns=(os.stat(u.path).st_atime_ns, os.stat(u.path).st_mtime_ns + 10**9))   # a later stamp
    again = features.log_mels(items, cache_dir=tmp_path / "cache", progress=False)
    assert not torch.equal(again[u.id], first[u.id])
    assert torch.equal(again[items[1].id], first[items[1].id])


@pytest.mark.parametrize("wave, message", [(np.zeros(8000), r"the recording: the clip is silent"),
                                           (0.3 * np.ones(200), r"mel_spectrogram\(wav\): 200 samples is shorter")],
                         ids=["silent", "too-short"])
def test_a_bad_recording_is_named_by_utterance_and_file(items, tmp_path, wave, message):
    """A silent file would train as a constant mel; one shorter than a frame fails in the STFT.
    Either way the error names the utterance and its file, and nothing is cached."""
    path = audio.save(tmp_path / "wavs" / "bad.wav", wave.astype(np.float32), 16000)
    bad = file_utterance(path, id="bad", speaker="s", language="en-us", text="", sentence_id="9", sex="F",
                         split="train")
    with pytest.raises(audio.AudioError, match=rf"utterance bad \(.*wavs/bad\.wav\): {message}"):
        features.log_mels([*items, bad], cache_dir=tmp_path / "cache", progress=False)
    assert cache_files(tmp_path / "cache") == []
