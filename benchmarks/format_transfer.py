"""Does the input format block transfer? Each shipped source prompt, untrained, on related targets, with the
target's rows in the target's own format and in the source's format (issue 22, before the main table).

    python -m benchmarks.format_transfer                 # evaluation only: minutes on 2 CPU cores
    python -m benchmarks.format_transfer --report-only   # the report of the pairs measured so far

A held-out check found an sst2 source prompt (87% on SST-2) at chance on a related sentiment task whose rows read
"<task> text: ..." instead of "sst2 sentence: ...". If the source's format transfers clearly better, the main
table should render targets in it. Per pair (source → target): the target's test rows (the paper's protocol),
rendered (a) as the target's task reads them ("rte sentence1: ... sentence2: ...") and (b) with the source's task
prefix and field names, field by field ("mnli premise: ... hypothesis: ..."); labels, label words and metric
stay the target's. Each rendering is scored with no prompt (zero-shot) and with the source prompt as the task's
prompt, untrained. The two renderings of a pair are compared on the same rows: the difference in accuracy and an
exact McNemar test on the rows they answer differently (`mcnemar_p`). Each pair records its source prompt's
content hash (`source_hash`); a rerun measures again the pairs whose prompt the library has replaced since.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from attempt.utils import storage
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import DATA_DIR, REPO, results_dir, write_json

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"
PAIRS = (("mnli", "rte"), ("mnli", "cb"), ("qnli", "rte"), ("qqp", "mrpc"))
BENCHMARK = "format_transfer"


def in_source_format(target: str, source: str) -> str:
    """Register ``<target>_as_<source>``: the target's rows, labels and metrics, read with the source's task
    prefix and field names (the target's field i under the name of the source's field i); returns its name."""
    from attempt.tasks import get_task, register_task

    tgt, src = get_task(target), get_task(source)
    names = dict(zip(tgt.fields, src.fields, strict=True))

    def render(row: dict[str, Any]) -> list[tuple[str, str]]:
        return [(names[field], str(row[field])) for field in tgt.fields]

    name = f"{target}_as_{source}"
    register_task(dataclasses.replace(tgt, name=name, prefix=source, renderer=render))
    return name


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    """Exact two-sided McNemar p-value of two classifiers' correctness on the same rows (binomial on the rows
    exactly one of them gets right); 1.0 when they never disagree."""
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def score(model: Any, tokenizer: Any, task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's metrics and each row's correctness (rank classification, the rows in order)."""
    from attempt.evaluation.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.jsonl"
        metrics = evaluate(model, tokenizer, {task: rows}, batch_size=16, max_source_length=256,
                           predictions_path=path)  # fmt: skip
        records = [row for _, row in numbered_jsonl(path)]  # in the rows' order
    return {"metrics": metrics[task], "correct": [r["prediction"] == r["reference"] for r in records]}


def measure_pair(source: str, target: str, backbone: Any, tokenizer: Any, family: str, library: Any) -> dict:
    """Zero-shot and source-prompt scores of one pair in both renderings, and their paired comparison."""
    import torch

    from attempt.config import AttemptConfig, TrainConfig
    from attempt.data.splits import load_task_data
    from attempt.modeling import AttemptModel
    from attempt.modeling.zero_shot import ZeroShotModel
    from attempt.tasks import get_task

    rows = load_task_data(TrainConfig(tasks=(target,), data_dir=str(DATA_DIR), seed=42))[target]["test"]
    source_prompt = library.get(source)  # read once: its embeddings and its content hash
    prompt = source_prompt.embeddings
    result: dict[str, Any] = {"source": source, "target": target, "rows": len(rows),
                              "source_hash": source_prompt.hash}  # fmt: skip
    for rendering, task in (("target_format", target), ("source_format", in_source_format(target, source))):
        model = AttemptModel.from_backbone(
            backbone, [], AttemptConfig(method="prompt_tuning", tasks=[task], prompt_length=prompt.shape[0])
        )
        with torch.no_grad():
            model.mixture.target_prompts[0].copy_(prompt)
        result[rendering] = {
            "example": get_task(task).source_text(rows[0])[:120],
            "zero_shot": score(ZeroShotModel(backbone, family, [task]), tokenizer, task, rows),
            "source_prompt": score(model, tokenizer, task, rows),
        }
    a, b = (result[r]["source_prompt"]["correct"] for r in ("source_format", "target_format"))
    result["source_minus_target_accuracy"] = 100 * (sum(a) - sum(b)) / len(rows)
    result["mcnemar_p"] = mcnemar_p(a, b)
    return result


def report(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the measured pairs and what it says."""
    lines = [
        f"# Does the input format block transfer? ({BACKBONE}, untrained source prompts)", "",
        "Target test rows (the paper's protocol), rank classification; the headline metric's average. "
        "`python -m benchmarks.format_transfer`.", "",
        "| source → target | rows | zero-shot (target fmt) | prompt, target fmt | zero-shot (source fmt) | "
        "prompt, source fmt | source − target fmt (accuracy) | McNemar p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in results:
        t, s = r["target_format"], r["source_format"]
        lines.append(
            f"| {r['source']} → {r['target']} | {r['rows']} | {t['zero_shot']['metrics']['average']:.1f} | "
            f"{t['source_prompt']['metrics']['average']:.1f} | {s['zero_shot']['metrics']['average']:.1f} | "
            f"{s['source_prompt']['metrics']['average']:.1f} | {r['source_minus_target_accuracy']:+.1f} | "
            f"{r['mcnemar_p']:.3f} |"
        )
    hashes = ", ".join(
        f"{r['source']} → {r['target']} {r['source_hash'].split(':')[-1][:12]}" for r in results
    )
    lines += ["", f"Source prompts by content hash (`PromptLibrary` `hash`): {hashes}."]
    better = [r for r in results if r["source_minus_target_accuracy"] > 0 and r["mcnemar_p"] < 0.05]
    verdict = (f"The source's format transfers clearly better (p < 0.05) on {len(better)} of {len(results)} pairs"
               + (": " + ", ".join(f"{r['source']} → {r['target']}" for r in better) if better else "") + ".")  # fmt: skip
    return "\n".join([*lines, "", verdict, ""]) + "\n"


def to_measure(results: list[dict[str, Any]], library: Any) -> list[tuple[str, str]]:
    """The PAIRS whose source the library holds and that have no result measured with its prompt as it is now."""
    measured = {(r["source"], r["target"]): r.get("source_hash") for r in results}
    return [(source, target) for source, target in PAIRS
            if source in library.names() and measured.get((source, target)) != library.get(source).hash]  # fmt: skip


def replaced(results: list[dict[str, Any]], result: dict[str, Any]) -> list[dict[str, Any]]:
    """`results` with `result` in place of its pair's earlier one (or added), in PAIRS order."""
    kept = [r for r in results if (r["source"], r["target"]) != (result["source"], result["target"])]
    return sorted([*kept, result], key=lambda r: PAIRS.index((r["source"], r["target"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report-only", action="store_true", help="measure nothing; report the pairs so far")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=results_dir(BENCHMARK))
    parser.add_argument(
        "--library", type=Path, default=LIBRARY, help="the source prompts (default: the shipped)"
    )
    args = parser.parse_args(argv)
    path = args.out / "format_transfer.json"
    results = json.loads(path.read_text()) if path.is_file() else []
    if not args.report_only:
        import torch

        from attempt.backbones.resolve import load_backbone
        from attempt.prompts.library import PromptLibrary

        torch.set_num_threads(args.threads)
        library = PromptLibrary(args.library)
        backbone, tokenizer, family = load_backbone(BACKBONE)
        for source, target in to_measure(results, library):
            started = time.time()
            result = measure_pair(source, target, backbone, tokenizer, family, library)
            result["seconds"] = round(time.time() - started, 1)
            results = replaced(results, result)
            write_json(path, results)
    storage.write_text(args.out / "format_transfer.md", report(results))
    print(report(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
