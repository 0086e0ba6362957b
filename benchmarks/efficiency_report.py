"""The report of benchmarks/efficiency.py: its targets, efficiency.md and the plot (measuring is efficiency.py).

The method names are defined here, so the report can be rebuilt from an efficiency.json alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import save_figure

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
CAUSAL = "HuggingFaceTB/SmolLM2-135M-Instruct"
METHODS = ("attempt", "prompt_tuning", "peft_prompt_tuning", "finetune", "lora")
PROMPT_METHODS = METHODS[:3]
# memory also with activation checkpointing: a prompt method must keep every layer's activations for the
# gradient to reach the input, so at long prompts activations, not optimizer state, set its peak
CHECKPOINTED = ("attempt+checkpointing", "finetune+checkpointing")
# timed too, at the first prompt length: issue 26's rule for TrainConfig.gradient_checkpointing's default
TIMED_METHODS = METHODS + CHECKPOINTED
CHECKPOINTING_RULE = (
    "ATTEMPT's default must reach <= 0.5x full fine-tuning's peak memory wherever that costs < 1.3x plain "
    "ATTEMPT's step time (issue 26): activation checkpointing is on by default where both hold"
)
MEMORY_TARGET, CHECKPOINTING_TIME_TARGET = 0.5, 1.3
# and with the frozen backbone held in bfloat16 (TrainConfig.backbone_dtype), the trained part in float32
HALF_BACKBONE = "attempt+bf16_backbone"
MEMORY_METHODS = METHODS + CHECKPOINTED + (HALF_BACKBONE,)
FAMILIES = ("encoder", "causal")  # the report's order of the backbones


def backbones(results: dict[str, Any]) -> list[str]:
    """The measured backbones, encoders first, in the order they ran: efficiency.json keeps its keys sorted,
    so a report rebuilt from it orders them here, not by the file."""
    families = {name: entry["family"] for name, entry in results["training"].items()}
    rank = {family: i for i, family in enumerate(FAMILIES)}
    return sorted(families, key=lambda name: rank.get(families[name], len(FAMILIES)))


def timings(results: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    """(``m=<m>``, {method: timing}) of one backbone, prompt lengths as measured and methods as `METHODS`."""
    entry, rank = results["training"][name], {method: i for i, method in enumerate(METHODS)}
    keys = [f"m={m}" for m in results["prompt_lengths"] if f"m={m}" in entry]
    return [
        (key, {m: entry[key][m] for m in sorted(entry[key], key=lambda m: rank.get(m, len(rank)))})
        for key in keys
    ]


def checkpointing_cost(results: dict[str, Any], name: str) -> dict[str, float | None]:
    """Issue 26's rule for one backbone: ATTEMPT with activation checkpointing against plain ATTEMPT (step
    time, first prompt length) and against full fine-tuning (peak memory); None where not measured."""
    timing = dict(timings(results, name)).get(f"m={results['prompt_lengths'][0]}", {})
    memory = results["memory"].get(name, {})
    plain, checkpointed = (timing.get(m, {}).get("step_s") for m in ("attempt", CHECKPOINTED[0]))
    finetune, checkpointed_ft = (timing.get(m, {}).get("step_s") for m in ("finetune", CHECKPOINTED[1]))
    peak, full = memory.get(CHECKPOINTED[0], {}).get("peak_mb"), memory.get("finetune", {}).get("peak_mb")
    return {
        "step_time": checkpointed / plain if plain and checkpointed else None,
        "finetune_step_time": checkpointed_ft / finetune if finetune and checkpointed_ft else None,
        "memory": peak / full if peak and full else None,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(name, value, threshold, op="<="):
        passed = None if value is None else (value <= threshold if op == "<=" else value >= threshold)
        out.append({"target": name, "value": value, "threshold": threshold, "op": op, "passed": passed})

    for name, entry in results["training"].items():
        for key, timing in entry.items():
            if not key.startswith("m="):
                continue
            pt = timing["prompt_tuning"]["step_s"]
            add(f"{name} {key}: ATTEMPT / prompt tuning step time", timing["attempt"]["step_s"] / pt, 1.03)
            add(
                f"{name} {key}: prompt tuning / PEFT prompt tuning step time",
                pt / timing["peft_prompt_tuning"]["step_s"],
                1.0,
            )
    for name in backbones(results):
        cost = checkpointing_cost(results, name)
        if cost["step_time"] is not None:
            add(
                f"{name}: ATTEMPT with / without activation checkpointing step time",
                cost["step_time"],
                CHECKPOINTING_TIME_TARGET,
            )
    for name, memory in results["memory"].items():
        if "tiny" in name or name == CAUSAL:
            a, f = memory["attempt"].get("peak_mb"), memory["finetune"].get("peak_mb")
            add(f"{name}: ATTEMPT / full fine-tuning peak memory", None if a is None or not f else a / f, 0.5)
            a, f = (memory.get(k, {}).get("peak_mb") for k in CHECKPOINTED)
            add(
                f"{name}: same, both with activation checkpointing",
                None if a is None or not f else a / f,
                0.5,
            )
            a, f = memory.get(HALF_BACKBONE, {}).get("peak_mb"), memory["finetune"].get("peak_mb")
            add(
                f"{name}: same, ATTEMPT's frozen backbone in bfloat16 (fine-tuning in float32)",
                None if a is None or not f else a / f,
                0.5,
            )
    for task in ("rte", "mnli"):
        if task in results["padding"]:
            p = results["padding"][task]
            add(f"dynamic padding speed-up ({task})", p["speedup"], 2.0, ">=")
            add(f"padded vs unpadded max |logit diff| ({task})", p["max_abs_logit_diff"], 1e-4)
    add(
        "parameter counts match the paper (232K / 96K per task)",
        float(results["param_counts"]["matches_paper"]),
        1.0,
        ">=",
    )
    return out


def checkpointing_lines(results: dict[str, Any], name: str) -> list[str]:
    """The report's sentence on issue 26's rule for one backbone (none when checkpointing was not timed)."""
    cost = checkpointing_cost(results, name)
    if cost["step_time"] is None:
        return []
    memory = "not measured" if cost["memory"] is None else f"{cost['memory']:.2f}x full fine-tuning"
    finetune = cost["finetune_step_time"]
    verdict = (
        "n/a (memory not measured)"
        if cost["memory"] is None
        else "on"
        if cost["memory"] <= MEMORY_TARGET and cost["step_time"] < CHECKPOINTING_TIME_TARGET
        else "off"
    )
    from attempt.config import CHECKPOINTED_FAMILIES

    family = results["training"][name]["family"]
    default = "on" if family in CHECKPOINTED_FAMILIES else "off"
    return [
        f"Activation checkpointing: ATTEMPT's step {cost['step_time']:.2f}x plain ATTEMPT's"
        + ("" if finetune is None else f" (full fine-tuning's {finetune:.2f}x its own)")
        + f", peak memory {memory}. Rule: {CHECKPOINTING_RULE}. This run says: {verdict}; the default "
        f"for {family} backbones (attempt.config.CHECKPOINTED_FAMILIES) is {default}."
    ]


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    from attempt.utils import storage

    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_results(results, out_dir)
    results["plots"] = [p.name for p in plots]
    storage.write_json(out_dir / "efficiency.json", results)
    lines = [
        f"# Efficiency ({results['mode']}, {results['device']}, {results['torch_threads']} threads)",
        "",
        "All numbers come from one run; methods were timed interleaved (medians), so compare the ratios.",
        "",
    ]
    for name in backbones(results):
        entry = results["training"][name]
        lines += [
            f"## Training step: {name} ({entry['family']}, batch {entry['batch']}, input length {entry['length']})",
            "",
            "| m | method | median step (s) | × prompt tuning | min step (s) | min × prompt tuning | trainable params |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, timing in timings(results, name):
            pt, pt_min = timing["prompt_tuning"]["step_s"], timing["prompt_tuning"]["min_s"]
            for method, t in timing.items():
                lines.append(
                    f"| {key[2:]} | {method} | {t['step_s']:.3f} | {t['step_s'] / pt:.3f} | {t['min_s']:.3f} | "
                    f"{t['min_s'] / pt_min:.3f} | {t['trainable_params']:,} |"
                )
        lines += ["", *checkpointing_lines(results, name), ""]
    for name in (n for n in backbones(results) if n in results["memory"]):
        memory = results["memory"][name]
        lines += [
            f"## Peak training memory: {name} (m = {memory['m']}, batch {memory['batch']})",
            "",
            "| method | peak (MiB) | × full fine-tuning | how |",
            "|---|---|---|---|",
        ]
        ft = memory["finetune"].get("peak_mb") or float("nan")
        for method in (k for k in MEMORY_METHODS if k in memory):
            r = memory[method]
            if "peak_mb" in r:
                lines.append(f"| {method} | {r['peak_mb']:.0f} | {r['peak_mb'] / ft:.2f} | {r['how']} |")
            else:
                lines.append(f"| {method} | error: {r.get('error')} | | |")
        lines.append("")
    if results["padding"]:
        p = results["padding"]
        lines += [
            f"## Dynamic padding vs padding to 256 ({p['backbone']}, ATTEMPT m = {p['m']}, batch {p['batch']})",
            "",
            "| task | examples | mean tokens | epoch padded (s) | epoch dynamic (s) | speed-up | max logit diff |",
            "|---|---|---|---|---|---|---|",
        ]
        for task in ("rte", "mnli"):
            if task in p:
                t = p[task]
                lines.append(
                    f"| {task} | {t['examples']} | {t['mean_tokens']:.1f} | {t['epoch_s']['padded_256']:.2f} | "
                    f"{t['epoch_s']['dynamic_grouped']:.2f} | {t['speedup']:.2f}× | {t['max_abs_logit_diff']:.1e} |"
                )
        lines.append("")
    if results["evaluation"]:
        e = results["evaluation"]
        lines += [
            f"## Evaluation throughput ({e['backbone']}, ATTEMPT m = {e['m']}, {e['examples']} rte examples)",
            "",
            f"rank classification {e['examples_per_s']['rank_classification']:.2f} ex/s (input read once), "
            f"{e['examples_per_s']['rank_full_sequences']:.2f} ex/s (one full sequence per label), "
            f"generation {e['examples_per_s']['generation']:.2f} ex/s. Time / generation time: rank "
            f"{e['rank_over_generation_time']:.2f}, rank by full sequences "
            f"{e['full_sequence_rank_over_generation_time']:.2f}; both rankings agree: {e['same_predictions']}.",
            "",
        ]
    if results.get("eval_batching"):
        b = results["eval_batching"]
        lines += [
            f"## Evaluation batching ({b['backbone']}, ATTEMPT m = {b['m']}, {b['examples']} rte validation rows, "
            f"batches of {b['batch']})",
            "",
            f"rows batched longest first {b['seconds']['length_sorted']:.2f} s, in file order "
            f"{b['seconds']['file_order']:.2f} s: {b['speedup']:.2f}× faster; same predictions: "
            f"{b['same_predictions']}.",
            "",
        ]
    pc = results["param_counts"]
    lines += [
        "## Trainable parameters (T5-base-shaped config, d = 768, m = 100)",
        "",
        f"per task, one task: {pc['per_task_single']:,} (paper arithmetic {pc['expected']['per_task_single']:,}); "
        f"per task, attention shared by {pc['shared_tasks']} tasks: {pc['per_task_shared']:,.0f} "
        f"(paper {pc['expected']['per_task_shared']:,.0f}).",
        "",
        "## Targets",
        "",
        "| target | value | threshold | passed |",
        "|---|---|---|---|",
    ]
    for t in results["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.4g}"
        lines.append(f"| {t['target']} | {value} | {t['op']} {t['threshold']} | {t['passed']} |")
    lines += ["", "Plots: " + ", ".join(results["plots"]), ""]
    storage.write_text(out_dir / "efficiency.md", "\n".join(lines))


def plot_results(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = backbones(results)
    fig, axes = plt.subplots(1, 2 * len(names), figsize=(5.5 * 2 * len(names), 4), squeeze=False)
    for i, name in enumerate(names):
        timing = dict(timings(results, name))[f"m={results['prompt_lengths'][0]}"]
        ax = axes[0, 2 * i]
        ax.bar(list(timing), [t["step_s"] for t in timing.values()], color="tab:blue")
        ax.set_title(f"{name.split('/')[-1]}: step time (m={results['prompt_lengths'][0]})", fontsize=9)
        ax.set_ylabel("seconds")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        memory = results["memory"].get(name, {})
        ax = axes[0, 2 * i + 1]
        methods = [k for k in MEMORY_METHODS if "peak_mb" in memory.get(k, {})]
        ax.bar(methods, [memory[k]["peak_mb"] for k in methods], color="tab:orange")
        ax.set_title(f"{name.split('/')[-1]}: peak training memory", fontsize=9)
        ax.set_ylabel("MiB")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    fig.tight_layout()
    path = out_dir / "efficiency.png"
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return [path]
