"""voicebook.judges: the speaker and content judges of voice conversion, and their scores.

Bounds on the trained judges were measured on the smoke corpus (2 CPU cores; see the module's
PRESETS) and widened by a margin: held-out speaker accuracy 0.98 (chance 0.045), test PER 0.19.
"""

from __future__ import annotations

import functools
import itertools
import random

import numpy as np
import pytest
import torch

from voicebook import judges as J
from voicebook.checks import AudioError
from voicebook.data import load_corpus
from voicebook.data import phonemes as ph
from voicebook.train import CheckpointError, save_checkpoint

SPEAKERS = ["a", "b", "c"]
INVENTORY = ["sil", "a", "b", "k", "t"]


def small_speaker_judge(seed=0):
    torch.manual_seed(seed)
    return J.SpeakerJudge(SPEAKERS, channels=16, embed_dim=8)


def small_content_judge(seed=0, rnn_layers=1):
    torch.manual_seed(seed)
    return J.ContentJudge(INVENTORY, channels=16, conv_layers=2, rnn_layers=rnn_layers, hidden=8)


def random_mels(batch, frames, seed=0, n_mels=80):
    return torch.randn(batch, n_mels, frames, generator=torch.Generator().manual_seed(seed)) - 6.0


# ---------------------------------------------------------------- edit distance and PER arithmetic


@pytest.mark.parametrize("ref, hyp, expected", [
    ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("", "ab", 2), ("abc", "", 3), ("abc", "abc", 0),
    (["a", "b"], ["b", "a"], 2), (["aI", "t"], ["a", "I", "t"], 2), ("intention", "execution", 5),
])
def test_edit_distance_hand_computed(ref, hyp, expected):
    assert J.edit_distance(ref, hyp) == expected == J.edit_distance(hyp, ref)


def test_edit_distance_matches_the_recursive_definition():
    def slow(a, b):
        @functools.lru_cache(None)
        def d(i, j):
            if i == 0 or j == 0:
                return i + j
            return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        return d(len(a), len(b))

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        assert J.edit_distance(a, b) == slow(tuple(a), tuple(b))


def test_phoneme_error_rate_arithmetic(monkeypatch):
    """Scoring only: the transcriptions are given, the references normalised like the targets."""
    heard = [["h", "@", "oU"], ["k", "a", "t"], ["d", "O", "g", "z"]]
    monkeypatch.setattr(J, "_transcripts", lambda judge, x, sr: ([heard[i] for i in x], False))
    judge = small_content_judge()
    refs = [["_", "h", "'@", "l", "_|", "'oU", "_:"],  # one deletion in 4 (pauses not scored)
            [("k", 0.0, 0.1), ("'a", 0.1, 0.2), ("t", 0.2, 0.3)],  # identical: 0
            ["d", "O", "g"]]  # one insertion in 3
    per = J.phoneme_error_rate(judge, [0, 1, 2], refs, reduce=False)
    np.testing.assert_allclose(per, [1 / 4, 0.0, 1 / 3])
    assert J.phoneme_error_rate(judge, [0, 1, 2], refs) == pytest.approx(2 / 10)  # corpus level
    assert J.phoneme_error_rate(judge, [1], refs[1:2]) == 0.0
    with pytest.raises(ValueError, match="2 inputs but 3 references"):
        J.phoneme_error_rate(judge, [0, 1], refs)


def test_greedy_ctc_decoding():
    # frames: blank, t, t, blank, a, a, blank, a  -> "t a a" (a blank separates the repeated a)
    best = [0, 5, 5, 0, 2, 2, 0, 2]
    log_probs = torch.full((len(best), len(INVENTORY) + 1), -10.0)
    log_probs[torch.arange(len(best)), best] = 0.0
    assert J._greedy(log_probs, INVENTORY) == ["t", "a", "a"]


# ---------------------------------------------------------------- models: shapes, gradients, batching


def test_speaker_judge_shapes_and_gradients():
    judge = small_speaker_judge()
    logits, emb = judge(random_mels(4, 50), torch.tensor([50, 40, 30, 12]))
    assert logits.shape == (4, 3) and emb.shape == (4, 8)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    assert logits.abs().max() <= judge.scale + 1e-4  # scaled cosines
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    for name, p in judge.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("rnn_layers", [0, 1])
def test_content_judge_shapes_and_gradients(rnn_layers):
    judge = small_content_judge(rnn_layers=rnn_layers)
    lengths = torch.tensor([30, 22])
    log_probs = judge(random_mels(2, 30), lengths)
    assert log_probs.shape == (2, 30, len(INVENTORY) + 1)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 30))
    targets = torch.tensor([2, 4, 5, 1, 3])
    loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, lengths, torch.tensor([3, 2]))
    loss.backward()
    for name, p in judge.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_batching_does_not_change_a_judgement():
    """An utterance scored in a padded batch gets exactly what it gets alone (eval mode)."""
    short = random_mels(1, 23, seed=1)[0]
    long = random_mels(1, 61, seed=2)[0]
    for judge in (small_speaker_judge().eval(), small_content_judge().eval()):
        together = J._apply(judge, [long, short])
        alone = J._apply(judge, [short])
        if isinstance(judge, J.SpeakerJudge):
            torch.testing.assert_close(together[1][1], alone[0][1], atol=1e-5, rtol=1e-5)
        else:
            torch.testing.assert_close(together[1], alone[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_say_what_was_expected():
    judge = small_speaker_judge()
    with pytest.raises(AudioError, match=r"expected a \(80, frames\) natural-log mel .* got shape \(40, 100\)"):
        J.speaker_embeddings(judge, torch.zeros(40, 100))
    with pytest.raises(AudioError, match=r"\(batch, 80, frames\)"):
        judge(torch.zeros(2, 40, 100))
    with pytest.raises(AudioError, match="sample rate"):
        J.identify(judge, np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    with pytest.raises(AudioError, match="silent"):
        J.identify(judge, np.zeros(16000, np.float32), sr=16000)
    with pytest.raises(AudioError, match="NaN"):
        J.identify(judge, torch.full((80, 20), float("nan")))
    with pytest.raises(AudioError, match="no inputs"):
        J.identify(judge, [])
    with pytest.raises(ValueError, match=r"\['zz'\] are not speakers the judge knows"):
        J.speaker_accuracy(judge, [random_mels(1, 30)[0]], ["zz"])
    with pytest.raises(ValueError, match="one of them"):
        J.speaker_similarity(judge, random_mels(1, 30)[0])
    with pytest.raises(AudioError, match=r"converted_wav.*shorter than the 0.050 s"):
        J.mcd_to_target(np.ones(10, np.float32), np.ones(16000, np.float32), 16000)
    with pytest.raises(AudioError, match=r"converted_wav.*silent"):
        J.mcd_to_target(np.zeros(16000, np.float32), np.ones(16000, np.float32), 16000)


# ---------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path):
    for judge in (small_speaker_judge(), small_content_judge()):
        judge.mel_mean.fill_(-5.0)
        judge.mel_std.fill_(2.0)
        judge.eval()
        path = J.save_judge(judge, tmp_path / f"{type(judge).__name__}.pt", step=7)
        raw = torch.load(path, weights_only=True)
        assert raw["step"] == 7 and raw["judge_kind"] in J.KINDS
        loaded = J.load_judge(path, device="cpu")
        assert type(loaded) is type(judge) and not loaded.training
        assert loaded.config == judge.config
        assert getattr(loaded, "speakers", None) == getattr(judge, "speakers", None)
        assert getattr(loaded, "inventory", None) == getattr(judge, "inventory", None)
        mels = random_mels(2, 40, seed=3)
        with torch.no_grad():
            a, b = judge(mels), loaded(mels)
        for x, y in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b]):
            assert torch.equal(x, y)


def test_loading_something_else_fails_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "other.pt", torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="not a judge checkpoint"):
        J.load_judge(path)
    with pytest.raises(TypeError, match="SpeakerJudge or ContentJudge"):
        J.save_judge(torch.nn.Linear(2, 2), tmp_path / "x.pt")


# ---------------------------------------------------------------- trained on the smoke corpus


@pytest.fixture(scope="module")
def smoke():
    return load_corpus(size="smoke")


@pytest.fixture(scope="module")
def trained(smoke, tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges")
    judges = J.train_judges(smoke, "smoke", seed=0, device="cpu", ckpt_dir=folder, progress=False)
    return judges, folder, J.judge_report(judges, smoke)


@pytest.mark.slow
def test_the_judges_learn(trained):
    judges, _, report = trained
    assert report["speaker_chance"] == pytest.approx(1 / 22)
    assert report["speaker_accuracy"] > 0.8  # measured 0.98 on dev + test sentences it never heard
    assert report["same_speaker_cosine"] > report["nearest_other_cosine"] + 0.2 > report["other_speaker_cosine"]
    assert judges.speaker.history.eval[-1]["dev_acc"] > 0.8
    ctc = [row["ctc"] for row in judges.content.history.train]
    assert ctc[-1] < 0.35 * ctc[0]  # the CTC loss falls (measured 15 -> 2)
    assert report["phoneme_error_rate"] < 0.4  # measured 0.19 on the test sentences
    assert report["per_by_language"]["en-us"] < 0.35


@pytest.mark.slow
def test_trained_judges_on_waveforms_and_scores(trained, smoke):
    (speaker, content), _, _ = trained
    utt, other = smoke.pairs("en-us-f2", "en-gb-m3", split="test")[0]
    wav = utt.load()
    mel = J.as_mels(wav, sr=utt.sr)[0][0]
    assert J.identify(speaker, wav, sr=utt.sr) == J.identify(speaker, mel) == "en-us-f2"
    assert J.speaker_accuracy(speaker, [wav, other.load()], ["en-us-f2", "en-gb-m3"], sr=utt.sr) == 1.0
    refs = [u.load() for u in smoke.select(speaker="en-us-f2", split="train")]
    own = J.speaker_similarity(speaker, wav, refs, sr=utt.sr)
    centroid = J.speaker_centroid(speaker, refs, sr=utt.sr)
    assert own == pytest.approx(J.speaker_similarity(speaker, wav, centroid=centroid, sr=utt.sr), abs=1e-6)
    assert own > J.speaker_similarity(speaker, other.load(), centroid=centroid, sr=utt.sr) + 0.3
    heard = J.transcribe(content, wav, sr=utt.sr)
    assert J.phoneme_error_rate(content, wav, heard, sr=utt.sr) == 0.0
    assert J.phoneme_error_rate(content, wav, utt, sr=utt.sr) < 0.5
    assert J.phoneme_error_rate(content, mel, utt) == J.phoneme_error_rate(content, wav, utt.phonemes, sr=utt.sr)
    # MCD: the same recording scores 0, another speaker's recording of the sentence does not
    assert J.mcd_to_target(wav, wav, utt.sr) == pytest.approx(0.0, abs=1e-6)
    assert J.mcd_to_target(other.load(), wav, utt.sr) > 3.0
    # a broken conversion with no voiced frame (noise) still gets a distance, and a large one
    noise = np.random.default_rng(0).normal(0, 0.1, len(wav)).astype(np.float32)
    assert J.mcd_to_target(noise, wav, utt.sr) > J.mcd_to_target(other.load(), wav, utt.sr)


@pytest.mark.slow
def test_checkpoints_of_trained_judges(trained, smoke):
    judges, folder, _ = trained
    loaded = J.load_judges(folder, device="cpu")
    mels = [J.as_mels(u.load(), sr=u.sr)[0][0] for u in smoke.select(split="test")[:3]]
    for a, b in zip(judges, loaded):
        for x, y in zip(J._apply(a, mels), J._apply(b, mels)):
            for s, t in zip(*(v if isinstance(v, tuple) else (v,) for v in (x, y))):
                assert torch.equal(s, t)
    again = J.train_judges(smoke, "smoke", seed=0, device="cpu", ckpt_dir=folder, progress=False)  # resumes: done
    assert all(torch.equal(p, q) for p, q in itertools.chain(
        zip(again.speaker.state_dict().values(), judges.speaker.state_dict().values()),
        zip(again.content.state_dict().values(), judges.content.state_dict().values())))


def test_mcd_to_target_analyses_each_real_utterance_once(speech16, monkeypatch):
    """Many conversions scored against one real utterance: its mel-cepstrum is computed once,
    and the cached distance equals a fresh computation."""
    J._TARGET_MCEPS.clear()
    target = (speech16.wav * 0.9).astype(np.float32)
    conv = speech16.wav.astype(np.float32)
    fresh = J.mcd_to_target(conv, target, 16000)
    calls = []
    real = J._envelope_mcep
    monkeypatch.setattr(J, "_envelope_mcep", lambda x, *a: calls.append(len(x)) or real(x, *a))
    assert J.mcd_to_target(conv, target, 16000) == fresh
    assert J.mcd_to_target(conv[::-1].copy(), target, 16000) > 0
    assert len(calls) == 2                                     # the two conversions, not the target again
    J.mcd_to_target(conv, target * 0.5, 16000)                 # another target: analysed
    assert len(calls) == 4
