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
python -m ruff check src tests benchmarks
python -m pytest "$@"
