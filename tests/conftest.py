"""Shared fixtures: speech-like test signals with a known F0 (see helpers_signals.py)."""

from __future__ import annotations

import pytest

from helpers_signals import speech_like


@pytest.fixture(scope="session")
def speech22():
    """Speech-like clip at 22050 Hz: 0.6 s voiced (F0 100->200 Hz), noise burst, silence."""
    return speech_like(22050)


@pytest.fixture(scope="session")
def speech16():
    """The same clip generated at 16000 Hz."""
    return speech_like(16000)
