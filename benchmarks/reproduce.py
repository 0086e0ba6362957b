"""The paper's relative claims at small scale, on the real data mirror and the backbones that install here.

    python -m benchmarks.reproduce --quick            # 2 targets, 1 seed, 1 lr, few steps: < 20 min, 2 CPU cores
    python -m benchmarks.reproduce                    # the full grid (~3 h on 2 shared CPU cores; resumable)
    python -m benchmarks.reproduce --report-only      # the report of the cells finished so far
    python -m benchmarks.reproduce --tiny --quick --out /tmp/x   # the tests' tiny random BERT (seconds)

    python -m benchmarks.reproduce --steps 320 --targets rte mrpc --methods prompt_tuning attempt finetune
                                                      # a longer budget on fewer targets: reproduce-steps320.md

Writes reproduce.json (every cell, the aggregated tables, the claims), reproduce.md and the attention heatmaps
(reproduce_attention*.png) under --out (default benchmarks/results/reproduce); the runs themselves go to
<out>/runs/<mode>-<backbone>/ (source prompt library in prompts/, one folder per cell in cells/; not
committed). Another --steps is another grid: reproduce-steps<N>.* and <out>/runs/<mode>-steps<N>-<backbone>/,
with the same source prompts.

What runs (ATTEMPT, Asai et al., EMNLP 2022, arXiv 2205.11961; the paper uses T5-base, we use MiniLM-L6 by
default, a 22M-parameter BERT encoder whose classification head is trained with every method):

* source prompts on mnli, qnli, qqp, sst2 (and squad on a backbone that generates), trained once into a prompt
  library and reused; a source is retrained only when the library lacks it;
* target tasks from the mirror (full grid: rte, mrpc, stsb, cola, cb, boolq; `--targets` also takes wic, wsc,
  multirc; boolq trains on the mirror's FewGLUE 32 examples, the only BoolQ training data in it), each with
  plain prompt tuning, SPoT (prompt tuning initialised from one source prompt, `SPOT_SOURCE`), ATTEMPT,
  ATTEMPT-m (one multi-task run over all targets, validated as often per run as a single-task run), full
  fine-tuning and LoRA, under the same steps and batch size;
* a learning-rate grid per method (`LR_GRID`, 2 values; --quick: the first one): every lr runs with the first
  seed, the lr with the best VALIDATION score is kept, the other seeds run with it; TEST scores of the kept
  lr are reported as mean ± std over seeds;
* few-shot (k examples per class, k = 4, 16, 32) on boolq, cb, rte for prompt tuning, SPoT and ATTEMPT, with
  the lr each method kept on the same task's full-data run;
* an ablation, ATTEMPT with the scaled dot-product temperature T = √d instead of the paper's d·e on every
  target (same grid), beside `attention_reach`: how much weight the attention can give one prompt at all at
  either temperature, for this backbone's source prompts and for the original release's T5-base ReCoRD prompt;
* the attention of every target over the source prompts (ATTEMPT runs' attention, averaged over seeds; and
  ATTEMPT-m's, all targets in one run) as heatmaps.

What a cell and the whole grid cost on this machine (measured 2026-11): benchmarks/results/reproduce/reproduce-cost.md.

Every cell (method, task, lr, seed, k) is its own output_dir: a cell whose results.json exists is read back,
not recomputed, and an interrupted cell resumes from its checkpoint. Weights of finished cells are deleted
(--keep-weights keeps them): only their metrics, attention and predictions stay. The run folders are not committed:
--report-only without them (a fresh clone) is refused rather than replacing the committed report.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attempt.runs.layout import BEST_DIR, CHECKPOINT_DIR, CONFIG_FILE, RunLayout
from attempt.utils.reading import read_json
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import DATA_DIR, ORIGINAL_PROMPTS, RUNS, data_overlay, results_dir, slug
from benchmarks.reproduce_report import (
    ABLATION_METHODS,
    FEW_SHOT_METHODS,
    METHODS,
    PAPER_NOTE,
    PAPER_T5_BASE,
    aggregate,
    attention_maps,
    claims,
    discussion,
    finite,
    plot_attention,
    write_report,
)

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
CAUSAL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SOURCES = ("mnli", "qnli", "qqp", "sst2")
QA_SOURCES = ("squad",)  # only on a backbone that generates (an encoder head cannot extract spans)
TARGETS = ("rte", "mrpc", "stsb", "cola", "cb", "wic", "boolq", "wsc", "multirc")
FEW_SHOT_TASKS = ("boolq", "cb", "rte")
FEW_SHOT_KS = (4, 16, 32)
STAGES = ("main", "few_shot", "ablation")  # besides the source prompts, which every stage needs
# SPoT copies one source prompt: the source closest in format to the target (NLI -> mnli, paraphrase /
# similarity -> qqp, passage QA -> qnli, single sentence -> sst2). The paper picks SPoT's source by search.
SPOT_SOURCE = {
    "rte": "mnli",
    "cb": "mnli",
    "wic": "mnli",
    "wsc": "mnli",
    "mrpc": "qqp",
    "stsb": "qqp",
    "boolq": "qnli",
    "multirc": "qnli",
    "cola": "sst2",
}
# learning rate of the trained part: the prompt (prompt methods) or the backbone (finetune / LoRA). The head
# (encoder backbones) and ATTEMPT's attention module use HEAD_LR / ATTENTION_LR for every method.
LR_GRID = {
    "prompt_tuning": (0.03, 0.3),
    "spot": (0.03, 0.3),
    "attempt": (0.03, 0.3),
    "attempt_m": (0.03, 0.3),
    "attempt_sqrt_d": (0.03, 0.3),
    "finetune": (1e-4, 3e-5),
    "lora": (1e-3, 3e-4),
    "source": (0.03,),
}
HEAD_LR = 3e-3
ATTENTION_LR = 3e-3
# sizes per mode. steps/batch are the same for every method of a mode (the shared training budget).
# eval_every: validation every N steps of a target run (0: only at the end); ATTEMPT-m, one run of steps x
# targets, validates every eval_every x targets steps (as often per run as a single-task run). Sources validate
# every source_eval_every steps. The full grid's targets are the six that fit the time budget (see the docstring);
# --targets adds wic, wsc, multirc.
FULL_TARGETS = ("rte", "mrpc", "stsb", "cola", "cb", "boolq")
SIZES = {
    "full": {
        "targets": FULL_TARGETS,
        "seeds": (0, 1, 2),
        "lrs": 2,
        "steps": 80,
        "batch": 8,
        "eval_limit": 200,
        "eval_every": 40,
        "train_limit": None,
        "source_steps": 300,
        "source_batch": 16,
        "source_eval_limit": 300,
        "source_eval_every": 100,
        "few_shot_tasks": FEW_SHOT_TASKS,
        "ks": FEW_SHOT_KS,
        "few_shot_steps": 40,
        "prompt_length": 20,
        "max_source_length": 128,
    },
    "quick": {
        "targets": ("rte", "cb"),
        "seeds": (0,),
        "lrs": 1,
        "steps": 12,
        "batch": 8,
        "eval_limit": 48,
        "eval_every": 0,
        "train_limit": 2000,
        "source_steps": 12,
        "source_batch": 8,
        "source_eval_limit": 48,
        "source_eval_every": 0,
        "few_shot_tasks": ("cb", "rte"),
        "ks": (4,),
        "few_shot_steps": 6,
        "prompt_length": 20,
        "max_source_length": 128,
    },
    # boolq few-shot at k=16 exercises the "pool too small" path (FewGLUE's 32 rows hold 14 false)
    "tiny": {
        "targets": ("rte", "cb"),
        "seeds": (0,),
        "lrs": 1,
        "steps": 2,
        "batch": 4,
        "eval_limit": 8,
        "eval_every": 0,
        "train_limit": 64,
        "source_steps": 2,
        "source_batch": 4,
        "source_eval_limit": 8,
        "source_eval_every": 0,
        "few_shot_tasks": ("boolq",),
        "ks": (4, 16),
        "few_shot_steps": 2,
        "prompt_length": 4,
        "max_source_length": 64,
    },
}
# "full --tiny": the tiny backbone with the full grid's shape but tiny sizes
SIZES["tiny-full"] = {**SIZES["tiny"], "targets": TARGETS[:4], "seeds": (0, 1), "lrs": 2, "ks": (4, 16, 32)}


@dataclass(frozen=True)
class Options:
    """One pass over a reproduction grid: which grid, which part of it, and how it runs.

    mode: "quick" or "full" (the sizes of `SIZES`; with `tiny`, the tiny backbone's); seeds / targets override
    the mode's number of seeds and target tasks (a cheaper full pass); threads sets torch's intra-op threads for
    the pass (restored afterwards; None leaves them as they are); compute=False only reads finished cells back
    and reports them (cells not finished yet are counted as missing); stages / methods train only those
    (None: all); steps per target run (another value is another grid, in its own folder).
    """

    mode: str = "quick"
    backbone: str = ENCODER
    tiny: bool = False
    data_dir: Path | None = None
    keep_weights: bool = False
    seeds: int | None = None
    targets: tuple[str, ...] | None = None
    threads: int | None = None
    compute: bool = True
    stages: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        for name, given, known in (
            ("stage", self.stages, STAGES),
            ("method", self.methods, METHODS + ABLATION_METHODS),
            ("target", self.targets, TARGETS),
        ):
            unknown = sorted(set(given or ()) - set(known))
            if unknown:
                raise ValueError(f"Unknown {name}(s) {unknown}; choose from {', '.join(known)}.")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")

    @property
    def size_key(self) -> str:
        """The key of `SIZES`: the mode, or the tiny backbone's sizes of that mode."""
        return ("tiny-full" if self.mode == "full" else "tiny") if self.tiny else self.mode

    @property
    def variant(self) -> str:
        """``-steps<N>`` when the per-run budget is not the mode's: another grid, in its own folder, so no cell
        is mistaken for the default's (its report is reproduce<variant>.md); "" otherwise."""
        steps = self.steps
        return f"-steps{steps}" if steps and steps != SIZES[self.size_key]["steps"] else ""

    def runs_name(self, variant: bool = True) -> str:
        """The grid's folder under <out>/runs/ (`variant=False`: the default grid's, which holds the sources)."""
        name = "tiny-bert" if self.tiny else slug(self.backbone)
        return f"{self.size_key}{self.variant if variant else ''}-{name}"

    def sizes(self) -> dict[str, Any]:
        """The mode's sizes with this pass's steps, seeds and targets."""
        sizes = {**SIZES[self.size_key], **({"steps": self.steps} if self.steps else {})}
        if self.seeds is not None:
            sizes["seeds"] = tuple(range(self.seeds))
        if self.targets:
            few_shot = tuple(t for t in sizes["few_shot_tasks"] if t in self.targets)
            sizes = {**sizes, "targets": tuple(self.targets), "few_shot_tasks": few_shot}
        return sizes


# -- helpers ------------------------------------------------------------------------------------------------
def fmt_lr(lr: float) -> str:
    return f"{lr:g}"


# -- the runner ---------------------------------------------------------------------------------------------
class Runner:
    """Runs (or reads back) cells; each cell is one `attempt.training.loop.train` call in its own output_dir."""

    def __init__(self, out: Path, options: Options, log=print):
        mode = options.size_key
        self.mode, self.backbone_name, self.tiny, self.log = mode, options.backbone, options.tiny, log
        self.keep_weights = options.keep_weights
        self.compute = (
            options.compute
        )  # False: only read finished cells back (a report of a pass still running)
        self.stages = (
            options.stages
        )  # None: every stage; else train only these (sources always), read the rest back
        self.methods = (
            options.methods
        )  # None: every method; else only these (the others are not part of this grid)
        self.sizes = options.sizes()
        self.variant = options.variant  # the source prompts are the default grid's, trained once
        self.root = out / RUNS / options.runs_name()
        self.sources_root = out / RUNS / options.runs_name(variant=False)
        self.cells_dir = self.root / "cells"
        self.library = self.sources_root / "prompts"
        # symlinks to the mirror, rebuilt each run outside --out (no machine-specific links in the results)
        data_dir = Path(options.data_dir or DATA_DIR)
        self.data_dir = data_overlay(data_dir, Path(tempfile.mkdtemp(prefix="attempt-reproduce-data-")))
        self.computed = self.reused = self.missing = 0
        self._backbone = self._tokenizer = self.family = self._hidden_size = None
        self._load()

    def _load(self) -> None:
        if self.tiny:
            from attempt.testing import build_tokenizer

            self._tokenizer, self.family = build_tokenizer("encoder"), "encoder"
            return
        from attempt.backbones.resolve import load_backbone

        self._backbone, self._tokenizer, self.family = load_backbone(self.backbone_name)

    def backbone(self):
        """A fresh copy of the backbone for one cell (fine-tuning and LoRA change it in place)."""
        if self.tiny:
            from attempt.testing import build_backbone

            return build_backbone("encoder")
        return copy.deepcopy(self._backbone)

    @property
    def sources(self) -> tuple[str, ...]:
        return SOURCES + (QA_SOURCES if self.family != "encoder" else ())

    def config(
        self,
        mode: str,
        tasks: tuple[str, ...],
        lr: float,
        seed: int,
        output_dir: Path,
        *,
        k: int | None = None,
        steps: int | None = None,
        source_prompts: tuple[str, ...] = (),
        temperature: float | str | None = None,
    ):
        from attempt.config import TrainConfig

        s = self.sizes
        source = mode == "source"
        generate = any(t in QA_SOURCES for t in tasks)
        # several tasks in one run (ATTEMPT-m): validate as many times per run as a single-task run does
        eval_every = s["source_eval_every"] if source else s["eval_every"] * len(tasks)
        return TrainConfig(
            mode=mode, backbone=self.backbone_name if not self.tiny else "tiny-bert", tasks=tasks,
            source_prompts=source_prompts, library=str(self.library), output_dir=str(output_dir),
            data_dir=str(self.data_dir),
            attempt={"prompt_length": s["prompt_length"], **({"temperature": temperature} if temperature else {})},
            max_steps=steps or (s["source_steps"] if source else s["steps"]),
            batch_size=s["source_batch"] if source else s["batch"], eval_batch_size=64, learning_rate=lr,
            attention_learning_rate=ATTENTION_LR, head_learning_rate=HEAD_LR, warmup_steps=0,
            seed=seed, max_source_length=s["max_source_length"], eval_every=eval_every, k_shot=k,
            train_limit=s["train_limit"], eval_limit=s["source_eval_limit"] if source else s["eval_limit"],
            eval_method="generate" if generate else "rank", mixing_cap=None,
        )  # fmt: skip

    def run_cell(self, key: dict[str, Any], config) -> dict[str, Any]:
        """Train one cell, or read back its results.json. Returns the cell record (key + results)."""
        from attempt.data.splits import load_task_data
        from attempt.training.loop import train

        out = Path(config.output_dir)
        results_path = RunLayout(out).results
        expected = {
            k: v for k, v in config.to_dict().items() if k not in ("library", "data_dir", "output_dir")
        }
        record = {**key, "output_dir": str(out.relative_to(self.root.parent))}
        if results_path.is_file():
            saved = read_json(out / CONFIG_FILE, f"Delete {out} to rerun the cell.")
            # a field left None is picked when the run starts (TrainConfig.with_backbone_defaults): the saved
            # config holds the value picked, which is not "other settings"
            differs = sorted(k for k in expected if expected[k] is not None and saved.get(k) != expected[k])
            if differs:
                raise RuntimeError(
                    f"{out} holds a run with other settings ({', '.join(differs)}); delete it to rerun."
                )
            self.reused += 1
            self._prune(out)
            return {**record, **self._read(results_path), "reused": True}
        if config.k_shot is not None:
            try:
                load_task_data(config)
            except ValueError as error:  # k per class larger than the pool (boolq: FewGLUE's 32 rows)
                self.log(f"skip {key}: {error}")
                return {**record, "skipped": str(error), "reused": False}
        if not self.compute or (self.stages is not None and key["stage"] not in (*self.stages, "source")):
            self.missing += 1
            return {**record, "missing": True}
        self.log(f"run  {json.dumps(key)}")
        started = time.time()
        train(config, backbone=self.backbone(), tokenizer=self._tokenizer, progress=False)
        self.computed += 1
        self._prune(out)
        result = self._read(results_path)
        self.log(
            f"     test {result['test']['average']:.2f}  val {result['validation']['average']:.2f}  "
            f"({time.time() - started:.0f} s)"
        )
        return {**record, **result, "reused": False}

    def _prune(self, out: Path) -> None:
        if not self.keep_weights:
            for name in (CHECKPOINT_DIR, BEST_DIR):
                shutil.rmtree(out / name, ignore_errors=True)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        data = read_json(path, f"Delete {path.parent} to rerun the cell.")
        record = {
            k: data.get(k)
            for k in (
                "validation",
                "test",
                "attention",
                "trainable_parameters",
                "steps",
                "best_step",
                "wall_time_s",
            )
        }
        # the largest weight the attention gave one prompt on any test example (None without attention)
        predictions, peaks = RunLayout(path.parent).predictions(), []
        if predictions.is_file():
            for _, row in numbered_jsonl(predictions):
                if row.get("attention_weights"):
                    peaks.append(max(row["attention_weights"].values()))
        record["peak_attention"] = max(peaks) if peaks else None
        return record

    # -- stages ---------------------------------------------------------------------------------------------
    def train_sources(self) -> list[dict[str, Any]]:
        from attempt.prompts.library import PromptLibrary

        records = []
        for task in self.sources:
            lr = LR_GRID["source"][0]
            out = self.sources_root / "sources" / task
            key = {"stage": "source", "method": "source", "task": task, "lr": lr, "seed": 0, "k": None}
            if task in PromptLibrary(self.library) and not RunLayout(out).results.is_file():
                self.reused += 1
                records.append({**key, "reused": True, "note": "prompt already in the library"})
                continue
            records.append(self.run_cell(key, self.config("source", (task,), lr, 0, out)))
        return records

    def method_config(
        self,
        method: str,
        tasks: tuple[str, ...],
        lr: float,
        seed: int,
        out: Path,
        k: int | None = None,
        steps: int | None = None,
    ):
        if method in ("attempt", "attempt_m"):  # this grid measures the paper's temperature, T = d·e
            return self.config(
                "attempt",
                tasks,
                lr,
                seed,
                out,
                k=k,
                steps=steps,
                source_prompts=self.sources,
                temperature="paper",
            )
        if method == "attempt_sqrt_d":
            return self.config(
                "attempt",
                tasks,
                lr,
                seed,
                out,
                k=k,
                steps=steps,
                source_prompts=self.sources,
                temperature=math.sqrt(self.hidden_size),
            )
        if method == "spot":
            return self.config(
                "spot",
                tasks,
                lr,
                seed,
                out,
                k=k,
                steps=steps,
                source_prompts=(SPOT_SOURCE.get(tasks[0], "mnli"),),
            )
        return self.config(method, tasks, lr, seed, out, k=k, steps=steps)

    def grid(
        self,
        method: str,
        tasks: tuple[str, ...],
        label: str,
        stage: str,
        k: int | None = None,
        lrs: tuple[float, ...] | None = None,
        steps: int | None = None,
    ) -> list[dict[str, Any]]:
        """lr grid with the first seed, best lr on validation, the other seeds with that lr."""
        seeds = self.sizes["seeds"]
        lrs = lrs or LR_GRID[method][: self.sizes["lrs"]]
        records = []

        def cell(lr, seed):
            name = f"lr{fmt_lr(lr)}_s{seed}" + (f"_k{k}" if k else "")
            key = {"stage": stage, "method": method, "task": label, "lr": lr, "seed": seed, "k": k}
            return self.run_cell(
                key,
                self.method_config(
                    method, tasks, lr, seed, self.cells_dir / method / label / name, k=k, steps=steps
                ),
            )

        first = [cell(lr, seeds[0]) for lr in lrs]
        records.extend(first)
        scored = [r for r in first if "skipped" not in r]
        if not scored or any(
            "missing" in r for r in first
        ):  # no lr can be chosen before the whole lr grid ran
            return records
        best = max(scored, key=lambda r: finite(r["validation"]["average"]))["lr"]
        for r in records:
            r["selected_lr"] = best
        for seed in seeds[1:]:
            records.append({**cell(best, seed), "selected_lr": best})
        return records

    def run_all(self) -> dict[str, Any]:
        cells = self.train_sources()
        targets = tuple(
            t for t in self.sizes["targets"] if not (self.family == "encoder" and t in QA_SOURCES)
        )
        for task in targets:
            for method in self.wanted(("prompt_tuning", "spot", "attempt", "finetune", "lora")):
                cells.extend(self.grid(method, (task,), task, "main"))
        multi_steps = self.sizes["steps"] * len(targets)  # one run for all targets: their summed budget
        for method in self.wanted(("attempt_m",)):
            cells.extend(self.grid(method, targets, "+".join(targets), "main", steps=multi_steps))
        chosen = {
            (c["method"], c["task"]): c["selected_lr"]
            for c in cells
            if c.get("stage") == "main" and "selected_lr" in c
        }
        for task in self.sizes["few_shot_tasks"]:
            for k in self.sizes["ks"]:
                for method in self.wanted(FEW_SHOT_METHODS):
                    lr = chosen.get((method, task), LR_GRID[method][0])
                    cells.extend(
                        self.grid(
                            method,
                            (task,),
                            task,
                            "few_shot",
                            k=k,
                            lrs=(lr,),
                            steps=self.sizes["few_shot_steps"],
                        )
                    )
        for task in targets:
            for method in self.wanted(ABLATION_METHODS):
                cells.extend(self.grid(method, (task,), task, "ablation"))
        return {"cells": cells, "targets": list(targets)}

    def wanted(self, methods: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m for m in methods if self.methods is None or m in self.methods)

    def attention_reach_or_none(self) -> dict[str, Any] | None:
        """attention_reach, or None while the library lacks a source prompt (a report before the sources ran)."""
        from attempt.prompts.library import PromptLibrary

        library = PromptLibrary(self.library)
        return self.attention_reach() if all(name in library for name in self.sources) else None

    @property
    def hidden_size(self) -> int:
        if self._hidden_size is None:
            backbone = (
                self._backbone if self._backbone is not None else self.backbone()
            )  # tiny: built per call
            self._hidden_size = backbone.get_input_embeddings().embedding_dim
        return self._hidden_size

    def attention_reach(self) -> dict[str, Any]:
        """How far ATTEMPT's attention can move from uniform at its start, at T = d·e and T = √d.

        Built as a real run builds it (the library's source prompts; the target prompt starts as a copy of the
        first). Also, when ../shared/original-prompts has it, the original release's T5-base ReCoRD prompt: the
        paper's own scale of prompt keys, with the paper's T."""
        import torch

        from attempt.config import AttemptConfig
        from attempt.mixture import AttentionalMixture
        from attempt.prompts.library import PromptLibrary, read_original_prompt

        def reach(names, prompts):  # prompts: (t, m, d)
            d = prompts.shape[-1]
            out = {
                "hidden_size": d,
                "prompts": [*names, "target"],
                "key_norms": [round(float(n), 3) for n in prompts.max(dim=1).values.norm(dim=-1)],
            }
            for label, temperature in (("d·e", None), ("√d", math.sqrt(d))):
                config = AttemptConfig(prompt_length=prompts.shape[1], temperature=temperature)
                mixture = AttentionalMixture(config, d, prompts, prompts[0], list(names))
                out[label] = {
                    "temperature": mixture.temperature,
                    "logit_bounds": [round(float(b), 4) for b in mixture.logit_bounds()],
                    "max_weight": round(mixture.max_attention_weight(), 4),
                }
            out["uniform_weight"] = 1 / (len(names) + 1)
            return out

        names = list(self.sources)
        prompts = torch.stack([p.embeddings.float() for p in PromptLibrary(self.library).load(names)])
        result = {"this_backbone": reach(names, prompts)}
        original = ORIGINAL_PROMPTS / "record_prefix_embeddings.t5-base.pt"
        if original.is_file():
            result["t5_base_record_original"] = reach(["record"], read_original_prompt(original)[None])
        return result


# -- driver -------------------------------------------------------------------------------------------------
def run(out: Path, options: Options, log=print) -> dict[str, Any]:
    """Run (or read back) every cell of the grid of `options` and write the report under `out`."""
    import torch

    previous = torch.get_num_threads()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    try:
        return _run(out, options, log)
    finally:
        torch.set_num_threads(previous)


def _run(out: Path, options: Options, log) -> dict[str, Any]:
    import torch

    started, cpu_started = time.time(), time.process_time()
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, options, log)
    try:
        ran = runner.run_all()
    finally:
        shutil.rmtree(runner.data_dir, ignore_errors=True)  # only symlinks
    cells, targets = ran["cells"], ran["targets"]
    agg = aggregate(cells, targets)
    results: dict[str, Any] = {
        "mode": options.mode,
        "tiny": options.tiny,
        "backbone": "tiny random BERT (attempt.testing)" if options.tiny else options.backbone,
        "family": runner.family,
        "paper_backbone": "t5-base",
        "sizes": runner.sizes,
        "targets": targets,
        "methods": list(runner.wanted(METHODS + ABLATION_METHODS)),
        "sources": list(runner.sources),
        "spot_source": {t: SPOT_SOURCE.get(t, "mnli") for t in targets},
        "lr_grid": {m: list(v[: runner.sizes["lrs"]]) for m, v in LR_GRID.items() if m != "source"},
        "head_lr": HEAD_LR,
        "attention_lr": ATTENTION_LR,
        "machine": f"{platform.machine()} {torch.get_num_threads()} torch threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        "torch": torch.__version__,
        "runs_dir": str(runner.root),
        "cells": cells,
        "aggregate": agg,
        "attention": attention_maps(cells),
        "attention_reach": runner.attention_reach_or_none(),
        "cells_computed": runner.computed,
        "cells_reused": runner.reused,
        "cells_missing": runner.missing,
        "paper_t5_base": PAPER_T5_BASE,
        "paper_note": PAPER_NOTE,
    }
    # a partial report (--report-only while a pass runs) judges the claims on the targets whose single-task
    # methods have all finished, so that every method is averaged over the same tasks
    complete = [
        t for t in targets if all(m in agg["table"][t] for m in runner.wanted(METHODS) if m != "attempt_m")
    ]
    results["claims_targets"] = targets if not runner.missing else complete
    results["claims"] = claims(
        agg if not runner.missing else aggregate(cells, complete), results["claims_targets"]
    )
    results["report_stem"] = f"reproduce{runner.variant}"
    results["plots"] = plot_attention(results["attention"], out, results["backbone"], results["report_stem"])
    results["wall_time_s"] = time.time() - started
    results["cpu_time_s"] = time.process_time() - cpu_started
    # the summed training + evaluation time of every cell, whether computed now or read back
    results["cells_wall_time_s"] = sum(c.get("wall_time_s") or 0.0 for c in cells)
    results["discussion"] = discussion(results)
    write_report(results, out)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 targets, 1 seed, 1 lr, few steps (< 20 min)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random BERT (seconds)")
    parser.add_argument("--out", type=Path, default=results_dir("reproduce"))
    parser.add_argument(
        "--backbone", default=ENCODER, help=f"default {ENCODER}; {CAUSAL} adds the squad source"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help=f"the data mirror (default {DATA_DIR})")
    parser.add_argument(
        "--keep-weights", action="store_true", help="keep every cell's checkpoint and best weights"
    )
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: full 3, quick 1)")
    parser.add_argument(
        "--targets",
        nargs="+",
        default=None,
        help=f"targets, any of {' '.join(TARGETS)} (default: full {' '.join(FULL_TARGETS)}; quick rte cb)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on 2 cores shared with other jobs, 2 threads ran some "
        "steps up to 20x slower; 2 is ~1.6x faster on idle cores)",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=None,
        help="train only these stages (source prompts always; default all), report the rest as "
        "read back: e.g. two processes on two cores, one per stage",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS + ABLATION_METHODS,
        default=None,
        help="only these methods (default all); the others are left out of the grid and the report",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps per target run (default: the mode's); another value is another grid, "
        "kept in its own folder (e.g. a longer budget on fewer targets)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: report the cells finished so far in the grid's run folders (e.g. while a pass "
        "is running)",
    )
    args = parser.parse_args(argv)
    options = Options(
        mode="quick" if args.quick else "full", backbone=args.backbone, tiny=args.tiny, data_dir=args.data_dir,
        keep_weights=args.keep_weights, seeds=args.seeds, targets=tuple(args.targets) if args.targets else None,
        threads=args.threads, compute=not args.report_only, stages=tuple(args.stages) if args.stages else None,
        methods=tuple(args.methods) if args.methods else None, steps=args.steps,
    )  # fmt: skip
    runs = args.out / RUNS / options.runs_name()
    if (
        args.report_only and not runs.is_dir()
    ):  # a fresh clone: a report of nothing would replace the committed one
        parser.error(
            f"--report-only reads the grid's run folders and {runs} is not here (run folders are not "
            "committed): the committed report stays as it is; run the grid without --report-only to rebuild it."
        )
    results = run(args.out, options)
    for c in results["claims"]:
        print(f"{c['verdict']:>14}: {c['claim']}")
    stem = results["report_stem"]
    print(
        f"wrote {args.out / stem}.json, {stem}.md, {', '.join(results['plots'])} "
        f"in {results['wall_time_s'] / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
