"""The paper's main claim with full training data, on SmolLM2-135M-Instruct: prompt tuning, SPoT, ATTEMPT,
ATTEMPT-m, LoRA (and full fine-tuning where affordable) on every target of the paper's main table that the
mirror holds (issue 22).

    python -m benchmarks.main_table --pilot          # first: prompt tuning on rte and cb, validated every 50 steps
    python -m benchmarks.main_table                  # the table (tens of CPU hours; resumable, cell by cell)
    python -m benchmarks.main_table --report-only    # the report of the cells finished so far (also written
                                                     # at the end of every run: main_table_report.py)
    python -m benchmarks.main_table --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

Why a pilot: the paper's claim is that ATTEMPT beats prompt tuning *when both have converged*; a budget short
enough to leave prompt tuning half-trained would favour a method that starts higher. The pilot trains prompt
tuning on the two small tasks where the paper's gap is largest (rte, cb) for PILOT_STEPS steps, validating every
PILOT_EVERY, and the budget of every cell is the first step at which both curves are within PLATEAU_POINTS of
their best, rounded up to 100 (`budget_from_pilot`). The report shows both curves.

A cell is (task, method, seed). Every method trains the same number of steps of the same batch size at its own
learning rate, and is scored on the same test rows twice: at step 0 (the model as built, before any update) and
at the end, so the report separates where a method starts from what it learns. The end is the checkpoint that
scores best on the validation rows, checked every `cell_every` steps (the paper's model selection; each check
also leaves a checkpoint, so `--stash` can keep an unfinished cell for the next session). Seeds set the
initialisation and
the batch order; the split seed is fixed. Three seeds for the tasks whose official training set has fewer than
10K rows (the noise there is larger than the effects), one for the others. SPoT's source is the source prompt
that scores best on the target's validation rows as it is (untrained), as `attempt prompts rank` does. ATTEMPT-m
trains one attention over the eight GLUE targets jointly, with mixed-task batches, for budget × 8 steps (the
same examples per task as a single-task cell).

Finished cells are records of one JSON-lines file (benchmarks/results/main_table/cells-<backbone>.jsonl,
committed): a record found there is not run again; run folders (benchmarks/results/main_table/runs/) are not
committed.

Several processes may run the same table at once (scripts/background.sh starts two of one thread each: on the
2-core CPU they finish more cells an hour than one process of two threads, `benchmarks/cell_parallel.py`). Each
takes the cells in the same order and skips a cell another live process has claimed (`claim.json` in the
cell's run folder, holding its pid); claiming a cell and adding a record to the cells file happen under one
file lock (`filelock`, which huggingface_hub already brings), after reading the file again, so no process
loses another's record.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from attempt.runs.layout import BEST_DIR, CHECKPOINT_DIR, RunLayout
from attempt.utils import storage
from attempt.utils.reading import read_json
from attempt.utils.textfiles import numbered_jsonl
from benchmarks import main_table_report
from benchmarks.common import (
    DATA_DIR,
    REPO,
    commit,
    data_overlay,
    hold_out,
    read_records,
    restore_run,
    results_dir,
    shown,
    slug,
    stash_run,
    write_records,
)
from benchmarks.main_table_report import MIXED_PRECISIONS, precision_of
from benchmarks.reproduce_fewshot import cell_record, compact_record

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"
GLUE = ("cola", "stsb", "mrpc", "rte", "mnli", "qqp", "qnli", "sst2")
SUPERGLUE = ("cb", "copa", "multirc", "wic", "wsc", "boolq")
METHODS = ("prompt_tuning", "spot", "attempt", "lora")
NEEDS_SOURCES = ("spot", "attempt", "attempt_m")
LONG_INPUTS = ("multirc", "boolq", "copa", "wsc")  # passages: 256 tokens instead of 128
SMALL = 10_000  # official training rows under which a task gets three seeds
PILOT_TASKS, PILOT_STEPS, PILOT_EVERY, PLATEAU_POINTS = ("rte", "cb"), 600, 50, 2.0
# The small tasks whose paper protocol (the official validation halved into validation and test) leaves under
# 300 test rows though the data have more: their test is the whole official validation (rte 277 rows, mrpc 408:
# its first 300) and their validation is VALIDATION_FROM_TRAIN rows held out of the official train (rte 2,490 ->
# 2,290 training rows, mrpc 3,668 -> 3,468). The issue asks for test sets of at least 300 rows where the data have
# them; these are the two tasks of the paper's largest gaps (rte 54.7 -> 73.4, mrpc 68.1 -> 85.7), where the
# halved 139 and 204 rows gave a standard error of about 4 points. cb, copa and wsc have too few training rows
# to hold any out (250, 400, 554), and the others' halves already hold 300.
WHOLE_VALIDATION_TEST = ("rte", "mrpc")
VALIDATION_FROM_TRAIN = 200
CLOCK = "cell_clock.json"  # in a cell's run folder: when this session's part began, and the seconds before it
STEP0 = "step0.json"  # in a cell's run folder (and its stash): its step-0 score, not scored again on resuming
CLAIM = "claim.json"  # in a cell's run folder: the pid of the process running it (several may run the table)
LOCK = ".cells.lock"  # in the runs folder: one process at a time claims a cell or rewrites the cells file
BENCHMARK = "main_table"


@dataclasses.dataclass(frozen=True)
class Options:
    """One main table: what runs and how big every cell is."""

    backbone: str = BACKBONE
    library: Path = LIBRARY
    # the paper's six sources but ReCoRD (its 32 rows in the mirror train nothing): fixed, so a prompt added to the
    # library later changes no cell; the cells that mix them wait until every one is trained to its plateau
    # (scripts/background.sh), and each records the content hash of the prompts it mixed (`source_hashes`)
    sources: tuple[str, ...] = ("mnli", "qnli", "qqp", "sst2", "squad")
    targets: tuple[str, ...] = GLUE + SUPERGLUE
    methods: tuple[str, ...] = METHODS
    steps: int | None = None  # None: from the pilot (budget_from_pilot)
    batch: int = 8
    prompt_lr: float = 0.01  # the shipped sources' learning rate (benchmarks/source_prompts.py)
    lora_lr: float = 1e-3
    finetune_lr: float = 5e-5
    prompt_length: int = 20
    pilot_steps: int = PILOT_STEPS
    pilot_every: int = PILOT_EVERY
    cell_every: int = 100  # validate (pick the best) and checkpoint every N steps of a cell
    # "bf16-train": bf16 autocast training (about half float32's minutes on this avx512_bf16 CPU), every score
    # in float32 (main_table_report.PRECISION says why); "no" (float32) and "bf16" (bf16 scoring too) for checks
    mixed_precision: str = main_table_report.PRECISION
    test_limit: int = 300
    eval_limit: int = 200
    split_seed: int = 0
    tiny: bool = False


def seeds_of(task: str) -> tuple[int, ...]:
    """Three seeds for a task with under 10K official training rows, one otherwise."""
    from attempt.tasks import get_task

    return (0, 1, 2) if get_task(task).official_train_size < SMALL else (0,)


def budget_from_pilot(curves: dict[str, list[tuple[int, float]]]) -> int:
    """The first step at which every pilot curve is within PLATEAU_POINTS of its own best, rounded up to 100."""
    reached = []
    for points in curves.values():
        best = max(value for _, value in points)
        reached.append(next(step for step, value in points if value >= best - PLATEAU_POINTS))
    return int(math.ceil(max(reached) / 100) * 100)


def validation_curve(run: Path) -> list[tuple[int, float]]:
    """(step, validation average) of every evaluation in a run's metrics log."""
    return [
        (row["step"], row["metrics"]["average"])
        for _, row in numbered_jsonl(RunLayout(run).metrics)
        if row.get("type") == "eval" and row.get("split") == "validation"
    ]


class MainTable:
    """Runs (or reads back) the pilot and the cells; one backbone load, a fresh copy per cell."""

    def __init__(self, options: Options, out: Path, data_dir: Path, log=print):
        self.options, self.log = options, log
        name = "tiny-llama" if options.tiny else slug(options.backbone)
        self.root = out / "runs" / name
        self.store = out / f"cells-{name}.jsonl"
        self.state = out / "state" / name  # unfinished pilot runs and cells, committed (`stash`)
        self.data_dir = data_overlay(data_dir, self.root / "data", held_out=True)  # qqp: held-out test rows
        self.kept: dict[tuple, dict[str, Any]] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(self.root / LOCK)
        self.refresh()
        self._loaded: tuple[Any, Any, str] | None = None

    def backbone(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            from attempt.backbones.resolve import load_backbone
            from attempt.testing import build_backbone, build_tokenizer

            tiny = (build_backbone("causal"), build_tokenizer("causal"), "causal")
            self._loaded = tiny if self.options.tiny else load_backbone(self.options.backbone)
        return self._loaded

    def refresh(self) -> None:
        """Read the cells file again: another process running the table may have added records to it."""
        with self.lock:
            on_disk = {_key_of(r): compact_record(r) for r in read_records(self.store)}  # examples as columns
        self.kept = {**on_disk, **self.kept}  # the file's order; a record kept here wins (the same cell's)

    def keep(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add `record` to the cells file, with every record another process added since it was last read."""
        with self.lock:
            self.refresh()
            self.kept[_key_of(record)] = record
            write_records(self.store, self.kept.values())
        return record

    def claim(self, run: Path) -> int | None:
        """Claim the cell of run folder `run` for this process: None when another live process has it, else
        how many cells run now, this one included (recorded: a cell's minutes depend on it)."""
        with self.lock:
            fix = "Delete it: a claim is rewritten by the process that runs the cell."
            pids = {c.parent: read_json(c, fix)["pid"] for c in self.root.glob(f"cells*/*/*/s*/{CLAIM}")}
            others = {folder for folder, pid in pids.items() if pid != os.getpid() and _alive(pid)}
            if run in others:
                return None
            storage.write_json(run / CLAIM, {"pid": os.getpid()})  # a dead process's claim is taken over
            return len(others) + 1

    def config(self, method: str, tasks: tuple[str, ...], seed: int, out: Path, steps: int, **extra: Any):
        """The TrainConfig of one run: `method` is a table method (attempt_m is ATTEMPT over several tasks)."""
        from attempt.config import TrainConfig

        o = self.options
        mode = "attempt" if method == "attempt_m" else method
        length = 256 if set(tasks) & set(LONG_INPUTS) else 128
        files = {t: self.split_files(t) for t in tasks if t in WHOLE_VALIDATION_TEST}
        fields = dict(
            mode=mode, backbone="tiny-llama" if o.tiny else o.backbone, tasks=tasks, library=str(o.library),
            output_dir=str(out), data_dir=str(self.data_dir), attempt={"prompt_length": o.prompt_length},
            max_steps=steps, batch_size=o.batch, eval_batch_size=32,
            learning_rate={"lora": o.lora_lr, "finetune": o.finetune_lr}.get(method, o.prompt_lr),
            warmup_steps=steps // 10,
            seed=seed, split_seed=o.split_seed, max_source_length=length, eval_every=o.cell_every,
            eval_limit=o.eval_limit,
            test_limit=o.test_limit, eval_method="rank", mixed_precision=o.mixed_precision.removesuffix("-train"),
            eval_in_float32=o.mixed_precision.endswith("-train"),
            gradient_checkpointing=False,  # every cell as the first ones ran: same numbers, comparable minutes
            data_files=files or None,
        )  # fmt: skip
        return TrainConfig(**{**fields, **extra})

    # ------------------------------------------------------------------------------------------- pilot
    def pilot(self, compute: bool = True) -> dict[str, Any]:
        """Prompt tuning on PILOT_TASKS, validated every PILOT_EVERY steps; the curves and the budget."""
        curves = {}
        for task in PILOT_TASKS:
            key = {"kind": "pilot", "task": task}
            kept = self.kept.get(_key_of(key))
            if kept is None and compute:
                out = self.root / "pilot" / task
                if restore_run(out, self.state / "pilot" / task):
                    self.log(f"resuming the {task} pilot from its stashed state")
                config = self.config("prompt_tuning", (task,), 0, out, self.options.pilot_steps,
                                     eval_every=self.options.pilot_every)  # fmt: skip
                self._train(config)
                kept = self.keep({**key, "curve": validation_curve(out)})
                shutil.rmtree(self.state / "pilot" / task, ignore_errors=True)  # stale once the curve is kept
            if kept is not None:
                curves[task] = [tuple(point) for point in kept["curve"]]
        budget = budget_from_pilot(curves) if len(curves) == len(PILOT_TASKS) else None
        return {"curves": curves, "budget": budget}

    def cells_folder(self, precision: str) -> Path:
        """Where the cells of a precision run: `cells/` (float32, the first cells), `cells-bf16/`, ..."""
        return self.root / ("cells" if precision == "no" else f"cells-{precision}")

    def stash(self) -> list[Path]:
        """Keep the resumable state of every unfinished pilot run and cell (a session's run folders end with it)."""
        unfinished = [
            Path("pilot", task)
            for task in PILOT_TASKS
            if _key_of({"kind": "pilot", "task": task}) not in self.kept
        ]
        for precision in MIXED_PRECISIONS:
            folder = self.cells_folder(precision)
            for run in sorted(folder.glob("*/*/s*")):
                method, task, seed = run.relative_to(folder).parts
                key = {"kind": "cell", "method": method, "task": task, "seed": int(seed[1:]),
                       "mixed_precision": precision}  # fmt: skip
                unfinished += [] if _key_of(key) in self.kept else [run.relative_to(self.root)]
        kept = [stash_run(self.root / where, self.state / where, also=(STEP0,)) for where in unfinished]
        for state in filter(None, kept):
            clock = self.root / state.relative_to(self.state) / CLOCK
            if clock.is_file():  # a cell: the seconds it cost up to its last checkpoint, for the next session
                storage.write_json(state / CLOCK, {"earlier_s": _spent_until_checkpoint(clock)})
        return [state for state in kept if state]

    def steps(self) -> int:
        if self.options.steps is not None:
            return self.options.steps
        budget = self.pilot(compute=False)["budget"]
        if budget is None:
            raise SystemExit("No budget yet: run the pilot first (python -m benchmarks.main_table --pilot).")
        return budget

    # ------------------------------------------------------------------------------------------- cells
    def spot_source(self, task: str, compute: bool) -> str | None:
        """The source prompt that scores best on `task`'s validation rows as it is (SPoT's choice), ranked by
        `attempt.evaluation.ranking.rank_sources` (what `attempt prompts rank` prints): each source as the
        untrained target prompt of a `mode="spot"` model, on the table's validation rows of `task`."""
        from attempt.data.splits import load_task_data
        from attempt.evaluation.ranking import rank_sources
        from attempt.prompts.library import PromptLibrary

        key = {"kind": "spot_source", "task": task}
        if _key_of(key) not in self.kept and compute:
            backbone, tokenizer, family = self.backbone()
            config = self.config(
                "spot", (task,), 0, self.root / "spot", 1, source_prompts=self.options.sources
            )
            rows = load_task_data(config)[task]["validation"]
            prompts = PromptLibrary(self.options.library).load(list(self.options.sources))
            with self.autocast():  # chosen at the table's precision, as its cells score
                ranking = rank_sources(backbone, tokenizer, family, prompts, task, rows, batch_size=32,
                                       max_source_length=config.max_source_length, seed=config.seed)  # fmt: skip
            scores = {
                s.name: s.score for s in sorted(ranking, key=lambda s: self.options.sources.index(s.name))
            }
            self.keep({**key, "chosen": ranking[0].name, "validation_untrained": scores})
        kept = self.kept.get(_key_of(key))
        return None if kept is None else kept["chosen"]

    def cell_config(self, method: str, task: str, seed: int, steps: int, compute: bool):
        """The config of one cell, or None when SPoT's source is not chosen yet."""
        out = self.cells_folder(self.options.mixed_precision) / method / task / f"s{seed}"
        if method == "attempt_m":
            return self.config(
                method, GLUE, seed, out, steps * len(GLUE), source_prompts=self.options.sources
            )
        sources: tuple[str, ...] = ()
        if method == "spot":
            chosen = self.spot_source(task, compute)
            if chosen is None:
                return None
            sources = (chosen,)
        elif method == "attempt":
            sources = self.options.sources
        return self.config(method, (task,), seed, out, steps, source_prompts=sources)

    def cached_step0(self, config, resumed: bool) -> dict[str, Any]:
        """The step-0 score of a cell: read back when the cell resumes from a stash that kept it (scoring long
        rows again cost minutes a session, boolq's 300 rows about five), else scored and kept beside the run."""
        path = Path(config.output_dir) / STEP0
        if resumed and path.is_file():
            return read_json(path, f"Delete {path}: the cell scores its step 0 again.")
        before = self.step0(config)
        storage.write_json(path, before)
        return before

    def step0(self, config) -> dict[str, Any]:
        """Test metrics of the model as built for `config`, before any update (same rows as the end)."""
        from attempt.data.splits import load_task_data
        from attempt.evaluation.evaluate import evaluate
        from attempt.runs.build import build_model

        backbone, tokenizer, family = self.backbone()
        model = build_model(config, copy.deepcopy(backbone), tokenizer, family)
        rows = {task: splits["test"] for task, splits in load_task_data(config).items()}
        # scored as the training loop scores its validation and test rows
        with self.autocast():
            return evaluate(model, tokenizer, rows, method="rank", batch_size=32,
                            max_source_length=config.max_source_length)  # fmt: skip

    def source_hashes(self, names: tuple[str, ...]) -> dict[str, str]:
        """The content hash of each source prompt a cell mixed (a retrained prompt shipped later has another)."""
        from attempt.prompts.library import PromptLibrary

        library = PromptLibrary(self.options.library)
        return {name: library.get(name).hash for name in names}

    def split_files(self, task: str) -> dict[str, str]:
        """The split files of a WHOLE_VALIDATION_TEST task, under the run folders: train = the official train
        without VALIDATION_FROM_TRAIN of its rows (a permutation seeded by the split seed; `common.hold_out`),
        validation = those rows, test = the official validation file itself."""
        import numpy as np

        from attempt.tasks import get_task

        spec = get_task(task)
        mirror = self.data_dir / spec.hub_id / (spec.config or "")
        folder = self.root / "splits" / task
        train = mirror / f"{spec.train_split}.jsonl"
        count = len(train.read_text(encoding="utf-8").splitlines())
        rows = sorted(
            np.random.default_rng(self.options.split_seed).permutation(count)[:VALIDATION_FROM_TRAIN]
        )
        hold_out(train, folder, "validation", [int(i) for i in rows])
        return {"train": str(folder / "train.jsonl"), "validation": str(folder / "validation.jsonl"),
                "test": str(mirror / f"{spec.validation_split}.jsonl")}  # fmt: skip

    def autocast(self):
        """The precision the table scores in, as a context: bf16 autocast on the backbone's device for "bf16",
        nothing (float32) for "no" and "bf16-train"."""
        import contextlib

        import torch

        if self.options.mixed_precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(next(self.backbone()[0].parameters()).device.type, dtype=torch.bfloat16)

    def run_cell(self, method: str, task: str, seed: int, steps: int, compute: bool) -> dict[str, Any] | None:
        """Train one cell (step-0 score first), or read it back; None when it is not run (yet), or another
        process runs it now."""
        import torch

        key = {"kind": "cell", "method": method, "task": task, "seed": seed,
               "mixed_precision": self.options.mixed_precision}  # fmt: skip
        self.refresh()
        if _key_of(key) in self.kept or not compute:
            return self.kept.get(_key_of(key))
        config = self.cell_config(method, task, seed, steps, compute)
        if config is None:
            return None
        with self.lock:  # finished or claimed by another process since the file was read: not run here
            self.refresh()
            running = None if _key_of(key) in self.kept else self.claim(Path(config.output_dir))
        if running is None:
            return self.kept.get(_key_of(key))
        self.log(f"run  {json.dumps(key)} ({config.max_steps} steps, {running} cell(s) running)")
        state = self.state / Path(config.output_dir).relative_to(self.root)
        clock, earlier = Path(config.output_dir) / CLOCK, 0.0
        resumed = restore_run(Path(config.output_dir), state)
        if resumed:
            earlier = read_json(clock, f"Delete {state} to run the cell from the start.")["earlier_s"]
            self.log(f"     resuming from its stashed state ({shown(state)}, {earlier / 60:.0f} min before)")
        started = time.time()
        storage.write_json(clock, {"started": started, "earlier_s": earlier})
        before = self.cached_step0(config, resumed)
        self._train(config)
        record = {**cell_record(key, Path(config.output_dir)), "steps": config.max_steps, "step0": before,
                  "step0_average": before["average"], "cell_time_s": earlier + time.time() - started}  # fmt: skip
        record.update({"resumed": True} if resumed else {})
        # the code of its last session (cells already kept have none): cell_time_s is what that code cost
        record["commit"] = commit()[0]
        # what its minutes depend on: torch's threads, and how many cells ran at once when it began
        record.update({"threads": torch.get_num_threads(), "cells_at_once": running})
        record.update(
            {"source_hashes": self.source_hashes(config.source_prompts)} if config.source_prompts else {}
        )
        self.log(
            f"     step 0 {before['average']:.2f} -> test {record['test']:.2f} ({record['cell_time_s']:.0f} s)"
        )
        self.keep(record)
        shutil.rmtree(state, ignore_errors=True)  # a finished cell's stash would only go stale
        (Path(config.output_dir) / CLAIM).unlink(missing_ok=True)
        return record

    def order(self) -> list[tuple[str, str, int]]:
        """Seed 0 of every method on every task first (the paper's small tasks first), so that a table cut short
        is a whole table of one seed, then the other seeds; within a seed, the methods without sources before
        those with (a job that runs only the former, while sources train, goes on to the next seed)."""
        tasks = sorted(self.options.targets, key=lambda t: (seeds_of(t) == (0,), t not in PILOT_TASKS))
        single = [m for m in self.options.methods if m != "attempt_m"]  # ATTEMPT-m: one run over GLUE
        cells = [(m, t, s) for s in (0, 1, 2) for t in tasks if s in seeds_of(t) for m in single]
        cells += [("attempt_m", "glue", s) for s in (0, 1, 2)] if "attempt_m" in self.options.methods else []
        return sorted(cells, key=lambda c: (c[2], c[0] in NEEDS_SOURCES))

    def run_all(self, compute: bool = True, without_sources: bool = False) -> list[dict[str, Any]]:
        steps = self.steps()
        cells = []
        for method, task, seed in self.order():
            if without_sources and method in NEEDS_SOURCES:
                continue
            record = self.run_cell(method, task, seed, steps, compute)
            if record is not None:
                cells.append(record)
        return cells

    def _train(self, config) -> None:
        from attempt.training.loop import train

        backbone, tokenizer, _ = self.backbone()
        train(config, model=copy.deepcopy(backbone), tokenizer=tokenizer, progress=False)
        for name in (CHECKPOINT_DIR, BEST_DIR):  # the weights: the cell's numbers are what is kept
            shutil.rmtree(Path(config.output_dir) / name, ignore_errors=True)


def _spent_until_checkpoint(clock: Path) -> float:
    """Seconds a cell has cost up to its newest checkpoint file: the work a resumed session keeps (what came
    after the checkpoint is done again, and counted again, by the session that resumes)."""
    run = clock.parent
    times = read_json(clock, f"Delete {run} to run the cell from the start.")
    saved = max(f.stat().st_mtime for f in RunLayout(run).checkpoint.rglob("*") if f.is_file())
    return times["earlier_s"] + max(0.0, saved - times["started"])


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (on this machine: the processes of one table share its run folders)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _key_of(record: dict[str, Any]) -> tuple:
    """A record's identity in the cells file: a cell's includes its precision (float32, "no", when unrecorded)."""
    key = tuple(record.get(k) for k in ("kind", "method", "task", "seed"))
    return (*key, precision_of(record)) if record.get("kind") == "cell" else key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pilot", action="store_true", help="run the pilot (prompt tuning on rte and cb) only"
    )
    parser.add_argument("--report-only", action="store_true", help="train nothing; report the finished cells")
    parser.add_argument(
        "--stash",
        action="store_true",
        help="train nothing; keep the resumable state of unfinished pilot runs and cells in <out>/state/",
    )
    parser.add_argument(
        "--without-sources",
        action="store_true",
        help="run only the cells that need no source prompt (while the sources still train)",
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        choices=[*METHODS, "attempt_m", "finetune"])  # fmt: skip
    parser.add_argument("--targets", nargs="+", default=list(GLUE + SUPERGLUE))
    parser.add_argument("--steps", type=int, default=None, help="override the pilot's budget")
    parser.add_argument("--mixed-precision", choices=MIXED_PRECISIONS, default=Options.mixed_precision,
                        help="the cells' precision (float32 is 'no'; the report tables cells at "
                        f"{main_table_report.PRECISION!r} only)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny causal LM")
    parser.add_argument("--library", type=Path, default=LIBRARY, help="the source prompt library")
    parser.add_argument(
        "--sources", nargs="+", default=list(Options.sources), help="its prompts ATTEMPT mixes"
    )
    parser.add_argument("--out", type=Path, default=results_dir(BENCHMARK))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    options = Options(library=args.library, sources=tuple(args.sources), targets=tuple(args.targets), methods=tuple(args.methods),
                      steps=args.steps, tiny=args.tiny, mixed_precision=args.mixed_precision)  # fmt: skip
    if args.tiny:
        options = dataclasses.replace(options, test_limit=8, eval_limit=8, prompt_length=4, pilot_steps=20,
                                      pilot_every=10, cell_every=50)  # fmt: skip
    table = MainTable(options, args.out, args.data_dir)
    if args.stash:
        print("stashed:", *map(str, table.stash()), flush=True)
        return 0
    pilot = table.pilot(compute=not args.report_only)
    print(json.dumps({"pilot_budget": pilot["budget"], "pilot_curves": pilot["curves"]}), flush=True)
    if not args.pilot and not args.report_only:  # the report reads the cells file (no budget needed)
        cells = table.run_all(without_sources=args.without_sources)
        print(f"{len(cells)} cells finished", flush=True)
    written = main_table_report.write(table.store, report_command(args.out, args.tiny))
    print("report:", shown(written["md"]), flush=True)
    return 0


def report_command(out: Path, tiny: bool) -> str:
    """The command that rebuilds a table's report (the same whether a run or --report-only wrote it)."""
    where = [] if out.resolve() == results_dir(BENCHMARK).resolve() else ["--out", shown(out)]
    return " ".join(
        ["python -m benchmarks.main_table", *(["--tiny"] if tiny else []), *where, "--report-only"]
    )


if __name__ == "__main__":
    raise SystemExit(main())
