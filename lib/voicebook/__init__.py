"""voicebook: the shared library of a runnable book about the human voice.

Every chapter notebook imports from here: audio I/O and features (:mod:`voicebook.audio`),
the WORLD vocoder (:mod:`voicebook.vocoder`), data (:mod:`voicebook.data`), metrics
(:mod:`voicebook.metrics`), the training loop (:mod:`voicebook.train`), inline displays
(:mod:`voicebook.show`) and the chapter runner (:mod:`voicebook.runner`).
"""

__version__ = "0.1.0"
