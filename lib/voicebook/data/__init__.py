"""Data for the chapters: offline generators and readers of the real corpora, both yielding the
same items, plus the on-disk cache (:mod:`voicebook.data.cache`)."""

from . import cache
from .espeak import SAMPLE_RATE, EspeakError, synthesize
from .speech import (SIZES, SPEAKERS, Speaker, SpeechCorpus, Utterance, generate_corpus, load_corpus,
                     make_sentences, plan_corpus)
from .vcc2018 import read_vcc2018
from .vctk import read_vctk

__all__ = ["cache", "SAMPLE_RATE", "EspeakError", "synthesize", "SIZES", "SPEAKERS", "Speaker",
           "SpeechCorpus", "Utterance", "generate_corpus", "load_corpus", "make_sentences", "plan_corpus",
           "read_vcc2018", "read_vctk"]
