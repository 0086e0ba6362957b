"""Worker for tests/test_train.py::test_two_processes_match_one_process.

    python tests/distributed_step.py OUT DATA_DIR PER_PROCESS_BATCH                  # one process
    torchrun --nproc_per_node 2 tests/distributed_step.py OUT DATA_DIR PER_PROCESS_BATCH

Trains ATTEMPT for one optimizer step on a tiny T5 (gloo on CPU) with global batch 4 and writes the run to OUT.
The RTE label words are one token each, so the token-mean loss of two halves averages to the full batch's.
Each process also writes ``OUT/predicted-rank{RANK}.jsonl``: the row indices it predicted itself in every
evaluation (``{"task": name, "indices": [...]}`` per call), to check that evaluation is sharded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import attempt.evaluation.evaluate
import process_end
from attempt.config import TrainConfig
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs.build import build_model
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import train
from attempt.utils.storage import write_safetensors


def spy_on_predictions(out: Path) -> None:
    """Record the row indices this process predicts (attempt.evaluation.evaluate._predict_task is looked up per call)."""
    predict_task = attempt.evaluation.evaluate._predict_task
    log = out / f"predicted-rank{os.environ.get('RANK', '0')}.jsonl"

    def spy(model, tokenizer, task, examples, **kwargs):
        with log.open("a") as f:
            f.write(json.dumps({"task": task.name, "indices": [e["index"] for e in examples]}) + "\n")
        return predict_task(model, tokenizer, task, examples, **kwargs)

    attempt.evaluation.evaluate._predict_task = spy


def main() -> None:
    process_end.watch()
    out, data_dir, per_process = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    spy_on_predictions(out)
    torch.set_num_threads(1)
    library = out.parent / f"{out.name}-lib"
    lib = PromptLibrary(library)
    # two different sources: with one source copied into the target prompt, the mixture does not depend on
    # the attention weights, the attention's gradient is rounding noise, and Adam's first step amplifies it
    if "qnli" not in lib:
        torch.manual_seed(100)
        for name in ("mnli", "qnli"):
            lib.add(SourcePrompt(name, torch.randn(4, 32) * 0.5, task=name), overwrite=True)
    config = TrainConfig(
        mode="attempt", backbone="tiny-t5", tasks=("rte",), library=str(library), output_dir=str(out),
        data_dir=data_dir, attempt={"prompt_length": 4, "bottleneck_size": 8}, max_steps=1, batch_size=per_process,
        eval_batch_size=8, learning_rate=0.3, eval_every=0, train_limit=8, eval_limit=5, max_source_length=24,
        max_target_length=8, seed=3, group_by_length=False,
    )  # fmt: skip
    backbone, tokenizer = build_backbone("seq2seq"), build_tokenizer("seq2seq")
    if per_process == 4:  # the single-process run also records the initial weights
        initial = build_model(config, build_backbone("seq2seq"), tokenizer, "seq2seq").trainable_state_dict()
        out.mkdir(parents=True, exist_ok=True)
        write_safetensors(out / "initial.safetensors", initial)
    train(config, backbone=backbone, tokenizer=tokenizer, progress=False)
    process_end.end()  # barrier, destroy the group, exit without finalizing (see tests/process_end.py)


if __name__ == "__main__":
    main()
