"""`attempt quickstart`: the whole method, small, on real weights and real data, in a few CPU minutes.

1. the source prompts (default mnli, qnli, sst2): the ones this repository ships for the backbone
   (`attempt.prompts.shipped`, prompts/<backbone>/) when it has them all, else small ones trained here by prompt tuning;
2. train ATTEMPT and plain prompt tuning on a small target task (default cb) under the same budget;
3. evaluate both on the target's test split, print a table, draw the attention heatmaps (the task's mean, and
   every test example's: the weights depend on the input).

Source prompts trained here (same backbone, same settings) are reused, so a second run only trains the targets.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attempt.config import TrainConfig, config_from_dict
from attempt.prompts.library import PromptLibrary
from attempt.runs import layout
from attempt.runs.layout import RunLayout
from attempt.utils import storage


@dataclass
class QuickstartConfig:
    """Settings of the quickstart; the defaults finish in under 10 minutes on 2 CPU cores.

    Attributes:
        out: folder for everything the quickstart writes.
        backbone: Hub id, alias or local folder of the frozen backbone.
        data_dir: local mirror of the Hub datasets (else ATTEMPT_DATA_DIR, else the Hub).
        sources: source tasks whose prompts ATTEMPT mixes (its target prompt starts as a copy of the first, as
            in the original code).
        sources_from: "shipped": the repository's prompts for this backbone (prompts/<backbone>/) when they
            hold every source at prompt_length, else trained here; "train": always trained here.
        target: the target task ATTEMPT and prompt tuning are compared on.
        prompt_length: m (the paper uses 100; shorter here for CPU speed).
        source_steps: optimizer steps per source prompt.
        target_steps: optimizer steps for each target method (the same budget for both).
        batch_size: examples per step.
        learning_rate: the prompts' learning rate.
        attention_learning_rate: the attention module's (and an encoder head's) learning rate.
        centre_inputs: ATTEMPT's input summary x̂ minus the training inputs' mean (AttemptConfig.centre_inputs;
            not in the paper), which lets the attention give different inputs different weights.
        max_source_length: input tokens kept per example.
        train_limit: training examples per task at most.
        eval_limit: validation and test examples per task at most.
        seed: seed of data order and initialisation.
    """

    out: str = "attempt-quickstart"
    backbone: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the repository ships its source prompts
    data_dir: str | None = None
    sources: tuple[str, ...] = ("mnli", "qnli", "sst2")
    sources_from: str = "shipped"
    target: str = "cb"
    prompt_length: int = 20
    source_steps: int = 80
    target_steps: int = 60  # 60 x 8 = 480 examples: about 2 epochs of CB's 250 training rows
    batch_size: int = 8
    learning_rate: float = 0.01  # the shipped SmolLM2 prompts' (MiniLM's prompts learn at 0.1)
    attention_learning_rate: float = 0.01
    centre_inputs: bool = False
    max_source_length: int = 128
    train_limit: int | None = 2000
    eval_limit: int | None = 200
    seed: int = 42

    def __post_init__(self) -> None:
        self.sources = tuple(self.sources) if not isinstance(self.sources, str) else (self.sources,)
        if not self.sources:
            raise ValueError("quickstart needs at least one source task, e.g. sources=('sst2',).")
        if self.sources_from not in ("shipped", "train"):
            raise ValueError(
                f"sources_from={self.sources_from!r} is not valid. Choose one of: shipped, train."
            )
        if self.target in self.sources:
            raise ValueError(
                f"target {self.target!r} is also a source task; pick a target outside {self.sources}."
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuickstartConfig:
        return config_from_dict(cls, data)


def _run_config(qs: QuickstartConfig, mode: str, tasks: tuple[str, ...], steps: int, output_dir: Path, library: Path,
                **extra):  # fmt: skip
    fields = dict(
        mode=mode,
        backbone=qs.backbone,
        tasks=tasks,
        library=str(library),
        output_dir=str(output_dir),
        data_dir=qs.data_dir,
        attempt={"prompt_length": qs.prompt_length},
        max_steps=steps,
        batch_size=qs.batch_size,
        eval_batch_size=64,
        learning_rate=qs.learning_rate,
        attention_learning_rate=qs.attention_learning_rate,
        warmup_steps=max(1, steps // 10),
        max_source_length=qs.max_source_length,
        eval_every=max(1, steps // 2),
        train_limit=qs.train_limit,
        eval_limit=qs.eval_limit,
        seed=qs.seed,
    )
    fields.update(extra)
    return TrainConfig(**fields)


def _source_is_current(library: PromptLibrary, name: str, config: TrainConfig) -> bool:
    if name not in library:
        return False
    prompt = library.get(name)
    recorded = (prompt.training or {}).get("config", {})
    keys = ("backbone", "max_steps", "learning_rate", "attempt", "seed", "train_limit", "max_source_length")
    return prompt.backbone == config.backbone and all(recorded.get(k) == config.to_dict()[k] for k in keys)


def _shipped(qs: QuickstartConfig) -> PromptLibrary | None:
    """The repository's library for this backbone, when it holds every source at the quickstart's length."""
    from attempt.prompts.shipped import shipped_library

    folder = shipped_library(qs.backbone) if qs.sources_from == "shipped" else None
    if folder is None:
        return None
    library = PromptLibrary(folder)
    usable = all(name in library and library.get(name).length == qs.prompt_length for name in qs.sources)
    return library if usable else None


def _source_library(qs: QuickstartConfig, progress: bool) -> PromptLibrary:
    """Step 1: the shipped source prompts, or prompts trained (or reused) under OUT/prompts."""
    from attempt.training.loop import train

    shipped = _shipped(qs)
    if shipped is not None:
        print(f"[quickstart] using the shipped source prompts {', '.join(qs.sources)} from {shipped.root}")
        return shipped
    out = Path(qs.out)
    library = PromptLibrary(out / "prompts")
    for task in qs.sources:
        config = _run_config(
            qs, "source", (task,), qs.source_steps, out / "runs" / f"source-{task}", library.root
        )
        if _source_is_current(library, task, config):
            print(f"[quickstart] reusing source prompt {task!r} from {library.root}")
            continue
        print(f"[quickstart] training source prompt {task!r} ({qs.source_steps} steps)")
        train(config, progress=progress, overwrite_prompt=True)  # an outdated prompt of this folder's own
    return library


def run_quickstart(qs: QuickstartConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Run the quickstart; returns the result table's rows and writes everything under `qs.out`.

    Returns:
        One row per target method: task, method, trainable_parameters, metric, value, wall_time_s.
    """
    from attempt.training.loop import train

    out = Path(qs.out)
    library = _source_library(qs, progress)
    rows: list[dict[str, Any]] = []
    for method, mode in (("ATTEMPT", "attempt"), ("prompt tuning", "prompt_tuning")):
        run_dir = out / "runs" / f"{mode}-{qs.target}"
        centred = {"centre_inputs": True} if qs.centre_inputs and mode == "attempt" else {}
        config = _run_config(qs, mode, (qs.target,), qs.target_steps, run_dir, library.root, source_prompts=qs.sources,
                             attempt={"prompt_length": qs.prompt_length, **centred})  # fmt: skip
        print(f"[quickstart] training {method} on {qs.target!r} ({qs.target_steps} steps)")
        start = time.perf_counter()
        result = train(config, progress=progress)
        wall = time.perf_counter() - start
        metrics = dict(result.test_metrics.get(qs.target, {}))
        if len(metrics) == 2:  # one metric and its "average": the same number twice
            metrics.pop("average", None)
        for name, value in metrics.items():
            rows.append(
                {
                    "task": qs.target,
                    "method": method,
                    "trainable_parameters": result.trainable_parameters,
                    "metric": name,
                    "value": round(float(value), 2),
                    "wall_time_s": round(wall, 1),
                }
            )

    heatmaps = _heatmaps(out, qs.target)
    table = format_table(rows)
    print("\n" + table)
    results, results_table = out / layout.RESULTS_FILE, out / layout.RESULTS_TABLE_FILE
    storage.write_json(results, {"config": dataclasses.asdict(qs), "rows": rows})
    storage.write_text(results_table, table + "\n")
    print(f"\n[quickstart] results: {results_table}  (JSON: {results})")
    print(f"[quickstart] source prompts: {library.root}  trained models: {out / 'runs'}")
    for heatmap in heatmaps:
        print(f"[quickstart] attention heatmap: {heatmap}")
    print("[quickstart] prompt tuning mixes no prompts, so it has no attention heatmap")
    return rows


def _heatmaps(out: Path, target: str) -> list[Path]:
    """The mean attention of the target's test examples, and each example's (`attempt plot` draws the same for
    any run)."""
    import json

    run = RunLayout(out / "runs" / f"attempt-{target}")
    if not run.attention.exists():
        return []
    from attempt.evaluation.plots import attention_heatmap, example_attention_heatmap

    attention = json.loads(run.attention.read_text())
    mean = attention_heatmap(
        attention, out / "attention_heatmap.png", title=f"ATTEMPT attention on {target} (test)"
    )
    each = example_attention_heatmap(run.predictions("test"), out / layout.EXAMPLES_PLOT_FILE,
                                     title=f"ATTEMPT attention per {target} test example")  # fmt: skip
    return [mean, each]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: task | method | trainable params | metric | value | wall time."""
    lines = [
        "| task | method | trainable params | metric | value | wall time (s) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} | {r['trainable_parameters']:,} | {r['metric']} | "
            f"{r['value']:.2f} | {r['wall_time_s']:.1f} |"
        )
    return "\n".join(lines)
