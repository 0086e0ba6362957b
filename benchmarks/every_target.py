"""Does every task of the paper run end to end on a real backbone? Each task the library registers, a few ATTEMPT
steps on SmolLM2-135M-Instruct with the shipped source prompts, then its test rows scored with the paper's
metrics (issue 22: until this check the non-GLUE formats had run only on tiny random models).

    python -m benchmarks.every_target                        # about a minute a task on one thread
    python -m benchmarks.every_target --report-only          # the report of the tasks run so far
    python -m benchmarks.every_target --tiny --out /tmp/x    # the tests' tiny causal LM (seconds)

Per task, through the same `train` a user calls: the mirror's rows under the paper's split protocol, rendered
as the task reads them, STEPS steps of ATTEMPT (batch BATCH), then TEST_ROWS test rows scored the way the task
is scored (rank classification over its label words; generated text for regression and extractive QA). The
check is that every metric the task reports comes out, and in its range (`in_range`); a task whose data the
mirror cannot serve is reported with the error the library raised, as a user would see it. The scores say
nothing about how well a method does (a handful of steps on 16 rows): they are there to show them computed.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import traceback
from pathlib import Path
from typing import Any

from attempt.runs.layout import RunLayout
from attempt.utils import storage
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import REPO, add_run_arguments, data_overlay, results_dir, shown, slug, write_json

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"
SOURCES = ("mnli", "qnli", "sst2")
STEPS, BATCH, TEST_ROWS, MAX_SOURCE_LENGTH = 4, 4, 16, 256
BENCHMARK = "every_target"
# The range of each metric as the library reports it (points): correlations may be negative.
RANGES = {"matthews_correlation": (-100.0, 100.0), "pearson": (-100.0, 100.0), "spearman": (-100.0, 100.0)}


def in_range(metrics: dict[str, float]) -> bool:
    """Whether every metric is a number within its range (`RANGES`; [0, 100] for the others)."""
    return all(
        isinstance(v, (int, float)) and RANGES.get(k, (0.0, 100.0))[0] <= v <= RANGES.get(k, (0.0, 100.0))[1]
        for k, v in metrics.items()
    )


def answered(task: str, prediction: Any) -> bool:
    """Whether a test prediction is an answer its task can score: one of its label words (classification,
    multiple choice), a number (regression: `Task.parse_prediction` scores anything else as -1), or a
    non-empty text (extractive QA). An all-wrong or constant answer is scored; an unscorable one only counts
    against the model, so a metric in range can hide it: the report shows both."""
    from attempt.tasks import UNKNOWN_LABEL, get_task

    spec = get_task(task)
    if spec.kind == "regression":
        try:
            float(prediction)
        except (TypeError, ValueError):
            return False
        return True
    parsed = spec.parse_prediction(prediction)
    return parsed != UNKNOWN_LABEL if spec.is_classification else bool(str(parsed).strip())


def run_task(task: str, backbone: Any, tokenizer: Any, out: Path, data_dir: Path, tiny: bool, library: Path):
    """One task end to end: a record of what it trained, scored and printed, or of the error it raised."""
    from attempt.config import TrainConfig
    from attempt.tasks import get_task
    from attempt.training.loop import train

    config = TrainConfig(
        mode="attempt", backbone="tiny-llama" if tiny else BACKBONE, tasks=(task,), library=str(library),
        source_prompts=SOURCES, output_dir=str(out / "runs" / task), data_dir=str(data_dir), max_steps=STEPS,
        batch_size=BATCH, eval_batch_size=8, warmup_steps=0, eval_every=0, eval_limit=8, test_limit=TEST_ROWS,
        max_source_length=128 if tiny else MAX_SOURCE_LENGTH, max_target_length=16, seed=0, gradient_checkpointing=False,
        attempt={"prompt_length": 4 if tiny else 20},
    )  # fmt: skip
    spec = get_task(task)
    record: dict[str, Any] = {"task": task, "kind": spec.kind, "paper_metrics": list(spec.metrics)}
    started = time.time()
    try:
        result = train(config, model=copy.deepcopy(backbone), tokenizer=tokenizer, progress=False)
    except Exception as error:  # noqa: BLE001  (the record says what a user would have seen)
        message = (str(error).splitlines() or [""])[0].replace(str(data_dir), "<data>")  # no machine's paths
        record.update(
            error=f"{type(error).__name__}: {message}",
            where=traceback.extract_tb(error.__traceback__)[-1].name,
        )
        return {**record, "seconds": round(time.time() - started, 1)}
    metrics = {k: v for k, v in result.test_metrics[task].items() if k != "average"}
    examples = [row for _, row in numbered_jsonl(RunLayout(config.output_dir).predictions())]
    first = examples[0]
    record.update(
        steps=result.steps, test_rows=len(examples), test_metrics=metrics, in_range=in_range(metrics),
        answered=sum(answered(task, e["prediction"]) for e in examples),
        all_paper_metrics=set(metrics) == set(spec.metrics), example={
            "source": first["source"][:300], "prediction": first["prediction"], "reference": first["reference"]},
        seconds=round(time.time() - started, 1),
    )  # fmt: skip
    return record


def report(records: list[dict[str, Any]], backbone: str, command: str) -> str:
    """The Markdown table: per task, what came out (or the error), and one test example as printed."""
    ran = [r for r in records if "error" not in r]
    good = [r for r in ran if r["in_range"] and r["all_paper_metrics"]]
    lines = [
        f"# Every task end to end: {backbone}", "",
        f"`{command}`. Per task: {STEPS} ATTEMPT steps of {BATCH} examples with the shipped source prompts "
        f"({', '.join(SOURCES)}), then up to {TEST_ROWS} test rows (the paper's split protocol) scored with the "
        "task's metrics. The scores show the metrics computed, not how well ATTEMPT does.", "",
        f"{len(good)} of {len(records)} tasks ran and gave every metric of the paper in its range; "
        f"{len(records) - len(ran)} raised an error (below).", "",
        "| task | kind | test rows | scorable answers | metrics (test) | all the paper's metrics, in range | seconds |",
        "|---|---|---:|---:|---|---|---:|",
    ]  # fmt: skip
    for r in ran:
        metrics = ", ".join(f"{k} {v:.1f}" for k, v in r["test_metrics"].items())
        ok = "yes" if r["in_range"] and r["all_paper_metrics"] else "NO"
        lines.append(f"| {r['task']} | {r['kind']} | {r['test_rows']} | {r['answered']} | {metrics} | {ok} | "
                     f"{r['seconds']:.0f} |")  # fmt: skip
    unscorable = [r["task"] for r in ran if r["answered"] < r["test_rows"]]
    if unscorable:
        lines += ["", f"Not every answer could be scored on {', '.join(unscorable)} (`answered`: a label word, a "
                  f"number, a non-empty span): after {STEPS} steps the model has not learned the answer's form there; "
                  "such answers count as wrong."]  # fmt: skip
    failed = [r for r in records if "error" in r]
    if failed:
        lines += ["", "Tasks that could not run (the error as the library raised it; `<data>` is the benchmark's data "
                  "folder, the mirror with its stand-ins; the mirror's MANIFEST.md says what it holds):", ""]  # fmt: skip
        lines += [f"- {r['task']}: {r['error']}" for r in failed]
    lines += [
        "",
        "The first test row of each task, as rendered, with what the model answered and the reference:",
        "",
    ]
    for r in ran:
        e = r["example"]
        lines.append(
            f"- **{r['task']}**: `{_one_line(e['source'])}` → {e['prediction']!r} (reference {e['reference']!r})"
        )
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def tiny_library(folder: Path) -> Path:
    """Random source prompts named as SOURCES for the tiny causal LM (hidden size 32)."""
    import torch

    from attempt.prompts.library import PromptLibrary, SourcePrompt

    library = PromptLibrary(folder)
    for i, name in enumerate(SOURCES):
        if name not in library:
            torch.manual_seed(i)
            library.add(SourcePrompt(name, torch.randn(4, 32) * 0.5, task=name, backbone="tiny"))
    return folder


def main(argv: list[str] | None = None) -> int:
    from attempt.tasks import list_tasks

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every registered task")
    parser.add_argument("--report-only", action="store_true", help="run nothing; report the tasks run so far")
    add_run_arguments(parser, BENCHMARK)
    args = parser.parse_args(argv)
    name = "tiny-llama" if args.tiny else slug(BACKBONE)
    path = args.out / f"{BENCHMARK}-{name}.json"
    records = json.loads(path.read_text()) if path.is_file() else []
    done = {r["task"] for r in records}
    if not args.report_only:
        import torch

        from attempt.backbones.resolve import load_backbone
        from attempt.testing import build_backbone, build_tokenizer

        torch.set_num_threads(args.threads)
        loaded = (
            (build_backbone("causal"), build_tokenizer("causal"))
            if args.tiny
            else load_backbone(BACKBONE)[:2]
        )
        library = tiny_library(args.out / "runs" / "library") if args.tiny else LIBRARY
        data_dir = data_overlay(args.data_dir, args.out / "runs" / "data", held_out=True)
        for task in args.tasks or list_tasks():
            if task not in done:
                records.append(run_task(task, *loaded, args.out, data_dir, args.tiny, library))
                write_json(path, records)
                print(
                    json.dumps({k: records[-1].get(k) for k in ("task", "test_metrics", "error", "seconds")}),
                    flush=True,
                )
    command = "python -m benchmarks.every_target" + (" --tiny" if args.tiny else "")
    if args.out.resolve() != results_dir(BENCHMARK).resolve():
        command += f" --out {shown(args.out)}"
    storage.write_text(
        path.with_suffix(".md"), report(records, "tiny-llama" if args.tiny else BACKBONE, command)
    )
    print("report:", shown(path.with_suffix(".md")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
