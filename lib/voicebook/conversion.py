"""Scoring voice conversions with the judges, the same way in every chapter that converts voices.

A *pair* is ``(source, target)``: two real utterances of the same sentence by two speakers
(:meth:`voicebook.data.speech.SpeechCorpus.pairs`). A system converts ``source`` towards the
target speaker; the judges (:mod:`voicebook.judges`, trained once on real speech, never on
conversions) then score the conversion as a listener would:

- speaker: is it identified as the target (accuracy), and how close is it to the target's
  centroid (cosine similarity, on the scale that :func:`voicebook.judges.judge_report` gives);
- content: phoneme error rate of the judge's transcription against the *source* sentence;
- spectrum: mel-cepstral distortion after DTW against the target's real utterance
  (``target``): possible because the corpus is parallel, although training is not.

Also here: the speaker-leakage probe of chapter 1's bottleneck study (section 4.2) and
:func:`mean_spread` for tables over seeds.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from . import judges as J
from .checks import AudioError, check_wave

__all__ = ["target_centroids", "score", "speaker_leakage", "mean_spread", "better", "seconds"]

SCORES = ("speaker_accuracy", "speaker_similarity", "phoneme_error_rate", "mcd_dtw_db")


def target_centroids(judge: J.SpeakerJudge, mels: Mapping[str, torch.Tensor], items,
                     speakers: Sequence[str]) -> dict[str, np.ndarray]:
    """``{speaker: (embed_dim,)}``: the speaker judge's centroid of each target's real speech.

    ``items``: utterances (``.id``, ``.speaker``) to average, e.g. the training split (never
    the test sentences that are converted); ``mels``: their judge-ready log-mels ``{id:
    (n_mels, frames)}`` (:func:`voicebook.data.features.log_mels` at ``AUTOVC_MEL``).
    """
    out = {}
    for spk in speakers:
        missing = [u.id for u in items if u.speaker == spk and u.id not in mels]
        if missing:
            raise KeyError(f"target_centroids: no log-mel for {len(missing)} utterance(s) of {spk!r}, e.g. {missing[:3]}")
        refs = [mels[u.id] for u in items if u.speaker == spk]
        if not refs:
            raise ValueError(f"target_centroids: no utterance of speaker {spk!r} among the {len(items)} items")
        out[spk] = J.speaker_centroid(judge, refs)
    return out


def score(judges: J.Judges, converted: Sequence, pairs: Sequence[tuple], *, sr: int,
          centroids: Mapping[str, np.ndarray]) -> dict:
    """Judge every conversion of ``pairs``.

    ``converted[i]``: a 1-D waveform at ``sr`` Hz, the conversion of ``pairs[i][0]`` towards
    the speaker of ``pairs[i][1]``; ``centroids``: from :func:`target_centroids`. Returns the
    corpus-level means ``{name: float for name in SCORES}`` (phoneme error rate pooled over
    phonemes, the rest averaged over conversions), ``"failed"``: the fraction of conversions
    that are no sound (silent, NaN or inf, or under 50 ms: what a collapsed system gives), and
    ``"items"``: one dict of per-conversion scores per pair. A failed conversion is scored as
    what a listener hears in it: nobody (not the target, similarity 0) saying nothing (every
    phoneme deleted: PER 1); its MCD is undefined, and the MCD mean is over the others (NaN if
    none). Phoneme error rate is NaN when a source has neither phoneme timings nor a transcript
    (VCC2018 ships none).
    """
    if len(converted) != len(pairs) or not pairs:
        raise ValueError(f"score: {len(converted)} conversions for {len(pairs)} pairs (need one each, at least one)")
    wavs = [_mono(w, i) for i, w in enumerate(converted)]
    ok = np.array([_is_sound(w, sr) for w in wavs])
    heard = [w for w, k in zip(wavs, ok) if k]
    heard_targets = [t.speaker for (_, t), k in zip(pairs, ok) if k]
    hits, sims = np.zeros(len(pairs), bool), np.zeros(len(pairs))
    if heard:
        hits[ok] = np.asarray(J.identify(judges.speaker, heard, sr=sr)) == np.asarray(heard_targets)
        emb = np.atleast_2d(J.speaker_embeddings(judges.speaker, heard, sr=sr))
        sims[ok] = [e @ centroids[t] for e, t in zip(emb, heard_targets)]
    sources = [s for s, _ in pairs]
    if all(s.phonemes or s.text for s in sources):
        per = np.ones(len(pairs))
        if heard:
            per[ok] = J.phoneme_error_rate(judges.content, heard, [s for (s, _), k in zip(pairs, ok) if k], sr=sr,
                                           reduce=False)
        lengths = np.array([len(J.reference_phones(s, judges.content.keep_length)) for s in sources], float)
        per_pooled = float((per * lengths).sum() / lengths.sum())                # sum(edits) / sum(lengths)
    else:       # e.g. VCC2018 without transcripts: nothing to score the content against
        per, per_pooled = np.full(len(pairs), np.nan), float("nan")
    mcd = np.array([J.mcd_to_target(w, t.load(), sr, target_sr=t.sr) if k else np.nan
                    for w, k, (_, t) in zip(wavs, ok, pairs)])
    items = [dict(source=s.id, target=t.id, failed=not bool(k), speaker_hit=bool(h), speaker_similarity=float(c),
                  phoneme_error_rate=float(p), mcd_dtw_db=float(m))
             for (s, t), k, h, c, p, m in zip(pairs, ok, hits, sims, per, mcd)]
    return dict(speaker_accuracy=float(hits.mean()), speaker_similarity=float(sims.mean()),
                phoneme_error_rate=per_pooled, mcd_dtw_db=float(np.nanmean(mcd)) if ok.any() else float("nan"),
                failed=float(1 - ok.mean()), items=items)


def _is_sound(wav: np.ndarray, sr: int) -> bool:
    """Can a listener (the judges, the MCD) hear anything in a conversion? Not if it is silent
    (peak under -80 dBFS), not finite, or shorter than 50 ms."""
    try:
        check_wave(wav, "conversion", sr=sr, min_seconds=0.05, allow_silence=False)
    except AudioError:
        return False
    return True


def _mono(wav, i: int) -> np.ndarray:
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if x.ndim != 1:
        raise AudioError(f"score: conversion {i} must be a 1-D waveform, got shape {x.shape}")
    return x.astype(np.float32)


def speaker_leakage(train_codes: Sequence[torch.Tensor], train_speakers: Sequence[str],
                    test_codes: Sequence[torch.Tensor], test_speakers: Sequence[str], *, seed: int = 0) -> float:
    """How much speaker identity leaks through a content encoder (section 4.2's "too wide").

    A linear probe (multinomial logistic regression, standardised inputs) learns the speaker
    from single code frames ``(frames', code_dim)`` of the training utterances and is scored
    on the code frames of held-out utterances: the fraction of frames it attributes to the
    right speaker. Chance is ``1 / n_speakers``; a bottleneck that only carries content stays
    near it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def frames(codes, speakers, which):
        if len(codes) != len(speakers):
            raise ValueError(f"speaker_leakage: {len(codes)} {which} codes but {len(speakers)} {which} speakers (one per utterance)")
        x = [torch.as_tensor(c).reshape(-1, torch.as_tensor(c).shape[-1]).float().cpu().numpy() for c in codes]
        y = np.concatenate([[s] * len(f) for f, s in zip(x, speakers)])
        return np.concatenate(x), y

    (x_tr, y_tr), (x_te, y_te) = frames(train_codes, train_speakers, "training"), frames(test_codes, test_speakers, "test")
    if len(set(y_tr)) < 2:
        raise ValueError("speaker_leakage: the probe needs at least 2 training speakers")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0, random_state=seed))
    probe.fit(x_tr, y_tr)
    return float((probe.predict(x_te) == y_te).mean())


def mean_spread(runs: Sequence[Mapping[str, float]], keys: Sequence[str] | None = None) -> dict[str, tuple]:
    """``{key: (mean, std, n)}`` of the numbers under ``keys`` across ``runs`` (one dict per
    seed); std is the sample standard deviation (``nan`` for a single run)."""
    if not runs:
        raise ValueError("mean_spread: no runs to summarise")
    keys = keys or [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {}
    for k in keys:
        v = np.array([r[k] for r in runs], dtype=float)
        out[k] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v))
    return out


def better(x: tuple, y: tuple, *, lower: bool) -> bool | None:
    """Is ``x`` better than ``y`` by more than their seed spread? Both ``(mean, std, n)`` as
    :func:`mean_spread` gives them (a single run or a reference number: ``std`` NaN). The margin
    is the larger of the finite stds, 0 if there is none; ``lower``: smaller is better. None
    when either mean is NaN (not measured, e.g. PER without transcripts): nobody can tell."""
    if np.isnan(x[0]) or np.isnan(y[0]):
        return None
    margin = max([s for s in (x[1], y[1]) if not np.isnan(s)], default=0.0)
    return bool((y[0] - x[0] if lower else x[0] - y[0]) > margin)


def seconds(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs,
    waiting for the GPU (``torch.cuda.synchronize``) so asynchronous kernels are counted."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
