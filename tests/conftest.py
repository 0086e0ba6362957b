"""Shared fixtures: the benchmark mirror and the original prompts.

The tiny random backbones and tokenizers are `attempt.testing`."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def forgetting_registered_tasks():
    """Inside, tasks may be registered on purpose (task files, runs trained from them); on leaving, they are
    forgotten, as a new process would forget them, so other tests see the built-in tasks only."""
    from attempt.tasks import base, user

    registry, defined = dict(base._REGISTRY), dict(user._DEFINED)
    yield
    base._REGISTRY.clear(), base._REGISTRY.update(registry)
    user._DEFINED.clear(), user._DEFINED.update(defined)


@pytest.fixture
def forget_registered_tasks():
    """Each test's registered tasks are forgotten after it. The modules that register tasks opt in with
    ``pytestmark = pytest.mark.usefixtures("forget_registered_tasks")``; building a TrainConfig registers
    nothing, so the other modules need nothing."""
    with forgetting_registered_tasks():
        yield


@pytest.fixture
def process_group(tmp_path):
    """A gloo group of one process, as torchrun's processes have; destroyed after the test if still alive."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    yield dist
    if dist.is_initialized():
        dist.destroy_process_group()
