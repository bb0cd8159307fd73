"""voicebook.conversion (scoring conversions, the leakage probe, tables over seeds) and
voicebook.models.autovc_eval (AutoVC conversions as audio, with checked inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voicebook import conversion, show
from voicebook.checks import AudioError
from voicebook.data.features import AUTOVC_MEL
from voicebook.models.autovc import AutoVC
from voicebook.models.autovc_eval import (codes_of, convert_pairs, convert_wave, mel_to_audio, reconstruction_error,
                                          wave_to_mel)

SR = AUTOVC_MEL["sr"]


def test_speaker_leakage_finds_a_speaker_written_into_the_codes():
    """Codes that carry a speaker-specific offset are recognised far above chance; codes of
    pure noise stay near chance (4 speakers: 0.25)."""
    g = torch.Generator().manual_seed(0)
    offsets = {s: 2 * torch.randn(8, generator=g) for s in "abcd"}

    def codes(n, leak):
        spk = [s for s in "abcd" for _ in range(n)]
        return [torch.randn(10, 8, generator=g) + (offsets[s] if leak else 0) for s in spk], spk

    for leak, lo, hi in ((True, 0.9, 1.0), (False, 0.0, 0.45)):
        (xtr, ytr), (xte, yte) = codes(6, leak), codes(3, leak)
        acc = conversion.speaker_leakage(xtr, ytr, xte, yte)
        assert lo <= acc <= hi, (leak, acc)
    with pytest.raises(ValueError, match="at least 2"):
        conversion.speaker_leakage([torch.zeros(3, 2)], ["a"], [torch.zeros(3, 2)], ["a"])
    with pytest.raises(ValueError, match="3 training codes but 2 training speakers"):
        conversion.speaker_leakage(xtr[:3], ytr[:2], xte, yte)        # zip used to drop a code silently


def test_mean_spread_matches_numpy():
    runs = [{"x": 1.0, "y": 2.0, "ok": True}, {"x": 2.0, "y": 2.0, "ok": False}, {"x": 4.0, "y": 5.0, "ok": True}]
    out = conversion.mean_spread(runs)
    assert set(out) == {"x", "y"}                                 # booleans are not averaged
    assert out["x"][0] == pytest.approx(7 / 3) and out["x"][1] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert out["x"][2] == 3
    assert math.isnan(conversion.mean_spread(runs[:1], ["x"])["x"][1])
    with pytest.raises(ValueError, match="no runs"):
        conversion.mean_spread([])


def test_results_table_shows_mean_and_spread():
    html = show.table({"AutoVC": {"a": (0.5, 0.25, 3), "b": "n/a"}, "Cycle": {"a": (0.75, float("nan"), 1)}},
                      {"a": "score", "b": "note"}, caption="cap", digits=2).data
    assert "<caption>cap</caption>" in html and "<th>score</th><th>note</th>" in html
    assert "0.50 &plusmn; 0.25" in html and ">0.75<" in html and "n/a" in html


def test_seconds_times_a_call():
    calls = []
    t = conversion.seconds(lambda: calls.append(sum(range(20000))), repeats=3, warmup=1)
    assert len(calls) == 4 and 0 < t < 1


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = AutoVC(4, 4, width=1 / 32, dim_emb=16).eval()
    stats = (torch.zeros(80, 1), torch.ones(80, 1))
    return model, stats


def _speech_like(seconds=0.6, f0=150.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) * np.hanning(len(t))).astype(np.float32)


def test_wave_to_mel_and_back(tiny):
    _, stats = tiny
    wav = _speech_like()
    mel = wave_to_mel(wav, SR, stats)
    assert mel.shape == (len(wav) // AUTOVC_MEL["hop"] + 1, 80)
    back = mel_to_audio(mel, stats, n_iter=4)
    assert back.dim() == 1 and abs(len(back) - len(wav)) <= AUTOVC_MEL["hop"] and torch.isfinite(back).all()


@pytest.mark.parametrize("wav, sr, match", [
    (_speech_like(0.1), SR, "shorter"),
    (np.zeros(SR, dtype=np.float32), SR, "silent"),
    (_speech_like(), 22050, "22050 Hz, expected 16000"),
    (np.stack([_speech_like()] * 2, axis=1), SR, "mono"),
    (np.full(SR, np.nan, dtype=np.float32), SR, "NaN"),
])
def test_conversion_of_bad_input_says_what_is_wrong(tiny, wav, sr, match):
    model, stats = tiny
    e = torch.nn.functional.normalize(torch.ones(16), dim=0)
    with pytest.raises(AudioError, match=match):
        convert_wave(model, wav, sr, e, e, stats, n_iter=2)


def test_integer_pcm_is_scaled_not_taken_as_huge_floats(tiny):
    """An int16 recording (soundfile's dtype="int16") gives the mel of the same float clip."""
    _, stats = tiny
    wav = _speech_like()
    pcm = np.round(wav * 32767).astype(np.int16)
    np.testing.assert_allclose(wave_to_mel(pcm, SR, stats).numpy(), wave_to_mel(pcm / 32768.0, SR, stats).numpy(),
                               atol=1e-4)
    assert float(wave_to_mel(pcm, SR, stats).max()) < float(wave_to_mel(wav * 1000, SR, stats).max())


def test_convert_wave_returns_audio_of_the_input_length(tiny):
    model, stats = tiny
    e1, e2 = torch.eye(16)[0], torch.eye(16)[1]
    wav = _speech_like(1.0)
    out = convert_wave(model, wav, SR, e1, e2, stats, n_iter=2)
    assert out.dim() == 1 and abs(len(out) - len(wav)) <= AUTOVC_MEL["hop"]


class _Utt:
    def __init__(self, id, speaker):
        self.id, self.speaker = id, speaker


def test_reconstruction_codes_and_pairs(tiny):
    model, stats = tiny
    g = torch.Generator().manual_seed(1)
    mels = {f"u{i}": torch.randn(37 + i, 80, generator=g) for i in range(3)}
    emb = {"a": torch.eye(16)[0], "b": torch.eye(16)[1]}
    items = [_Utt("u0", "a"), _Utt("u1", "b"), _Utt("u2", "a")]
    err = reconstruction_error(model, items, mels, emb)
    assert err > 0 and math.isfinite(err)
    codes = codes_of(model, items, mels, emb)
    assert [c.shape for c in codes] == [(math.ceil(m.shape[0] / 4), 8) for m in mels.values()]
    cm, wavs = convert_pairs(model, [(items[0], items[1])], mels, emb, stats, n_iter=2)
    assert cm[0].shape == mels["u0"].shape and wavs[0].dim() == 1
    with pytest.raises(ValueError, match="no utterances"):
        reconstruction_error(model, [], mels, emb)


def test_score_agrees_with_the_judges_called_one_by_one(tmp_path):
    """score() pools the judges' verdicts: each number equals the same judge function applied
    to each conversion separately (untrained judges: the arithmetic is what is tested)."""
    import soundfile as sf

    from voicebook import judges as J
    from voicebook.data.speech import file_utterance
    from voicebook.metrics import mcd_dtw
    from voicebook.vocoder import encode

    torch.manual_seed(0)
    judges = J.Judges(J.SpeakerJudge(["a", "b"], channels=16, embed_dim=8).eval(),
                      J.ContentJudge(["a", "b", "k"], channels=16, conv_layers=1).eval())
    utts = {}
    for i, (spk, f0) in enumerate((("a", 120), ("b", 210), ("a", 130), ("b", 190))):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, _speech_like(0.8, f0), SR)
        phones = (("a", 0.0, 0.2), ("k", 0.2, 0.4), ("b", 0.4, 0.8))[: 2 + i % 2]
        utts[i] = file_utterance(path, id=f"u{i}", speaker=spk, language="en-us", text="", sentence_id=f"s{i % 2}",
                                 sex="F", split="test", phonemes=phones)
    pairs = [(utts[0], utts[1]), (utts[3], utts[2])]
    converted = [_speech_like(0.7, 200), _speech_like(0.9, 125)]
    centroids = {"b": np.eye(8, dtype=np.float32)[0], "a": np.eye(8, dtype=np.float32)[1]}
    out = conversion.score(judges, converted, pairs, sr=SR, centroids=centroids)

    hits = [J.identify(judges.speaker, w, sr=SR) == t.speaker for w, (_, t) in zip(converted, pairs)]
    sims = [float(J.speaker_embeddings(judges.speaker, w, sr=SR) @ centroids[t.speaker])
            for w, (_, t) in zip(converted, pairs)]
    mcds = [mcd_dtw(encode(t.load().astype(np.float64), SR, f0_method="dio").mcep,
                    encode(w.astype(np.float64), SR, f0_method="dio").mcep) for w, (_, t) in zip(converted, pairs)]
    assert out["speaker_accuracy"] == pytest.approx(np.mean(hits))
    assert out["speaker_similarity"] == pytest.approx(np.mean(sims), abs=1e-5)
    assert out["mcd_dtw_db"] == pytest.approx(np.mean(mcds), rel=1e-4)
    per = J.phoneme_error_rate(judges.content, converted, [s for s, _ in pairs], sr=SR)
    assert out["phoneme_error_rate"] == pytest.approx(per)
    assert [i["source"] for i in out["items"]] == ["u0", "u3"] and out["failed"] == 0
    # a collapsed system's silent conversion is scored as heard (nobody, saying nothing), not an error
    for dead in (np.zeros(SR, np.float32), np.full(SR, np.nan, np.float32), _speech_like(0.02, 200)):
        half = conversion.score(judges, [dead, converted[1]], pairs, sr=SR, centroids=centroids)
        n0, n1 = (len(J.reference_phones(s, judges.content.keep_length)) for s, _ in pairs)
        per1 = J.phoneme_error_rate(judges.content, converted[1], pairs[1][0], sr=SR)
        assert half["failed"] == 0.5 and half["items"][0]["failed"] and not half["items"][1]["failed"]
        assert half["speaker_accuracy"] == pytest.approx(hits[1] / 2)
        assert half["speaker_similarity"] == pytest.approx(sims[1] / 2, abs=1e-5)
        assert half["phoneme_error_rate"] == pytest.approx((n0 + per1 * n1) / (n0 + n1))
        assert half["mcd_dtw_db"] == pytest.approx(mcds[1], rel=1e-4)
    none = conversion.score(judges, [np.zeros(SR, np.float32)] * 2, pairs, sr=SR, centroids=centroids)
    assert none["failed"] == 1 and none["speaker_accuracy"] == 0 and none["phoneme_error_rate"] == 1
    assert math.isnan(none["mcd_dtw_db"])
    with pytest.raises(ValueError, match="2 pairs"):
        conversion.score(judges, converted[:1], pairs, sr=SR, centroids=centroids)
    with pytest.raises(AudioError, match="1-D"):
        conversion.score(judges, [np.zeros((2, 100))] * 2, pairs, sr=SR, centroids=centroids)


def test_better_needs_more_than_the_seed_spread():
    nan = float("nan")
    assert conversion.better((8.0, 0.5, 3), (9.0, 0.4, 3), lower=True)          # 1.0 dB apart > 0.5
    assert not conversion.better((8.0, 0.6, 3), (8.5, 0.4, 3), lower=True)      # 0.5 apart < 0.6
    assert not conversion.better((9.0, 0.1, 3), (8.0, 0.1, 3), lower=True)      # worse
    assert conversion.better((0.9, 0.05, 3), (0.5, 0.1, 3), lower=False)        # higher is better here
    assert conversion.better((0.51, nan, 1), (0.5, nan, 1), lower=False)        # one run: any difference
    assert not conversion.better((0.55, 0.1, 3), (0.5, nan, 1), lower=False)    # a reference number: x's spread
    assert conversion.better((nan, nan, 1), (0.5, 0.1, 3), lower=True) is None   # not measured: no verdict
    assert conversion.better((0.5, 0.1, 3), (nan, nan, 1), lower=False) is None


def test_target_centroids_names_utterances_without_a_mel():
    """A mel missing for a target's utterance is named (it was a bare KeyError: 'u1')."""
    from types import SimpleNamespace

    items = [SimpleNamespace(id="u1", speaker="a"), SimpleNamespace(id="u2", speaker="b")]
    with pytest.raises(KeyError, match=r"no log-mel for 1 utterance\(s\) of 'a', e.g. \['u1'\]"):
        conversion.target_centroids(None, {"u2": torch.zeros(80, 10)}, items, ["a"])
