#!/usr/bin/env bash
# Sets up vtgkit with its test dependencies and runs the default test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
# torch first: the local CPU wheel. A loose torch requirement resolved first would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev]"
# The reference CLIP implementation for tests/features (its model code only; --no-deps because it requires
# torchvision, which the tests never import).
python -m pip install --quiet --no-deps "openai-clip==1.0.1"
# The reference SlowFast (pytorchvideo's create_slowfast) for tests/features/test_slowfast_model.py, --no-deps for
# the same reason (its package imports torchvision.ops only for a detection head; the test stands in for it).
python -m pip install --quiet --no-deps "pytorchvideo==0.1.5" "fvcore==0.1.5.post20221221" "iopath==0.1.10" \
    "portalocker==4.4.2" "yacs==0.1.8" "termcolor==3.3.0" "tabulate==0.10.0"
python -m ruff check src tests benchmarks
python -m pytest "$@"
