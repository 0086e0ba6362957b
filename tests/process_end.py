"""How the torchrun workers (tests/sharded_step.py, tests/distributed_step.py) end: the processes meet, end
their group, and leave without Python's finalization.

Why: once in a while a worker that had finished its work and ended its group still died at exit with
"terminate called without an active exception" (SIGABRT, seen once in CI on
test_a_backbone_sharded_from_the_start_equals_one_sharded_whole, not reproduced in 25 local runs). That is
torch's teardown, not the code under test: gloo's worker threads can outlive the group (FSDP's device meshes
keep it referenced) and abort when the interpreter finalizes them (pytorch/pytorch#190489; the atexit fix,
#179291, was abandoned). The workers have written everything the tests read before they end; leaving with
``os._exit`` skips only the finalization, and faulthandler prints every thread's stack should the abort come
earlier, in a collective.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import torch


def watch() -> None:
    """Print every thread's Python stack on SIGABRT/SIGSEGV (to stderr, which the tests show on failure)."""
    faulthandler.enable(all_threads=True)


def end(code: int = 0) -> None:
    """Meet the other processes, end the group, flush and exit with `code` without finalizing."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # no process ends the group while another is still in a collective
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
