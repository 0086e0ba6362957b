"""Shared fixtures: the benchmark mirror and the original prompts.

The tiny random backbones and tokenizers are `attempt.testing`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark mirror: ATTEMPT_DATA_DIR, else ../shared/data beside the repository."""
    path = Path(os.environ.get("ATTEMPT_DATA_DIR", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"benchmark mirror not found at {path} (set ATTEMPT_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def original_prompts_dir() -> Path:
    path = REPO.parent / "shared" / "original-prompts"
    if not path.is_dir():
        pytest.skip(f"original ATTEMPT prompts not found at {path}")
    return path
