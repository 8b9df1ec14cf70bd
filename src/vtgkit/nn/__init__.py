"""Blocks and loss functions shared by two or more vtgkit models (R²-Tuning, FlashVTG).

State-dict key names follow the official implementations (``pyramid.blocks.1.1.weight``,
``class_head.module.1.weight``, ``pooling.att.weight``) so that checkpoint conversion tables stay short.
"""
