"""Figures: the attention heatmap of the paper (target tasks × source prompts), each example's attention,
training curves, and runs side by side.

matplotlib is imported lazily (the `plot` extra) with the non-interactive Agg backend; every figure is
written atomically as a PNG. Each function returns the path; pass `return_figure=True` to also get the
(closed) matplotlib Figure, e.g. to inspect its axes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attempt.runs import metrics_log
from attempt.runs.layout import METRICS_FILE, RESULTS_FILE, RunLayout, predictions_file
from attempt.runs.metrics_log import flatten_record
from attempt.utils import reading, storage

# the "target" column is the weight of the task's own prompt among the attended ones; with target_residual (the
# default) P_tgt is added once more outside the mixture, which a reader of a 0.00 cell would not guess
RESIDUAL_NOTE = (
    "target: the task's own prompt P_tgt, also added outside the mixture (P_X = P_tgt + Σ_j a_j P_j), "
    "so a weight of 0.00 does not remove it."
)


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'attempt-tuning[plot]'.") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Figures are written as PNG: give a path ending in .png, got {path}.")
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def attention_matrix(
    attention: Mapping[str, Mapping[str, float]],
) -> tuple[list[str], list[str], list[list[float]]]:
    """Rows (target tasks), columns (source prompts in first-seen order, "target" last) and the weights;
    a prompt a task did not attend to gets NaN (an empty cell)."""
    if not attention or not any(attention.values()):
        raise ValueError("attention is empty: pass {target_task: {prompt_name: weight, ...}, ...}.")
    columns: list[str] = []
    for weights in attention.values():
        columns.extend(name for name in weights if name not in columns and name != "target")
    if any("target" in weights for weights in attention.values()):
        columns.append("target")
    rows = list(attention)
    values = [[float(attention[r].get(c, math.nan)) for c in columns] for r in rows]
    return rows, columns, values


def _note(fig, columns: list[str], target_residual: bool) -> tuple[float, float, float, float]:
    """Write `RESIDUAL_NOTE` under the figure when it has a "target" column and the target is a residual; returns
    the rectangle `tight_layout` may fill above it."""
    if "target" not in columns or not target_residual:
        return (0.0, 0.0, 1.0, 1.0)
    width, height = fig.get_size_inches()
    lines = textwrap.wrap(RESIDUAL_NOTE, width=max(30, int(width * 72 / 7 / 0.55)))  # 7-point characters
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, ha="left", va="bottom", color="0.3")
    return (0.0, min(0.5, (len(lines) * 9 + 6) / (height * 72)), 1.0, 1.0)


def attention_heatmap(
    attention: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
    return_figure: bool = False,
    target_residual: bool = True,
):
    """Plot mean attention weights like the paper's figure: one row per target task, one column per source
    prompt (plus "target", the task's own prompt), each cell annotated with its weight, and a colour bar.

    Args:
        attention: {target_task: {prompt_name: weight}}, e.g. averaged `AttemptOutput.attention_weights`.
        path: where to write the PNG.
        title: figure title.
        dpi: resolution; the figure is about (1.1·columns + 2.5) × (0.6·rows + 1.5) inches.
        return_figure: also return the matplotlib Figure.
        target_residual: the model adds P_tgt outside the mixture too (AttemptConfig.target_residual), which a
            note under the figure says (`RESIDUAL_NOTE`) when there is a "target" column.

    Returns:
        The path (or (path, figure) with return_figure=True).

    Raises:
        ValueError: when `attention` is empty or the path is not a .png.
    """
    rows, columns, values = attention_matrix(attention)
    plt = _pyplot()
    import numpy as np

    data = np.array(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.6 * len(rows) + 1.5))
    try:
        finite = data[np.isfinite(data)]
        vmax = max(float(finite.max()) if finite.size else 1.0, 1e-9)
        image = ax.imshow(np.ma.masked_invalid(data), cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), labels=rows)
        ax.set_xlabel("prompt")
        ax.set_ylabel("target task")
        for i in range(len(rows)):
            for j in range(len(columns)):
                if np.isfinite(data[i, j]):
                    dark = data[i, j] > 0.6 * vmax
                    ax.text(
                        j,
                        i,
                        f"{data[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if dark else "black",
                    )
        fig.colorbar(image, ax=ax, label="attention weight")
        if title:
            ax.set_title(title)
        fig.tight_layout(rect=_note(fig, columns, target_residual))
        out = _save(fig, path, dpi)
    finally:
        plt.close(fig)
    return (out, fig) if return_figure else out


def read_records(records: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records from a JSON-lines file, read as `attempt.runs.metrics_log.read_records` reads a run's log (blank
    lines skipped, a torn last line dropped with a warning), or from an iterable of dicts.

    Raises:
        FileNotFoundError: no such file. ValueError: a line before the last is not a JSON object.
    """
    if isinstance(records, (str, Path)):
        path = Path(records)
        if not path.is_file():
            raise FileNotFoundError(f"No metrics file at {path}.")
        return [record for _, record in metrics_log.read_records(path)]
    return [dict(r) for r in records]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def curve_series(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """Split records into training series (records with "loss", not validation: every numeric key but
    "step"/"epoch" against step) and validation series (records with "average" or split="validation":
    "average" and the per-task metrics). Each series is a list of (step, value)."""
    train: dict[str, list] = {}
    valid: dict[str, list] = {}
    for index, record in enumerate(records):
        # metrics.jsonl nests values: {"metrics": {"rte": {"accuracy": 71}, "average": 71}} → rte/accuracy, average
        record = {k.removeprefix("metrics/"): v for k, v in flatten_record(record).items()}
        step = _number(record.get("step"))
        step = float(index) if step is None else step
        split = record.get("split")
        if split is not None and split not in ("validation", "eval", "dev"):
            continue  # the final test evaluation is no point on the validation curve
        is_eval = split is not None or "average" in record
        if not is_eval and "loss" not in record:
            continue
        target = valid if is_eval else train
        for key, value in record.items():
            number = _number(value)
            if key in ("step", "epoch", "best_step") or number is None:
                continue
            target.setdefault(key, []).append((step, number))
    return train, valid


def _integer_ticks():
    """Ticks on whole steps only (a 3-step run would otherwise show step 1.25)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _merged(series: Mapping[str, list]) -> list[tuple[str, list]]:
    """Series with the same points drawn once, labelled "a = b" (a line under an identical one is invisible)."""
    merged: list[tuple[str, list]] = []
    for name, points in series.items():
        same = next((i for i, (_, drawn) in enumerate(merged) if drawn == points), None)
        if same is None:
            merged.append((name, points))
        else:
            merged[same] = (f"{merged[same][0]} = {name}", points)
    return merged


def _line(ax, points: list, label: str | None = None, **style: Any) -> None:
    """A series as a line, with markers when it has few points (one point alone is no line)."""
    xs, ys = zip(*points, strict=True)
    few = len(points) <= 30
    ax.plot(xs, ys, label=label, marker="o" if few else None, ms=style.pop("ms", 3 if few else 0), **style)


def _draw_validation(ax, valid: Mapping[str, list]) -> None:
    """The validation panel: "average" as a ring drawn over the per-task metrics (a task with the same value
    stays visible inside it), per-task metrics with the same values as one line ("rte/accuracy = rte/average");
    with one evaluation each value is written beside its point."""
    series = {"average": valid["average"]} if "average" in valid else {}
    series.update(_merged({k: v for k, v in valid.items() if k != "average"}))
    for name, points in series.items():
        ring = name == "average"
        _line(ax, points, name, lw=2 if ring else 0.8, ms=9 if ring else 4, mfc="none" if ring else None,
              mew=2 if ring else 1, zorder=3 if ring else 2)  # fmt: skip
    if all(len(points) == 1 for points in series.values()):
        for label, points in _merged(series):
            ((x, y),) = points
            # left of the point (the one evaluation is usually the last step), outside the layout's sums
            text = ax.annotate(f"{label}: {y:.2f}", (x, y), xytext=(-10, 0), textcoords="offset points",
                               fontsize=7, ha="right", va="center")  # fmt: skip
            text.set_in_layout(False)
    if len(series) > 1:
        ax.legend(fontsize=7, loc="best")


def training_curves(
    records: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
    return_figure: bool = False,
):
    """Plot the training loss, the learning rates (one panel, "lr": a line per distinct schedule, groups with
    the same rates share one, e.g. "prompt = attention"), other numeric training values on their own axes, and
    the validation average metric (a ring, with the per-task metrics thinner) against the step.

    Args:
        records: a metrics.jsonl path or a list of dicts such as {"step": 10, "loss": 0.7} and
            {"step": 100, "split": "validation", "average": 71.2, "rte/accuracy": 71.2}.
        path: where to write the PNG.

    Returns:
        The path (or (path, figure) with return_figure=True).

    Raises:
        ValueError: when there is no training loss and no validation record to plot.
    """
    train, valid = curve_series(read_records(records))
    if not train and not valid:
        raise ValueError(
            "Nothing to plot: no training records with 'loss' and no validation records with 'average'."
        )
    plt = _pyplot()
    rates = {k.removeprefix("lr/"): v for k, v in train.items() if k == "lr" or k.startswith("lr/")}
    panels = [("loss", "training loss")] if "loss" in train else []
    panels += [("lr", "lr")] if rates else []
    panels += [(k, k) for k in train if k != "loss" and k != "lr" and not k.startswith("lr/")]
    if valid:
        panels.append(("validation", "validation metric"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    try:
        for ax, (key, label) in zip(axes[:, 0], panels, strict=True):
            if key == "validation":
                _draw_validation(ax, valid)
            elif key == "lr":
                for name, points in _merged(rates):
                    _line(ax, points, name, lw=1)
                if len(rates) > 1:
                    ax.legend(fontsize=7, loc="best")
            else:
                _line(ax, train[key], lw=1)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        axes[-1, 0].xaxis.set_major_locator(_integer_ticks())
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        out = _save(fig, path, dpi)
    finally:
        plt.close(fig)
    return (out, fig) if return_figure else out


def example_attention_heatmap(
    records: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path,
    title: str | None = None,
    max_rows: int = 40,
    dpi: int = 100,
    target_residual: bool = True,
) -> Path:
    """Plot the attention of single examples: one row per example (grouped by gold label), one column per
    prompt. Where `attention_heatmap` shows a task's mean, this shows whether the weights depend on the input.

    Args:
        records: the test_predictions.jsonl of an ATTEMPT run (or its records), each with ``attention_weights``.
        path: where to write the PNG.
        title: figure title.
        max_rows: at most this many examples (the first ones by gold label); the axis says how many of how many.
        target_residual: write `RESIDUAL_NOTE` under the figure (as `attention_heatmap`).

    Raises:
        ValueError: when no record has attention weights.
    """
    rows = [r for r in read_records(records) if r.get("attention_weights")]
    if not rows:
        raise ValueError(
            f"No record has attention_weights: pass the {predictions_file('test')} of an ATTEMPT run."
        )
    total = len(rows)
    rows.sort(key=lambda r: (str(r.get("task")), str(r.get("reference"))))
    rows = rows[:max_rows]
    columns = list(rows[0]["attention_weights"])
    several = len({r.get("task") for r in rows}) > 1  # ATTEMPT-m: say which task each row is
    plt = _pyplot()
    import numpy as np

    data = np.array([[r["attention_weights"].get(c, math.nan) for c in columns] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(0.9 * len(columns) + 3.0, 0.22 * len(rows) + 1.6))
    try:
        image = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=max(float(np.nanmax(data)), 1e-9), aspect="auto")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
        task = [f"{r.get('task')} " if several else "" for r in rows]
        labels = [f"{task[i]}{r.get('index', i)} ({r.get('reference')})" for i, r in enumerate(rows)]
        ax.set_yticks(range(len(rows)), labels=labels, fontsize=6)
        ax.set_xlabel("prompt")
        shown = f", {len(rows)} of {total}" if total > len(rows) else ""
        ax.set_ylabel(f"test example (gold label){shown}")
        fig.colorbar(image, ax=ax, label="attention weight")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout(rect=_note(fig, columns, target_residual))
        return _save(fig, path, dpi)
    finally:
        plt.close(fig)


def _run_labels(runs: Sequence[Path]) -> list[str]:
    """Each run's folder name, or its last two parts where two runs share a name."""
    names = [run.name for run in runs]
    return [f"{run.parent.name}/{run.name}" if names.count(run.name) > 1 else run.name for run in runs]


def _test_metrics(run: RunLayout) -> dict[str, float]:
    """{"task/metric" or "average": value} of a finished run's results.json; {} for a run that has none yet."""
    if not run.results.is_file():
        return {}
    results = reading.read_json(run.results, "Train the run again to rewrite it, or leave it out.")
    flat = flatten_record(results.get("test") or {}) if isinstance(results, dict) else {}
    return {k: v for k, v in flat.items() if _number(v) is not None and not k.endswith("/average")}


def compare_runs(
    runs: Sequence[str | Path],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
    return_figure: bool = False,
):
    """Put runs side by side: their training losses and validation averages against the step (one line per
    run), and their test metrics (results.json) as bars.

    Args:
        runs: run folders (a training run's output_dir each); a run without metrics.jsonl or results.json yet
            is drawn where it has data.
        path: where to write the PNG.

    Returns:
        The path (or (path, figure) with return_figure=True).

    Raises:
        ValueError: fewer than two runs, or none of them has anything to draw.
    """
    layouts = [RunLayout(run) for run in runs]
    if len(layouts) < 2:
        raise ValueError("compare_runs needs two runs or more; plot one run with training_curves.")
    labels = _run_labels([run.root for run in layouts])
    curves = [
        curve_series(read_records(run.metrics)) if run.metrics.is_file() else ({}, {}) for run in layouts
    ]
    tests = [_test_metrics(run) for run in layouts]
    if not any(train.get("loss") or valid.get("average") for train, valid in curves) and not any(tests):
        raise ValueError(
            f"Nothing to compare: none of {', '.join(labels)} has {METRICS_FILE} or {RESULTS_FILE}."
        )
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(8, 9))
    try:
        for i, (label, (train, valid)) in enumerate(zip(labels, curves, strict=True)):
            # runs with the same values must not hide one another: dashes differ, markers are nested rings
            style = {
                "ls": ("-", "--", "-.", ":")[i % 4],
                "mfc": "none",
                "ms": 3 + 2.5 * (len(labels) - 1 - i),
            }
            if train.get("loss"):
                _line(axes[0], train["loss"], label, lw=1, **style)
            if valid.get("average"):
                _line(axes[1], valid["average"], label, lw=1.5, **{**style, "ms": style["ms"] + 3})
        for ax, name in zip(axes[:2], ("training loss", "validation average"), strict=True):
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(_integer_ticks())
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            if ax.get_lines():
                ax.legend(fontsize=7, loc="best")
        _test_bars(axes[2], labels, tests)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        out = _save(fig, path, dpi)
    finally:
        plt.close(fig)
    return (out, fig) if return_figure else out


def _test_bars(ax, labels: list[str], tests: list[dict[str, float]]) -> None:
    """Grouped bars: one group per test metric, one bar per run, each with its value."""
    metrics = [m for m in dict.fromkeys(k for test in tests for k in test)]
    width = 0.8 / len(labels)
    for i, (label, test) in enumerate(zip(labels, tests, strict=True)):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j, m in enumerate(metrics) if m in test]
        bars = ax.bar(xs, [test[m] for m in metrics if m in test], width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(metrics)), labels=metrics, fontsize=8)
    ax.set_ylabel("test metric")
    if not metrics:
        ax.text(0.5, 0.5, f"no {RESULTS_FILE} yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7, loc="best")


__all__ = [
    "RESIDUAL_NOTE",
    "attention_heatmap",
    "attention_matrix",
    "compare_runs",
    "curve_series",
    "example_attention_heatmap",
    "read_records",
    "training_curves",
]
