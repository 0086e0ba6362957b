"""The paper's few-shot claim on SmolLM2-135M-Instruct with the source prompts shipped then, seed by seed.

    python -m benchmarks.reproduce_fewshot                 # the grid (hours on 2 CPU cores; resumable)
    python -m benchmarks.reproduce_fewshot --report-only   # report the cells finished so far
    python -m benchmarks.reproduce_fewshot --ablations attempt_mean   # then ATTEMPT with mean-pooled x̂ (k = 16)
    python -m benchmarks.reproduce_fewshot --ablations attempt_centred   # ATTEMPT with centred x̂ (k = 16)
    python -m benchmarks.reproduce_fewshot --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

ATTEMPT's strongest claim (Asai et al., EMNLP 2022, arXiv 2205.11961, few-shot table) is that the mixture of
source prompts helps most when the target has few examples. The grid: targets cb, boolq, rte; k = 16 and 32
examples per class; prompt tuning, SPoT (prompt tuning started from the single source prompt that scores best
on the target's validation rows as it is, untrained) and ATTEMPT (temperature "auto") in every cell; at k = 16
also ATTEMPT at the paper's T = d·e and LoRA. Each seed draws its own k-shot sample and initialisation
(`TrainConfig.seed`); the split seed is fixed, so every method and seed is tested on the same test rows (at
most TEST_LIMIT per task). Every method trains STEPS steps of BATCH examples and is evaluated once, at the end.

The report (reproduce_fewshot_report.py) gives test mean ± std over seeds per cell and the paired difference
ATTEMPT − PT and ATTEMPT − SPoT per task and k (same seeds, so same k-shot samples), with a 95% t-interval over
seeds; and the attention's peak weight, entropy and spread across inputs per task at both temperatures. An
ablation (--ablations) is paired with ATTEMPT (T auto) over the same seeds.

Data: the mirror's BoolQ training pool is FewGLUE's 32 + 32 rows of the official train (27 false, 37 true);
CB's has 16 "neutral" rows. Cells whose k exceeds a class's pool take all of that class's rows
(`k_shot_allow_fewer`), and the report says which.

Files, under --out (default benchmarks/results/reproduce_fewshot/):

- reproduce-fewshot-<backbone>.{json,md}: the report (committed);
- cells-<backbone>.jsonl: every finished cell, one a line: its scores, attention statistics and per-example
  predictions and attention weights, without the input texts; and the SPoT source chosen per target
  (committed). A cell found there is read back, never run again; it is what the report reads;
- runs/<backbone>/: one run folder per cell (not committed): an interrupted cell resumes from its checkpoint;
  a finished cell's weights are deleted once its record is kept.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attempt.runs.layout import BEST_DIR, CHECKPOINT_DIR, RunLayout
from attempt.utils import storage
from attempt.utils.reading import read_json
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import (
    DATA_DIR,
    ORIGINAL_PROMPTS,
    RUNS,
    data_overlay,
    read_records,
    results_dir,
    slug,
    write_json,
    write_records,
)
from benchmarks.reproduce_fewshot_report import (
    ABLATIONS,
    ATTEMPT_METHODS,
    K16_METHODS,
    METHODS,
    attention_stats,
    majority_score,
    report,
    summarise,
)

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The source prompts the grid ran with, as shipped on 2026-12-01 (mnli 1,200 steps, qnli, sst2): a copy, since
# the library has shipped a retrained mnli since (issue 22) and a rerun must mix the same prompts.
LIBRARY = results_dir("reproduce_fewshot") / "library"
TARGETS = ("cb", "boolq", "rte")
KS = (16, 32)
# BoolQ's training pool in the mirror: FewGLUE's two 32-row samples of the official train, together
POOLS = {("aps/super_glue", "boolq"): ("train_fewglue32", "validation_fewglue32")}
CELL_NUMBERS = ("test", "validation", "test_metrics", "wall_time_s", "attention")  # what the report reads


@dataclass(frozen=True)
class Options:
    """One few-shot grid: what runs and how big every cell is."""

    backbone: str = BACKBONE
    library: Path = LIBRARY
    sources: tuple[str, ...] = (
        "mnli",
        "qnli",
        "sst2",
    )  # fixed, so a prompt added to the library later changes no cell
    targets: tuple[str, ...] = TARGETS
    ks: tuple[int, ...] = KS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int = 60  # 60 x 8 = 480 examples: 10 epochs of a 16-shot binary task, 5 of a 32-shot 3-class one
    batch: int = 8
    prompt_lr: float = 0.01  # the shipped sources' learning rate (benchmarks/source_prompts.py)
    lora_lr: float = 1e-3
    test_limit: int = 300
    eval_limit: int = 64  # validation rows: the SPoT source choice and the end-of-run validation score
    max_source_length: int = 128
    split_seed: int = 0
    tiny: bool = False
    lr_overrides: dict[str, float] = field(default_factory=dict)
    ablations: tuple[str, ...] = ()  # of ABLATIONS: run after the grid, at k = 16


def methods_at(k: int) -> tuple[str, ...]:
    """The grid's methods at k examples per class."""
    return METHODS + (K16_METHODS if k == 16 else ())


def fewshot_data(source: Path, overlay: Path) -> Path:
    """The mirror's links (`benchmarks.common.data_overlay`) plus BoolQ's training pool written as its train
    split."""
    data_overlay(source, overlay)
    for (hub_id, config), parts in POOLS.items():
        if not (source / hub_id / config / "train.jsonl").exists():
            lines = [
                line
                for part in parts
                for line in (source / hub_id / config / f"{part}.jsonl").read_text().splitlines()
            ]
            storage.write_text(overlay / hub_id / config / "train.jsonl", "\n".join(lines) + "\n")
    return overlay


def cell_record(key: dict[str, Any], run: Path) -> dict[str, Any]:
    """What the grid keeps of a finished cell's run folder: its scores, the attention statistics over its test
    rows, and each test example's prediction and attention weights (to 6 decimals), without the input texts
    (which only repeat the data), as columns (`example_columns`)."""
    results = read_json(RunLayout(run).results, f"Delete {run} to run the cell again.")
    record = {"kind": "cell", **key, "test": results["test"]["average"],
              "validation": results["validation"]["average"], "test_metrics": results["test"],
              "wall_time_s": results["wall_time_s"]}  # fmt: skip
    examples = [
        {k: row[k] for k in ("idx", "prediction", "reference", "attention_weights") if k in row}
        for _, row in numbered_jsonl(RunLayout(run).predictions())
    ]
    weights = [e["attention_weights"] for e in examples if e.get("attention_weights")]
    if weights:
        record["attention"] = attention_stats(weights)
    for e in examples:
        if e.get("attention_weights"):
            e["attention_weights"] = {name: round(w, 6) for name, w in e["attention_weights"].items()}
    return {**record, "examples": example_columns(examples)}


def example_columns(rows: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Per-example rows as columns: one list per key, and one list per prompt under "attention_weights" (None
    where a row lacks the key). A grid's file keeps its examples so: the key names written once per cell
    instead of once per example halve the file (2.3 MB -> 1.0 MB for the few-shot grid), values unchanged.
    Columns are returned as they are, so a file of either form can be compacted."""
    if isinstance(rows, dict):
        return rows
    columns: dict[str, Any] = {}
    for key in ("idx", "prediction", "reference"):
        if any(key in row for row in rows):
            columns[key] = [row.get(key) for row in rows]
    names = next((list(row["attention_weights"]) for row in rows if row.get("attention_weights")), [])
    if names:
        columns["attention_weights"] = {
            name: [(row.get("attention_weights") or {}).get(name) for row in rows] for name in names
        }
    return columns


def example_rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-example rows of `example_columns` back, one dict per example (keys a row lacked left out)."""
    weights = columns.get("attention_weights", {})
    plain = {key: values for key, values in columns.items() if key != "attention_weights"}
    count = len(next(iter([*plain.values(), *weights.values()]), []))
    rows = [{key: values[i] for key, values in plain.items() if values[i] is not None} for i in range(count)]
    for i, row in enumerate(rows):
        if any(values[i] is not None for values in weights.values()):
            row["attention_weights"] = {name: values[i] for name, values in weights.items()}
    return rows


def compact_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its examples as columns (records written before the columns keep a list of rows)."""
    if isinstance(record.get("examples"), list):
        return {**record, "examples": example_columns(record["examples"])}
    return record


class FewShotGrid:
    """Runs (or reads back) the cells of one few-shot grid; the backbone loads once, when a cell must train,
    and each cell trains a fresh copy."""

    def __init__(self, options: Options, out: Path, data_dir: Path, log=print):
        self.options, self.log = options, log
        name = "tiny-llama" if options.tiny else slug(options.backbone)
        self.root = out / RUNS / name
        self.data_dir = fewshot_data(data_dir, self.root / "data")
        self.store = out / f"cells-{name}.jsonl"
        self.kept = {_key_of(r): compact_record(r) for r in read_records(self.store)}
        self.computed = self.reused = self.missing = 0
        self._loaded = None
        from attempt.prompts.library import PromptLibrary

        library = PromptLibrary(options.library)
        missing = [name for name in options.sources if name not in library]
        if missing:
            raise ValueError(
                f"{options.library} lacks the source prompt(s) {missing}: run "
                "`python -m benchmarks.source_prompts` first."
            )
        self.sources = list(options.sources)
        self.prompt_length = library.get(self.sources[0]).length

    def backbone(self) -> tuple[Any, Any, str]:
        """(backbone, tokenizer, family), loaded on first use: a report of kept cells needs none."""
        if self._loaded is None:
            if self.options.tiny:
                from attempt.testing import build_backbone, build_tokenizer

                self._loaded = (build_backbone("causal"), build_tokenizer("causal"), "causal")
            else:
                from attempt.backbones.resolve import load_backbone

                self._loaded = tuple(load_backbone(self.options.backbone))
        return self._loaded

    def keep(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add a record to the grid's file (rewritten whole, atomically) and return it."""
        self.kept[_key_of(record)] = compact_record(record)
        write_records(self.store, self.kept.values())
        return record

    def config(
        self, method: str, task: str, k: int | None, seed: int, out: Path, sources: tuple[str, ...] = ()
    ):
        """The TrainConfig of one cell (method: a grid method name; attempt_paper = ATTEMPT at T = d·e)."""
        from attempt.config import TrainConfig

        o = self.options
        mode = "attempt" if method in ATTEMPT_METHODS else method
        attempt = {"prompt_length": self.prompt_length, **({"temperature": "paper"} if method == "attempt_paper" else {}),
                   **ABLATIONS.get(method, {})}  # fmt: skip
        lr = o.lr_overrides.get(method, o.lora_lr if method == "lora" else o.prompt_lr)
        return TrainConfig(
            mode=mode, backbone="tiny-llama" if o.tiny else o.backbone, tasks=(task,), source_prompts=sources,
            library=str(o.library), output_dir=str(out), data_dir=str(self.data_dir), attempt=attempt,
            max_steps=o.steps, batch_size=o.batch, eval_batch_size=32, learning_rate=lr, warmup_steps=o.steps // 10,
            seed=seed, split_seed=o.split_seed, max_source_length=o.max_source_length, eval_every=0, k_shot=k,
            k_shot_allow_fewer=True, eval_limit=o.eval_limit, test_limit=o.test_limit, eval_method="rank",
            gradient_checkpointing=False,  # as the committed cells ran (the default since 77a57fc turns it on)
        )  # fmt: skip

    def cell_sources(self, method: str, task: str, spot: dict[str, Any]) -> tuple[str, ...]:
        if method in ATTEMPT_METHODS:
            return tuple(self.sources)
        return (spot[task]["chosen"],) if method == "spot" else ()

    def run_cell(self, key: dict[str, Any], config, compute: bool) -> dict[str, Any]:
        """Train one cell, or read it back (kept in the grid's file, or finished in its run folder); returns
        the cell record the report reads (key, run folder, numbers)."""
        from attempt.training.loop import train

        out = Path(config.output_dir)
        record = {**key, "output_dir": out.relative_to(self.root).as_posix()}
        kept = self.kept.get(_key_of({"kind": "cell", **key}))
        if kept is None and RunLayout(out).results.is_file():  # finished, but cut off before it was kept
            kept = self.keep(cell_record(key, out))
        if kept is not None:
            self.reused += 1
            return {**record, **{k: kept[k] for k in CELL_NUMBERS if k in kept}, "reused": True}
        if not compute:
            self.missing += 1
            return {**record, "missing": True}
        self.log(f"run  {json.dumps(key)}")
        started = time.time()
        backbone, tokenizer, _ = self.backbone()
        train(config, model=copy.deepcopy(backbone), tokenizer=tokenizer, progress=False)
        for name in (CHECKPOINT_DIR, BEST_DIR):  # the weights: the cell's numbers are what is kept
            shutil.rmtree(out / name, ignore_errors=True)
        self.computed += 1
        kept = self.keep(cell_record(key, out))
        self.log(f"     test {kept['test']:.2f} ({time.time() - started:.0f} s)")
        return {**record, **{k: kept[k] for k in CELL_NUMBERS if k in kept}, "reused": False}

    def spot_sources(self, compute: bool) -> dict[str, dict[str, Any]]:
        """Per target, every source prompt's validation score as it is (untrained), and the best one: SPoT's
        source. Kept in the grid's file (a few minutes of evaluation)."""
        from attempt.data.splits import load_task_data
        from attempt.evaluation.evaluate import evaluate
        from attempt.runs.build import build_model

        chosen = {r["task"]: _spot(r) for r in self.kept.values() if r["kind"] == "spot_source"}
        for task in self.options.targets:
            if task in chosen or not compute:
                continue
            scores = {}
            backbone, tokenizer, family = self.backbone()
            for name in self.sources:
                config = self.config("spot", task, None, 0, self.root / "spot", (name,))
                rows = {task: load_task_data(config)[task]["validation"]}
                model = build_model(config, backbone, tokenizer, family)
                scores[name] = evaluate(
                    model, tokenizer, rows, batch_size=32, max_source_length=config.max_source_length
                )["average"]
            chosen[task] = {"chosen": max(scores, key=scores.get), "validation_untrained": scores}
            self.log(f"spot source for {task}: {chosen[task]}")
            self.keep({"kind": "spot_source", "task": task, **chosen[task]})
        return chosen

    def run_all(self, compute: bool = True) -> dict[str, Any]:
        """Every cell of the grid in order (k = 16 first), then the ablations."""
        spot = self.spot_sources(compute)
        order = [
            (k, task, seed, method)
            for k in self.options.ks  # k = 16 first: the cells every comparison needs
            for task in self.options.targets
            for seed in self.options.seeds
            for method in methods_at(k)
        ]
        order += [(16, task, seed, method) for method in self.options.ablations  # after the grid
                  for task in self.options.targets for seed in self.options.seeds]  # fmt: skip
        cells = []
        for k, task, seed, method in order:
            if method == "spot" and task not in spot:
                continue
            key = {"method": method, "task": task, "k": k, "seed": seed}
            out = self.root / "cells" / method / task / f"k{k}_s{seed}"
            config = self.config(method, task, k, seed, out, self.cell_sources(method, task, spot))
            cells.append(self.run_cell(key, config, compute))
        return {"cells": cells, "spot_sources": spot}


def _key_of(record: dict[str, Any]) -> tuple:
    """What identifies a record of the grid's file: a cell's (method, task, k, seed), a target's SPoT choice."""
    if record["kind"] == "spot_source":
        return ("spot_source", record["task"])
    return ("cell", record["method"], record["task"], record["k"], record["seed"])


def _spot(record: dict[str, Any]) -> dict[str, Any]:
    return {"chosen": record["chosen"], "validation_untrained": record["validation_untrained"]}


def attention_reach(library: Path, names: list[str]) -> dict[str, Any]:
    """How far the attention can move at the start of a run (target = a copy of the first source, LayerNorm
    at identity), at each named temperature: T, and the most weight any input can give one prompt
    (`AttentionalMixture.max_attention_weight`). The original release's T5-base ReCoRD prompt beside it, when
    ../shared/original-prompts has it: the paper's own scale of keys."""
    import torch

    from attempt.config import AttemptConfig
    from attempt.mixture import AttentionalMixture
    from attempt.prompts.library import PromptLibrary, read_original_prompt

    def reach(prompts: torch.Tensor) -> dict[str, Any]:  # prompts: (t, m, d)
        out = {}
        for temperature in ("paper", "sqrt_d", "auto"):
            config = AttemptConfig(prompt_length=prompts.shape[1], temperature=temperature)
            mixture = AttentionalMixture(config, prompts.shape[-1], prompts, prompts[0])
            out[temperature] = {"T": mixture.temperature, "max_weight": mixture.max_attention_weight()}
        return {**out, "uniform": 1 / (prompts.shape[0] + 1)}

    prompts = torch.stack([p.embeddings for p in PromptLibrary(library).load(names)])
    result = {"this backbone": reach(prompts)}
    original = ORIGINAL_PROMPTS / "record_prefix_embeddings.t5-base.pt"
    if original.is_file():
        result["T5-base ReCoRD (original release)"] = reach(read_original_prompt(original)[None])
    return result


def run(
    options: Options,
    out: Path,
    data_dir: Path = DATA_DIR,
    compute: bool = True,
    threads: int | None = None,
    log=print,
) -> dict[str, Any]:
    """Run (or read back) the grid and write reproduce-fewshot-<backbone>.{json,md} under `out`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    grid = FewShotGrid(options, out, data_dir, log)
    ran = grid.run_all(compute)
    from attempt.data.splits import load_task_data

    tests = {
        t: load_task_data(grid.config("prompt_tuning", t, 16, 0, out))[t]["test"] for t in options.targets
    }
    test_rows = {t: len(rows) for t, rows in tests.items()}
    results = {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()},
               "sources": grid.sources, "spot_sources": ran["spot_sources"], "cells": ran["cells"],
               "cells_computed": grid.computed, "cells_reused": grid.reused, "cells_missing": grid.missing,
               "test_rows": test_rows, "majority": {t: majority_score(t, rows) for t, rows in tests.items()},
               "summary": summarise(ran["cells"], options),
               "attention_reach": attention_reach(options.library, grid.sources)}  # fmt: skip
    stem = out / f"reproduce-fewshot-{'tiny' if options.tiny else slug(options.backbone)}"
    write_json(stem.with_suffix(".json"), results)
    storage.write_text(stem.with_suffix(".md"), report(results))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=results_dir("reproduce_fewshot"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny causal LM and a random library")
    parser.add_argument("--library", type=Path, default=LIBRARY)
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished cells")
    parser.add_argument(
        "--ablations",
        nargs="*",
        default=[],
        choices=sorted(ABLATIONS),
        help="also run these at k = 16, after the grid (attempt_mean: x̂ mean-pooled; "
        "attempt_centred: x̂ minus the training inputs' mean, AttemptConfig.centre_inputs)",
    )
    args = parser.parse_args(argv)
    options = Options(
        library=args.library,
        targets=tuple(args.targets),
        ks=tuple(args.ks),
        seeds=tuple(range(args.seeds)),
        tiny=args.tiny,
        ablations=tuple(args.ablations),
    )
    results = run(options, args.out, args.data_dir, compute=not args.report_only, threads=args.threads)
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
