"""Training: typed configs and official recipes, the loop (accumulation, mixed precision, non-finite-step guard,
evaluation, atomic checkpoints with exact resume), DistributedDataParallel via torchrun, run logs.

Entry points: ``vtgkit train RECIPE`` (``vtgkit.cli.train``), ``vtgkit.train.loop.Trainer`` for custom runs.
"""
