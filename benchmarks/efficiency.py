"""Efficiency of ATTEMPT against its baselines, measured side by side in one run (issue 6, efficiency half).

    python -m benchmarks.efficiency --quick            # reduced sizes, < 3 minutes on 2 CPU cores
    python -m benchmarks.efficiency                    # the full sizes
    python -m benchmarks.efficiency --report-only      # efficiency.md and the plot again, from efficiency.json
    python -m benchmarks.efficiency --tiny --out /tmp  # tests' tiny random backbones (seconds)

Writes efficiency.json, efficiency.md and PNG plots under --out (default benchmarks/results/efficiency); this
module measures, efficiency_report.py (beside it) judges the targets and writes the report.

What is measured (every timing interleaves the methods repeat by repeat and keeps the median, because the
machine is shared and noisy; results are reported as ratios between methods of the same run):

* training step (forward + backward + AdamW step) of ATTEMPT, our prompt tuning, PEFT's prompt tuning
  (PromptTuningConfig; on the encoder with the same mean-pool + linear head), full fine-tuning and LoRA
  (FineTuneModel), with the same batch, input length and prompt length (m = 100 and m = 10; t = 6 random
  source prompts); at m = 100 also ATTEMPT and full fine-tuning with activation checkpointing, whose cost
  decides TrainConfig.gradient_checkpointing's default (efficiency_report.CHECKPOINTING_RULE);
* peak training memory per method. On CUDA: torch.cuda.max_memory_allocated. On CPU: each method runs in a
  fresh subprocess that loads the backbone, then trains two steps while a thread samples the process RSS
  every 2 ms; peak = max(sampled RSS, ru_maxrss when it rose during training) minus the RSS right after
  `import torch, transformers, peft` (so it counts the weights, gradients, optimizer state and activations,
  like max_memory_allocated). --tiny measures in-process instead (no subprocess);
* dynamic padding with length grouping against padding every batch to 256 tokens (the original protocol), on
  rte and mnli from the data mirror, with the same examples, batched as training batches them (the library's
  `Collator`; the grouped batches from `attempt.data.batching.BatchStream`): time per epoch and the largest
  difference between an example's logits/loss padded and unpadded;
* evaluation with rows batched longest first against file order (encoder, rte validation);
* evaluation throughput of rank classification (score every verbalizer; input read once, and one full
  sequence per label) against greedy generation;
* trainable-parameter counts against the paper's arithmetic on a T5-base-shaped config (d = 768, m = 100).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attempt.utils.reading import read_json
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import DATA_DIR, REPO, results_dir
from benchmarks.efficiency_report import (
    CAUSAL,
    ENCODER,
    HALF_BACKBONE,
    MEMORY_METHODS,
    PROMPT_METHODS,
    TIMED_METHODS,
    targets,
    write_report,
)

NUM_SOURCES = 6
GLUE_TASKS = ("mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola")

# sizes: batch and input length per family, repeats, examples per task for the padding run, eval examples
SIZES = {
    "full": {
        "batch": {"encoder": 32, "causal": 8},
        "length": 64,
        "repeats": 5,
        "pad_examples": 96,
        "pad_repeats": 2,
        "eval_examples": 16,
        "eval_repeats": 2,
        "sort_examples": 256,
        "sort_repeats": 3,
    },
    "quick": {
        "batch": {"encoder": 8, "causal": 2},
        "length": 32,
        "repeats": 3,
        "pad_examples": 32,
        "pad_repeats": 1,
        "eval_examples": 8,
        "eval_repeats": 1,
        "sort_examples": 64,
        "sort_repeats": 1,
    },
    "tiny": {
        "batch": {"encoder": 4, "causal": 2},
        "length": 16,
        "repeats": 2,
        "pad_examples": 16,
        "pad_repeats": 1,
        "eval_examples": 4,
        "eval_repeats": 1,
        "sort_examples": 16,
        "sort_repeats": 1,
    },
}


# -- parameter counts ------------------------------------------------------------------------------------
def paper_param_counts(
    d: int = 768, m: int = 100, bottleneck: int = 100, shared_tasks: int = 8
) -> dict[str, Any]:
    """Count ATTEMPT's trainable parameters on a T5-base-shaped config (d_model=d, everything else tiny, so
    no weights are needed) and compare them with the paper's arithmetic: prompt m·d, attention
    2·d·r (+2·d LayerNorm) per task; the attention shared by `shared_tasks` GLUE tasks."""
    import transformers as tf

    from attempt import AttemptConfig, AttemptModel, SourcePrompt

    config = tf.T5Config(vocab_size=32, d_model=d, d_kv=4, d_ff=4, num_layers=1, num_heads=1)
    backbone = tf.T5ForConditionalGeneration(config)
    sources = [SourcePrompt(f"s{i}", torch.randn(m, d)) for i in range(NUM_SOURCES)]

    def parts(tasks):
        model = AttemptModel.from_backbone(
            backbone, sources, AttemptConfig(prompt_length=m, bottleneck_size=bottleneck, tasks=tuple(tasks))
        )
        return model.num_parameters_by_part()

    single, shared = parts(["rte"]), parts(GLUE_TASKS[:shared_tasks])
    expected_prompt, expected_attention, expected_norm = m * d, 2 * d * bottleneck, 2 * d
    per_task_single = single["prompt"] + single["attention"]
    per_task_shared = (shared["prompt"] + shared["attention"]) / shared_tasks
    expected_single = expected_prompt + expected_attention + expected_norm
    expected_shared = expected_prompt + (expected_attention + expected_norm) / shared_tasks
    return {
        "d": d,
        "m": m,
        "bottleneck": bottleneck,
        "shared_tasks": shared_tasks,
        "prompt_per_task": single["prompt"],
        "attention": single["attention"],
        "expected": {
            "prompt_per_task": expected_prompt,
            "attention": expected_attention + expected_norm,
            "per_task_single": expected_single,
            "per_task_shared": expected_shared,
        },
        "per_task_single": per_task_single,
        "per_task_shared": per_task_shared,
        "matches_paper": per_task_single == expected_single
        and math.isclose(per_task_shared, expected_shared)
        and round(per_task_single / 1000) == 232
        and round(per_task_shared / 1000) == 96,
    }


# -- backbones ---------------------------------------------------------------------------------------------
def load(name: str, tiny: bool, dtype: torch.dtype | None = None):
    """(model, tokenizer, family) for a backbone name, or the tests' tiny ones ("tiny-encoder"/"tiny-causal")."""
    if tiny:
        from attempt.testing import build_backbone, build_tokenizer

        family = name.removeprefix("tiny-")
        backbone = build_backbone(family, hidden_size=32)
        return (backbone if dtype is None else backbone.to(dtype)), build_tokenizer(family), family
    from attempt.backbones.resolve import load_backbone

    return tuple(load_backbone(name, dtype=dtype))


def random_sources(d: int, m: int, seed: int = 0):
    from attempt import SourcePrompt

    g = torch.Generator().manual_seed(seed)
    return [SourcePrompt(f"src{i}", 0.5 * torch.randn(m, d, generator=g)) for i in range(NUM_SOURCES)]


class PeftPromptClassifier(nn.Module):
    """PEFT prompt tuning on an encoder plus the mean-pool + linear head our encoder models use."""

    def __init__(self, peft_model, hidden: int, m: int):
        super().__init__()
        self.peft, self.m = peft_model, m
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, 2))

    def forward(self, input_ids, attention_mask, labels):
        hidden = self.peft(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, self.m :]
        real = attention_mask.unsqueeze(-1).to(hidden.dtype)
        logits = self.head((hidden * real).sum(1) / real.sum(1).clamp(min=1))
        return nn.functional.cross_entropy(logits, labels)


def _enable_checkpointing(model) -> None:
    """Activation checkpointing on the Hugging Face model inside `model` (non-reentrant: the backbone may be
    frozen, and only that variant carries the gradient through to the prompt)."""
    from transformers import PreTrainedModel

    backbone = next(m for m in model.modules() if isinstance(m, PreTrainedModel))
    enable = (
        getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
    )
    key = (
        "activation_checkpointing_kwargs"
        if enable.__name__.startswith("activation")
        else "gradient_checkpointing_kwargs"
    )
    enable(**{key: {"use_reentrant": False}})


def build_method(method: str, backbone, family: str, m: int):
    """(module, loss_fn(batch) -> loss, optimizer) for one method over `backbone` (copied when changed).
    A "+checkpointing" suffix builds the method with activation checkpointing; "+bf16_backbone" is the method
    over a backbone the caller loaded in bfloat16."""
    if method.endswith("+bf16_backbone"):
        return build_method(method.split("+")[0], backbone, family, m)
    if method.endswith("+checkpointing"):
        model, loss_fn, optimizer, trainable = build_method(method.split("+")[0], backbone, family, m)
        _enable_checkpointing(model)
        model.train()
        return model, loss_fn, optimizer, trainable
    from attempt import AttemptConfig, AttemptModel
    from attempt.modeling.finetune import FineTuneModel

    d = backbone.get_input_embeddings().weight.shape[1]
    num_labels = 2 if family == "encoder" else None
    if method in ("attempt", "prompt_tuning"):
        config = AttemptConfig(
            method=method,
            prompt_length=m,
            tasks=("rte",),
            num_labels=num_labels,
            target_init="source" if method == "attempt" else "vocab",
        )
        model = AttemptModel.from_backbone(
            backbone, random_sources(d, m) if method == "attempt" else [], config
        )
        params = model.parameter_groups(0.3, 0.1, 1e-3)

        def loss_fn(b):
            return model(b["input_ids"], b["attention_mask"], labels=b["labels"]).loss

    elif method == "peft_prompt_tuning":
        from peft import PromptTuningConfig, TaskType, get_peft_model

        task_type = TaskType.FEATURE_EXTRACTION if family == "encoder" else TaskType.CAUSAL_LM
        peft_model = get_peft_model(
            copy.deepcopy(backbone), PromptTuningConfig(task_type=task_type, num_virtual_tokens=m)
        )
        model = PeftPromptClassifier(peft_model, d, m) if family == "encoder" else peft_model
        params = [p for p in model.parameters() if p.requires_grad]

        def loss_fn(b):
            if family == "encoder":
                return model(b["input_ids"], b["attention_mask"], b["labels"])
            return model(
                input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]
            ).loss

    else:
        model = FineTuneModel.from_backbone(copy.deepcopy(backbone), mode=method, num_labels=num_labels)
        params = model.parameter_groups(1e-4 if method == "lora" else 1e-5, head_lr=1e-3)

        def loss_fn(b):
            return model(b["input_ids"], b["attention_mask"], labels=b["labels"]).loss

    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, loss_fn, torch.optim.AdamW(params, lr=1e-3), trainable


def random_batch(family: str, batch: int, length: int, vocab: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, min(vocab, 30000), (batch, length), generator=g)
    labels = torch.randint(0, 2, (batch,), generator=g) if family == "encoder" else ids.clone()
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "labels": labels.to(device),
    }


def train_step(loss_fn, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(backbone, family: str, m: int, methods, batch: int, length: int, repeats: int, device):
    """Median seconds per training step of each method, the methods interleaved within every repeat."""
    vocab = backbone.get_input_embeddings().weight.shape[0]
    data = random_batch(family, batch, length, vocab, device)
    # ATTEMPT and prompt tuning wrap the backbone itself: checkpointing gets its own copy, or it would turn on
    # for the plain methods too
    built = {
        name: build_method(name, copy.deepcopy(backbone) if "+checkpointing" in name else backbone, family, m)
        for name in methods
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for model, loss_fn, opt, _ in built.values():  # warm-up (allocator, lazy init)
        model.to(device)
        train_step(loss_fn, opt, data)
    for rep in range(repeats):
        order = list(methods) if rep % 2 == 0 else list(reversed(methods))
        for name in order:
            _, loss_fn, opt, _ = built[name]
            _sync(device)
            start = time.perf_counter()
            train_step(loss_fn, opt, data)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    result = {
        name: {
            "step_s": statistics.median(t),
            "min_s": min(t),
            "runs_s": t,
            "trainable_params": built[name][3],
        }
        for name, t in times.items()
    }
    del built
    return result


# -- memory --------------------------------------------------------------------------------------------------
def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakSampler:
    """Samples the process RSS every `interval` seconds in a thread (torch releases the GIL in its ops)."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, _rss(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _maxrss_bytes() -> int:
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure_memory(
    name: str,
    family: str,
    method: str,
    m: int,
    batch: int,
    length: int,
    tiny: bool,
    device,
    baseline: int | None = None,
) -> dict[str, Any]:
    """Peak memory of two training steps of one method (see the module docstring for the method)."""
    import peft  # noqa: F401  (imported before the baseline so that it is not counted)
    import transformers  # noqa: F401

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    baseline = _rss() if baseline is None else baseline
    backbone, _, family = load(name, tiny, torch.bfloat16 if method == HALF_BACKBONE else None)
    backbone.to(device)
    after_load = _rss()
    before_max = _maxrss_bytes()
    with PeakSampler() as sampler:
        model, loss_fn, opt, trainable = build_method(method, backbone, family, m)
        if method.split("+")[0] in ("finetune", "lora", "peft_prompt_tuning"):
            del backbone  # these train a copy: drop the original so the weights are counted once
        model.to(device)
        data = random_batch(family, batch, length, model_vocab(model), device)
        for _ in range(2):
            train_step(loss_fn, opt, data)
    after_max = _maxrss_bytes()
    peak = max(sampler.peak, after_max if after_max > before_max else 0)
    out = {
        "peak_mb": (peak - baseline) / 2**20,
        "weights_mb": (after_load - baseline) / 2**20,
        "how": "rss-subprocess" if not tiny else "rss-in-process",
    }
    if device.type == "cuda":
        out = {
            "peak_mb": (torch.cuda.max_memory_allocated() - start) / 2**20,
            "how": "cuda.max_memory_allocated",
        }
    out["trainable_params"] = trainable
    return out


def model_vocab(model) -> int:
    for module in model.modules():
        if hasattr(module, "get_input_embeddings"):
            try:
                return module.get_input_embeddings().weight.shape[0]
            except (AttributeError, NotImplementedError):
                continue
    return 1000


def memory_in_subprocess(name: str, method: str, m: int, batch: int, length: int) -> dict[str, Any]:
    args = json.dumps({"name": name, "method": method, "m": m, "batch": batch, "length": length})
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.efficiency", "--memory-worker", args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory_worker(args: str) -> None:
    spec = json.loads(args)
    import peft  # noqa: F401
    import transformers  # noqa: F401

    baseline = _rss()
    family = "encoder" if spec["name"] == ENCODER else "causal"
    result = measure_memory(
        spec["name"],
        family,
        spec["method"],
        spec["m"],
        spec["batch"],
        spec["length"],
        tiny=False,
        device=_device(),
        baseline=baseline,
    )
    print(json.dumps(result))


# -- dynamic padding -----------------------------------------------------------------------------------------
def mirror_rows(task: str, split: str, n: int, seed: int | None = 0) -> list[dict[str, Any]]:
    """n rows of a split from the data mirror (``$ATTEMPT_DATA_DIR``, else ../shared/data), shuffled with
    `seed` (None: the first n in file order)."""
    from attempt.data.sources import load_split

    rows = list(load_split(task, split, DATA_DIR))
    if seed is not None:
        random.Random(seed).shuffle(rows)
    return rows[:n]


def grouped_batches(
    examples: list[dict[str, Any]], collator, batch: int, seed: int = 0
) -> list[list[dict[str, Any]]]:
    """The first epoch of the training loop's own length-grouped batches (`attempt.data.batching.BatchStream` with
    group_by_length, one process) of one task's examples."""
    from attempt.config import TrainConfig
    from attempt.data.batching import BatchStream

    task = examples[0]["task"]
    config = TrainConfig(tasks=(task,), batch_size=batch, seed=seed, group_by_length=True)
    return BatchStream({task: examples}, collator, config, rank=0, world=1).epoch_batches(0)


def padding_benchmark(
    backbone, tokenizer, family, tasks, n, batch, repeats, m, tiny, device
) -> dict[str, Any]:
    """Per-epoch training time, same examples, padded to 256 vs dynamic padding with length grouping (both
    batched by the library's `Collator`, the grouped batches from `BatchStream`); and the largest difference
    between padded and unpadded logits/losses on a few examples."""
    from attempt import AttemptConfig, AttemptModel
    from attempt.data.collate import Collator, make_examples
    from attempt.tasks import get_task

    d = backbone.get_input_embeddings().weight.shape[1]
    labels = {task: get_task(task).num_labels for task in tasks}
    config = AttemptConfig(prompt_length=m, tasks=tuple(tasks), num_labels=labels)
    model = AttemptModel.from_backbone(backbone, random_sources(d, m), config).to(device)
    optimizer = torch.optim.AdamW(model.parameter_groups(0.3, 0.1, 1e-3))
    positions = getattr(backbone.config, "max_position_embeddings", 10**6)
    pad_to = min(256, positions - m)  # 256 (the original protocol) unless the backbone is too short (tiny)
    padded_collator = Collator(tokenizer, family, tasks, max_source_length=pad_to, pad_to=pad_to)
    dynamic_collator = Collator(tokenizer, family, tasks, max_source_length=pad_to)
    out: dict[str, Any] = {"m": m, "batch": batch, "max_length": pad_to}
    for task in tasks:
        examples = make_examples(task, mirror_rows(task, "train", n))
        lengths = [dynamic_collator.source_length(e) for e in examples]
        padded = [padded_collator(examples[i : i + batch]) for i in range(0, n, batch)]
        dynamic = [dynamic_collator(chunk) for chunk in grouped_batches(examples, dynamic_collator, batch)]
        timings = _time_epochs(
            model, optimizer, {"padded_256": padded, "dynamic_grouped": dynamic}, repeats, device
        )
        diffs, loss_diffs = _padding_differences(
            model, examples[: min(4, n)], padded_collator, dynamic_collator, device
        )
        t_pad, t_dyn = statistics.median(timings["padded_256"]), statistics.median(timings["dynamic_grouped"])
        out[task] = {
            "examples": n, "mean_tokens": sum(lengths) / n, "max_tokens": max(lengths),
            "padded_tokens": {"padded_256": pad_to * n, "dynamic_grouped": sum(b["input_ids"].numel() for b in dynamic)},
            "epoch_s": {"padded_256": t_pad, "dynamic_grouped": t_dyn}, "runs_s": timings,
            "speedup": t_pad / t_dyn, "max_abs_logit_diff": max(diffs), "max_abs_loss_diff": max(loss_diffs),
            "same_results": max(diffs) < 1e-4 and max(loss_diffs) < 1e-4,
        }  # fmt: skip
    return out


def _on(batch, device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _time_epochs(model, optimizer, epochs: dict[str, list], repeats: int, device) -> dict[str, list[float]]:
    """Seconds per training epoch over each list of batches, the epochs interleaved repeat by repeat."""
    model.train()
    timings: dict[str, list[float]] = {k: [] for k in epochs}
    for rep in range(repeats):
        for key in list(epochs) if rep % 2 == 0 else list(reversed(epochs)):
            start = time.perf_counter()
            for b in epochs[key]:
                train_step(lambda b: model(**_on(b, device)).loss, optimizer, b)
            _sync(device)
            timings[key].append(time.perf_counter() - start)
    return timings


def _padding_differences(
    model, few, padded_collator, dynamic_collator, device
) -> tuple[list[float], list[float]]:
    """Per example: the largest |logit| and the |loss| difference between the example padded to 256 in a batch
    and the example alone, unpadded."""
    model.eval()
    with torch.no_grad():
        together = _on(padded_collator(few), device)
        logits_padded = model(**{k: v for k, v in together.items() if k != "labels"}).logits
        diffs, loss_diffs = [], []
        for row, example in enumerate(few):
            alone = _on(dynamic_collator([example]), device)
            logits = model(**{k: v for k, v in alone.items() if k != "labels"}).logits
            width = int(torch.isfinite(logits[0]).sum())  # the task's classes (the other columns are -inf)
            diffs.append(float((logits[0, :width] - logits_padded[row, :width]).abs().max()))
            target = alone["labels"]
            loss_diffs.append(
                abs(
                    float(nn.functional.cross_entropy(logits[:, :width], target))
                    - float(nn.functional.cross_entropy(logits_padded[row : row + 1, :width], target))
                )
            )
    return diffs, loss_diffs


# -- evaluation throughput -----------------------------------------------------------------------------------
def eval_benchmark(backbone, tokenizer, n, repeats, m, device) -> dict[str, Any]:
    """Examples per second of rank classification (log-likelihood of each verbalizer) vs greedy generation
    (as many new tokens as the longest verbalizer) with ATTEMPT on a causal backbone, rte pairs.

    The batches are evaluation's own: the library's `Collator` (inputs LEFT-padded, the verbalizers its
    `label_candidates`). Rank classification is timed twice: the library's `score_candidates` (the prompted
    input read once, its KV cache reused for each verbalizer) and one full (prompt + input + verbalizer)
    training-style sequence per label."""
    from attempt import AttemptConfig, AttemptModel
    from attempt.data.collate import Collator, make_examples
    from attempt.tasks import get_task

    d = backbone.get_input_embeddings().weight.shape[1]
    model = AttemptModel.from_backbone(
        backbone, random_sources(d, m), AttemptConfig(prompt_length=m, tasks=("rte",))
    )
    model.to(device).eval()
    task = get_task("rte")
    collator = Collator(tokenizer, "causal", ["rte"], max_source_length=128)
    examples = make_examples(task, mirror_rows("rte", "train", n, seed=1))
    verbalizers = collator.label_candidates(task)  # " word" + eos, in label order

    def rank():
        inputs = _on(collator(examples, for_generation=True), device)
        return model.score_candidates(
            inputs["input_ids"], inputs["attention_mask"], inputs["task_ids"], verbalizers
        ).argmax(-1)

    def rank_full_sequences():
        scores = []
        for label in range(len(verbalizers)):  # every example followed by this label's word
            labelled = [{**e, "row": {**e["row"], task.label_field: label}} for e in examples]
            batch = _on(collator(labelled), device)
            scores.append(
                model.sequence_log_likelihood(
                    batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"]
                )
            )
        return torch.stack(scores, -1).argmax(-1)

    def generate():
        inputs = _on(collator(examples, for_generation=True), device)
        return model.generate(
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["task_ids"],
            max_new_tokens=max(len(v) for v in verbalizers) - 1,
            do_sample=False,
        )  # words, no eos

    timings: dict[str, list[float]] = {"rank_classification": [], "rank_full_sequences": [], "generation": []}
    functions = (rank, rank_full_sequences, generate)
    with torch.no_grad():
        same = bool((rank() == rank_full_sequences()).all())  # warm-up, and the two rankings agree
        generate()
        for rep in range(repeats):
            for key, fn in list(zip(timings, functions, strict=True))[:: 1 if rep % 2 == 0 else -1]:
                start = time.perf_counter()
                fn()
                _sync(device)
                timings[key].append(time.perf_counter() - start)
    median = {key: statistics.median(values) for key, values in timings.items()}
    rank_s, full_s, gen_s = median["rank_classification"], median["rank_full_sequences"], median["generation"]
    return {
        "examples": n,
        "m": m,
        "classes": len(verbalizers),
        "verbalizer_tokens": [len(v) - 1 for v in verbalizers],
        "examples_per_s": {key: n / value for key, value in median.items()},
        "runs_s": timings,
        "rank_over_generation_time": rank_s / gen_s,
        "full_sequence_rank_over_generation_time": full_s / gen_s,
        "same_predictions": same,
    }


def eval_batching_benchmark(backbone, tokenizer, n, repeats, m, device) -> dict[str, Any]:
    """Seconds to evaluate n rte validation rows (ATTEMPT on the encoder, batches of 64) with the rows batched
    longest first (the library's default) against file order, and whether both give the same predictions."""
    from attempt import AttemptConfig, AttemptModel
    from attempt.evaluation.evaluate import evaluate

    d = backbone.get_input_embeddings().weight.shape[1]
    config = AttemptConfig(prompt_length=m, tasks=("rte",), num_labels=2)
    model = AttemptModel.from_backbone(backbone, random_sources(d, m), config).to(device).eval()
    rows = mirror_rows("rte", "validation", n, seed=None)
    timings: dict[str, list[float]] = {"length_sorted": [], "file_order": []}
    predictions: dict[str, Any] = {}
    for rep in range(repeats):
        for key in list(timings)[:: 1 if rep % 2 == 0 else -1]:
            path = Path(tempfile.mkdtemp()) / "predictions.jsonl"
            start = time.perf_counter()
            evaluate(
                model,
                tokenizer,
                {"rte": rows},
                batch_size=64,
                max_source_length=128,
                sort_by_length=key == "length_sorted",
                predictions_path=path,
            )
            _sync(device)
            timings[key].append(time.perf_counter() - start)
            predictions[key] = [row["prediction"] for _, row in numbered_jsonl(path)]
            shutil.rmtree(path.parent, ignore_errors=True)
    median = {key: statistics.median(values) for key, values in timings.items()}
    return {
        "examples": len(rows),
        "batch": 64,
        "m": m,
        "seconds": median,
        "runs_s": timings,
        "speedup": median["file_order"] / median["length_sorted"],
        "same_predictions": predictions["length_sorted"] == predictions["file_order"],
    }


# -- driver ------------------------------------------------------------------------------------------------
def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run(out_dir: Path, mode: str, backbones: list[str] | None = None, log=print) -> dict[str, Any]:
    tiny = mode == "tiny"
    sizes = SIZES[mode]
    device = _device()
    backbones = backbones or (["tiny-encoder", "tiny-causal"] if tiny else [ENCODER, CAUSAL])
    prompt_lengths = (100, 10) if not tiny else (12, 4)
    results: dict[str, Any] = {
        "mode": mode,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sizes": sizes,
        "prompt_lengths": list(prompt_lengths),
        "num_sources": NUM_SOURCES,
        "param_counts": paper_param_counts(),
        "training": {},
        "memory": {},
        "padding": {},
        "evaluation": {},
        "eval_batching": {},
    }
    log(
        f"param counts: {results['param_counts']['per_task_single']:,} / {results['param_counts']['per_task_shared']:,.0f}"
    )
    for name in backbones:
        backbone, tokenizer, family = load(name, tiny)
        backbone.to(device)
        batch, length = sizes["batch"][family], sizes["length"]
        entry: dict[str, Any] = {"family": family, "batch": batch, "length": length}
        for m in prompt_lengths:
            # no prompt: fine-tuning (and checkpointing, for TrainConfig.gradient_checkpointing's rule) timed once
            methods = TIMED_METHODS if m == prompt_lengths[0] else PROMPT_METHODS
            entry[f"m={m}"] = time_training(
                backbone, family, m, methods, batch, length, sizes["repeats"], device
            )
            log(f"{name} m={m}: " + ", ".join(f"{k} {v['step_s']:.3f}s" for k, v in entry[f"m={m}"].items()))
        results["training"][name] = entry
        if family == "encoder":
            results["padding"] = {
                "backbone": name,
                **padding_benchmark(
                    backbone,
                    tokenizer,
                    family,
                    ("rte", "mnli"),
                    sizes["pad_examples"],
                    batch,
                    sizes["pad_repeats"],
                    prompt_lengths[0],
                    tiny,
                    device,
                ),
            }
            log(
                f"padding: {json.dumps({k: v.get('speedup') for k, v in results['padding'].items() if isinstance(v, dict)})}"
            )
            results["eval_batching"] = {
                "backbone": name,
                **eval_batching_benchmark(
                    backbone,
                    tokenizer,
                    sizes["sort_examples"],
                    sizes["sort_repeats"],
                    prompt_lengths[0],
                    device,
                ),
            }
            log(f"evaluation batching: {results['eval_batching']['speedup']:.2f}x")
        if family == "causal":
            results["evaluation"] = {
                "backbone": name,
                **eval_benchmark(
                    backbone,
                    tokenizer,
                    sizes["eval_examples"],
                    sizes["eval_repeats"],
                    prompt_lengths[0],
                    device,
                ),
            }
            log(f"evaluation: {results['evaluation']['examples_per_s']}")
        m = prompt_lengths[0]
        if mode == "quick" and family != "causal":
            continue  # --quick: one fresh process per method is slow; measure the backbone with the target
        memory = {}
        for method in MEMORY_METHODS:
            if tiny or device.type == "cuda":
                memory[method] = measure_memory(name, family, method, m, batch, length, tiny, device)
            else:
                memory[method] = memory_in_subprocess(name, method, m, batch, length)
            log(f"{name} memory {method}: {memory[method]}")
        results["memory"][name] = {"m": m, "batch": batch, "length": length, **memory}
        del backbone
    results["targets"] = targets(results)
    write_report(results, out_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 3 minutes on 2 CPU cores)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random backbones (seconds)")
    parser.add_argument("--out", type=Path, default=results_dir("efficiency"))
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: the report of <out>/efficiency.json again",
    )
    parser.add_argument("--backbones", nargs="+", default=None, help=f"default: {ENCODER} {CAUSAL}")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        _memory_worker(args.memory_worker)
        return 0
    if args.report_only:
        results = read_json(args.out / "efficiency.json", "Run the benchmark to write it again.")
        write_report(results, args.out)
        print(f"wrote {args.out / 'efficiency.md'} from {args.out / 'efficiency.json'}")
        return 0
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    start = time.perf_counter()
    results = run(args.out, mode, args.backbones)
    failed = [t["target"] for t in results["targets"] if t["passed"] is False]
    print(
        f"wrote {args.out / 'efficiency.json'} in {time.perf_counter() - start:.0f}s; failed targets: {failed or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
