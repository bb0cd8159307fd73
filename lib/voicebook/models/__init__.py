"""The chapters' models, one module per paper family.

Chapter 1 (cycle-consistent AutoVC): :mod:`~voicebook.models.speaker_encoder` (the GE2E
speaker encoder), :mod:`~voicebook.models.autovc` (AutoVC, Fig. 7) and
:mod:`~voicebook.models.cycle_autovc` (CycleAutoVC, the training steps and schedules). Their
losses live in :mod:`voicebook.losses`.
"""
