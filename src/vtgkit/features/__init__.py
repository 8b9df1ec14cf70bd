"""From video files to model inputs: decoding, frame sampling, a frozen CLIP, and cache extraction.

Modules: ``decoding`` (PyAV, both official samplers), ``frame_transforms``, ``clip_model`` / ``clip_weights`` /
``torchscript_archive`` (CLIP and its weight files), ``tokenizer``, ``encoding`` (what each cache stores),
``presets``, ``extraction`` / ``manifest`` / ``prefetch`` (resumable batch extraction; files are written through
``vtgkit.atomic_files``).
Entry point: ``vtgkit extract`` (``vtgkit.cli.extract``).
"""
