"""The commands that read a finished training run: `attempt evaluate`, `attempt predict` and `attempt plot`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from attempt.backbones.resolve import DEVICE_MAPS
from attempt.cli.options import UsageError, add_labels_argument, column_options, label_options, task_and_value
from attempt.cli.tables import metrics_table
from attempt.config import TrainConfig
from attempt.runs import layout
from attempt.runs.layout import RunLayout


def _run_dir(path: str) -> Path:
    from attempt.runs.hub import run_folder

    run_dir = run_folder(path)  # a run pushed to the Hub (hf://owner/name): downloaded as a run folder
    if not run_dir.is_dir():
        raise UsageError(f"No such run directory: {run_dir}")
    return run_dir


def _add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output_dir")
    parser.add_argument(
        "--backbone",
        help="load the backbone from here instead of the one recorded in the run (moved folders)",
    )
    parser.add_argument(
        "--library", help="take the source prompts from this library (default: the copies in "
        f"{RunLayout('RUN_DIR').best_sources}, else the library the run recorded)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, help="examples per batch (default: the run's eval_batch_size)"
    )
    parser.add_argument(
        "--method",
        choices=("rank", "generate"),
        help="rank label verbalizers or generate (default: the run's)",
    )
    add_device_map_arguments(parser)


def add_device_map_arguments(parser: argparse.ArgumentParser) -> None:
    """--device-map, --max-memory, --offload-folder: a backbone larger than one device (evaluate, predict,
    serve), placed by Accelerate's big-model loading (`attempt.backbones.resolve.load_backbone`)."""
    parser.add_argument(
        "--device-map", choices=DEVICE_MAPS, help="spread a backbone larger than one device over the GPUs, the "
        "CPU and --offload-folder, layer by layer (default: the whole backbone on one device)",
    )  # fmt: skip
    parser.add_argument(
        "--max-memory", nargs="+", metavar="DEVICE=SIZE",
        help="with --device-map: the most each device may hold, e.g. 0=20GiB 1=20GiB cpu=60GiB",
    )  # fmt: skip
    parser.add_argument(
        "--offload-folder", metavar="DIR", help="with --device-map: where weights that fit nowhere go"
    )


def device_map_options(args: argparse.Namespace) -> dict[str, Any]:
    """`load_backbone`'s placement keywords from those options ({} without --device-map)."""
    from attempt.backbones.resolve import parse_max_memory

    if args.device_map is None:
        if args.max_memory or args.offload_folder:
            raise UsageError("--max-memory and --offload-folder place the backbone: add --device-map auto.")
        return {}
    try:
        memory = parse_max_memory(args.max_memory) if args.max_memory else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    return {"device_map": args.device_map, "max_memory": memory, "offload_folder": args.offload_folder}


def _load(args: argparse.Namespace, config: TrainConfig | None = None) -> tuple[Any, Any, TrainConfig]:
    from attempt.runs.build import load_run, read_run_config

    backbone = tokenizer = None
    placement = device_map_options(args)
    run_dir = _run_dir(args.run_dir)
    if args.backbone is not None or placement:
        from attempt.backbones.resolve import load_backbone

        config = config or read_run_config(run_dir)
        name, dtype = args.backbone or config.backbone, config.backbone_dtype if placement else None
        backbone, tokenizer, _ = load_backbone(name, dtype=dtype, **placement)  # placed as it was trained
    return load_run(run_dir, backbone=backbone, tokenizer=tokenizer, library=args.library, config=config)


# ----------------------------------------------------------------------------------------- evaluation


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt evaluate`."""
    _add_load_arguments(parser)
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="which split of the paper's protocol to score (default: test)",
    )
    parser.add_argument(
        "--data-dir", help="local benchmark mirror (default: the run's data_dir, $ATTEMPT_DATA_DIR)"
    )
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="score only these of the run's tasks")
    parser.add_argument(
        "--limit", type=int, help="score at most N examples per task (default: the run's eval_limit)"
    )
    parser.add_argument("--out", metavar="DIR", help="write metrics and predictions here instead of RUN_DIR")
    parser.add_argument(
        "--file",
        action="append",
        metavar="[TASK=]FILE",
        default=[],
        help="score your labelled CSV/TSV/JSONL file instead of a split, for its task only (TASK= needed "
        f"when the run has several tasks); writes {layout.eval_files('file')[0]}. Repeatable",
    )
    parser.add_argument(
        "--columns",
        action="append",
        metavar="[TASK:]COLUMN=FIELD",
        default=[],
        help="with --file: your file's COLUMN holds the task's FIELD (or its label); repeatable",
    )
    add_labels_argument(parser, "with --file: your file's label VALUE means the task's LABEL (the run's own "
                        "--labels apply too), e.g. --labels entails=entailment; TASK: with several tasks")  # fmt: skip


def _task_rows(args: argparse.Namespace, config: Any, tasks: list[str]) -> dict[str, list[dict]]:
    """The rows `attempt evaluate` scores: with --file, your files' (for their tasks only); else the split of
    the paper's protocol, the very rows training used (same seed), with this command's overrides. A task whose
    split cannot be read (a run moved without its data) is left out with a note pointing to --file; none at all
    is an error that does."""
    from attempt.data.splits import evaluation_rows

    if args.file:
        return _file_rows(args, config, tasks)
    for option in ("columns", "labels"):
        if getattr(args, option):
            raise UsageError(f"--{option} maps the {option} of a --file; give the file too.")
    data_config = dataclasses.replace(
        config,
        data_dir=args.data_dir or config.data_dir,
        eval_limit=args.limit if args.limit is not None else config.eval_limit,
        test_limit=args.limit if args.limit is not None else config.test_limit,
    )
    rows, unread = {}, {}
    for task in tasks:
        try:
            rows[task] = evaluation_rows(data_config, task, args.split)
        except (FileNotFoundError, ImportError) as error:  # the data are not here: score what is
            unread[task] = str(error)
    if unread:
        files = " ".join(f"--file {task}=FILE" if len(tasks) > 1 else "--file FILE" for task in unread)
        notes = "; ".join(f"{task}: {reason}" for task, reason in unread.items())
        fix = (f"Score a labelled file of yours instead: attempt evaluate {args.run_dir} {files} (--columns "
               "COLUMN=FIELD for other column names), or point --data-dir at the data.")  # fmt: skip
        if not rows:
            raise UsageError(f"Nothing to score on the {args.split} split: {notes} {fix}")
        print(f"Not scored ({args.split} split not readable): {notes} {fix}", file=sys.stderr)
    return rows


def _file_rows(args: argparse.Namespace, config: Any, tasks: list[str]) -> dict[str, list[dict]]:
    """The rows of `--file [TASK=]FILE`s, with --columns and --labels (over the labels the run recorded)."""
    from attempt.data.sources import load_user_file

    files = dict(task_and_value(item, "=", "--file", tasks) for item in args.file)
    columns, labels = column_options(args.columns, tasks), label_options(args.labels, tasks)
    recorded = {task: (spec or {}).get("labels", {}) for task, spec in (config.data_files or {}).items()}
    rows = {
        task: load_user_file(
            path, task, columns.get(task), {**recorded.get(task, {}), **labels.get(task, {})}
        )
        for task, path in files.items()
    }
    return {task: task_rows[: args.limit] if args.limit else task_rows for task, task_rows in rows.items()}


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a trained run on the validation or test split of the paper's protocol, or on your labelled file
    (--file, with --columns to map its columns); print a metrics table.

    Writes <out>/eval_<split>.json (metrics per task) and <out>/eval_<split>_predictions.jsonl (<split> is
    "file" with --file), where <out> is RUN_DIR unless --out is given.
    """
    from attempt.evaluation.evaluate import evaluate
    from attempt.runs.build import read_run_config
    from attempt.tasks import get_task

    config = read_run_config(
        _run_dir(args.run_dir)
    )  # the rows first: a bad file fails before the backbone loads
    config.register_tasks()  # the run's own tasks, before --tasks and the rows name them
    tasks = [get_task(t).name for t in (args.tasks or config.tasks)]
    unknown = sorted(set(tasks) - {get_task(t).name for t in config.tasks})
    if unknown:
        raise UsageError(
            f"The run was not trained on {', '.join(unknown)}; its tasks: {', '.join(config.tasks)}."
        )
    task_rows = _task_rows(args, config, tasks)
    model, tokenizer, config = _load(args, config)
    name = "file" if args.file else args.split  # what the outputs are named after
    out = Path(args.out) if args.out else _run_dir(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, predictions_path, attention_path = (out / file for file in layout.eval_files(name))
    metrics = evaluate(
        model,
        tokenizer,
        task_rows,
        method=args.method or config.eval_method,
        batch_size=args.batch_size or config.eval_batch_size,
        max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
        pad_to=config.pad_to,
        predictions_path=predictions_path,
        attention_path=attention_path,
    )
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(f"{name} ({', '.join(f'{t}: {len(r)}' for t, r in task_rows.items())} examples)")
    print(metrics_table(metrics))
    print(f"\nMetrics: {metrics_path}\nPredictions: {predictions_path}")
    if attention_path.is_file():
        print(f"Mean attention weights: {attention_path}")
    return 0


# -------------------------------------------------------------------------------------------- predict


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt predict`."""
    _add_load_arguments(parser)
    parser.add_argument(
        "--inputs",
        required=True,
        metavar="FILE",
        help="JSON lines (.jsonl), CSV (.csv) or TSV (.tsv): one input per line or row, with the task's fields "
        '(and "task" to mix tasks); or, for a task with one input field, a .txt file with one input per line',
    )
    parser.add_argument(
        "--task", help='the task of the inputs that name none ("task"); default: the run\'s only task'
    )
    parser.add_argument(
        "--columns",
        action="append",
        metavar="[TASK:]COLUMN=FIELD",
        default=[],
        help="your inputs' COLUMN holds the task's FIELD, e.g. --columns review=text; repeatable",
    )
    add_labels_argument(parser, "inputs that carry a label: your VALUE means the task's LABEL (the run's own "
                        "--labels apply too); the label is kept as the prediction's reference")  # fmt: skip
    parser.add_argument(
        "--output",
        required=True,
        metavar="FILE.jsonl",
        help="where to write one prediction per line (with per-label scores for classification)",
    )


def run_predict(args: argparse.Namespace) -> int:
    """Predict with a trained run on your own inputs (JSON lines, CSV or TSV with the task's fields).

    Example line: {"sentence1": "A man is sleeping.", "sentence2": "A man is awake."} ("task": "rte" too when
    the run has several tasks, or --task). A task with one input field also reads a plain .txt file, one input
    per line. Each prediction has the label, its per-label scores and (ATTEMPT) the attention weights.
    """
    from attempt.evaluation.evaluate import predict
    from attempt.runs.build import read_run_config
    from attempt.runs.hub import run_folder
    from attempt.utils import storage

    _check_output(Path(args.output), Path(args.inputs), Path(args.run_dir))
    try:
        run_config = read_run_config(run_folder(args.run_dir))
        run_config.register_tasks()  # the run's own tasks (task files), before the inputs name them
    except FileNotFoundError:  # not a finished run: said when the model loads, after the inputs are checked
        run_config = None
    run_tasks = run_config.tasks if run_config else ()
    path = Path(args.inputs)
    if path.suffix.lower() == ".txt":
        numbered = _read_text_inputs(path, run_tasks, args.task)
    else:
        numbered = _read_inputs(path, run_tasks, args, run_config)
    if run_config is not None:  # a 1 MB line is refused now, not after the backbone has loaded
        _check_lengths(numbered, path, run_config.max_source_length)
    model, tokenizer, config = _load(args, run_config)
    _check_lengths(numbered, path, config.max_source_length, tokenizer, model.family)
    for line, row in numbered:
        if row["task"] not in model.tasks:
            raise UsageError(
                f"{args.inputs}, line {line}: task {row['task']!r} is not one of the model's tasks "
                f"{list(model.tasks)}."
            )
    inputs = [row for _, row in numbered]
    predictions = predict(
        model,
        tokenizer,
        inputs,
        method=args.method or config.eval_method,
        batch_size=args.batch_size or config.eval_batch_size,
        max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
    )
    output = Path(args.output)
    storage.write_text(output, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    print(f"{len(predictions)} predictions → {output}")
    return 0


def _check_output(output: Path, inputs: Path, run_dir: Path) -> None:
    """Refuse an --output that would overwrite what predict reads: the inputs file (however its path is spelt,
    or through a symbolic or hard link) or the run's config and best model; before anything loads."""
    if output.is_dir():
        raise UsageError(
            f"--output {output} is a folder; name a file in it, e.g. {output / 'predictions.jsonl'}."
        )
    suggestion = inputs.with_name(f"{inputs.stem}.predictions.jsonl")
    elsewhere = f"Write the predictions elsewhere, e.g. --output {suggestion}."
    if output.exists() and inputs.exists() and os.path.samefile(output, inputs):
        raise UsageError(f"--output {output} is the inputs file {inputs}: the predictions would replace your "
                         f"inputs. {elsewhere}")  # fmt: skip
    run, target = RunLayout(run_dir), output.resolve()
    for read in (run.config.resolve(), run.best.resolve()):
        if target == read or read in target.parents:
            raise UsageError(f"--output {output} is in the run folder's {read.name}, which predict reads: the "
                             f"predictions would replace it. {elsewhere}")  # fmt: skip


def _check_lengths(
    numbered: list[tuple[int, dict]], path: Path, limit: int, tokenizer: Any = None, family: str | None = None
) -> None:
    """Refuse inputs longer than the run reads (its max_source_length), as `attempt serve` refuses them (413),
    rather than predict from their first tokens: every such line is named. Without `tokenizer`, only the quick
    bound on characters (before the model loads); with it, the tokens exactly."""
    from attempt.evaluation.evaluate import InputTooLong, check_input
    from attempt.tasks import get_task

    too_long = []
    for line, row in numbered:
        try:
            check_input(
                row, get_task(row["task"]), f"{path}, line {line}", limit, tokenizer=tokenizer, family=family
            )
        except InputTooLong as error:
            too_long.append((line, str(error)))
    if len(too_long) > 1:
        lines = ", ".join(str(line) for line, _ in too_long[1:11]) + (", ..." if len(too_long) > 11 else "")
        raise UsageError(
            f"{too_long[0][1]} {len(too_long) - 1} more input(s) are too long too: line(s) {lines}."
        )
    if too_long:
        raise UsageError(too_long[0][1])


def _read_inputs(
    path: Path, run_tasks: tuple[str, ...], args: argparse.Namespace, run_config: Any
) -> list[tuple[int, dict]]:
    """(file line, input) for each input of `attempt predict`, every one checked before the model loads (a task
    it knows, its fields present and text); errors name the file line, counted from 1 as editors show it. An
    input without "task" is --task's, else the run's only task's (`attempt.evaluation.texts.as_input`);
    --columns renames its keys; a label is read with the run's --labels and these."""
    from attempt.data.sources import check_fields
    from attempt.evaluation.texts import as_input, run_label_maps
    from attempt.tasks import get_task
    from attempt.utils.textfiles import numbered_jsonl, numbered_rows

    if not path.is_file():
        raise UsageError(f"No such inputs file: {path}")
    tasks = list(dict.fromkeys(get_task(name).name for name in (*run_tasks, *filter(None, [args.task]))))
    columns, extra = column_options(args.columns, tasks), label_options(args.labels, tasks)
    numbered = numbered_rows(path) if path.suffix.lower() in (".csv", ".tsv") else numbered_jsonl(path)
    if not numbered:
        raise UsageError(f"{path} has no inputs.")
    fix = "Add it to each input, or name the column that holds it with --columns COLUMN=FIELD."
    recorded = run_label_maps(run_config) if run_config is not None else {}
    labels = {task: {**recorded.get(task, {}), **extra.get(task, {})} for task in {*recorded, *extra}}
    for position, (line, row) in enumerate(numbered):
        row = as_input(row, run_tasks, args.task, columns, f"{path}, line {line}", labels)
        fields = {key: value for key, value in row.items() if key != "task"}  # as the file has them
        check_fields(fields, get_task(row["task"]), f"{path}, line {line}", fix=fix)
        numbered[position] = (line, row)
    return numbered


def _read_text_inputs(
    path: Path, run_tasks: tuple[str, ...], task_name: str | None
) -> list[tuple[int, dict]]:
    """(file line, input) for each non-blank line of a plain-text file: the one input field of one task."""
    from attempt.tasks import get_task
    from attempt.utils.textfiles import decoded

    if not path.is_file():
        raise UsageError(f"No such inputs file: {path}")
    if task_name is None and len(run_tasks) != 1:
        raise UsageError(f"{path}: the run has tasks {', '.join(run_tasks) or '(none read)'}; name the one of "
                         "these inputs with --task.")  # fmt: skip
    task = get_task(task_name or run_tasks[0])
    if len(task.fields) != 1:
        raise UsageError(f"{path}: task {task.name!r} reads {len(task.fields)} fields ({', '.join(task.fields)}), "
                         f'so one text a line cannot fill them; write JSON lines instead, e.g. {{"task": "{task.name}", '
                         + ", ".join(f'"{f}": "..."' for f in task.fields) + "}.")  # fmt: skip
    numbered = [(line, {"task": task.name, task.fields[0]: text})
                for line, text in enumerate(decoded(path).splitlines(), start=1) if text.strip()]  # fmt: skip
    if not numbered:
        raise UsageError(f"{path} has no inputs.")
    return numbered


# ----------------------------------------------------------------------------------------------- plot


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt plot`."""
    parser.add_argument(
        "run_dir", nargs="+", metavar="RUN_DIR",
        help=f"a training run's output_dir; two or more: one figure comparing them ({layout.COMPARISON_PLOT_FILE})",
    )  # fmt: skip
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where to write the PNGs (default: RUN_DIR; comparing runs: the current folder)",
    )


def run_plot(args: argparse.Namespace) -> int:
    """Plot a run's attention (mean, per example) and training curves, or compare runs; prints the PNGs' paths.

    One run: attention.png from attention.json (ATTEMPT runs: the mean weight of each prompt per task),
    attention_examples.png from test_predictions.jsonl (each test example's weights) and training_curves.png
    from metrics.jsonl (the loss as often as the run logged it: --log-every when training). Several runs:
    comparison.png, their losses, validation averages and test metrics side by side. Needs matplotlib (pip
    install attempt-tuning[plot]).
    """
    from attempt.evaluation import plots as plot

    runs = [RunLayout(_run_dir(path)) for path in args.run_dir]
    if len(runs) > 1:
        out = Path(args.out or ".")
        out.mkdir(parents=True, exist_ok=True)
        path = plot.compare_runs([run.root for run in runs], out / layout.COMPARISON_PLOT_FILE)
        print(f"Comparison of {len(runs)} runs: {path}")
        return 0
    run = runs[0]
    out = Path(args.out) if args.out else run.root
    if not run.attention.is_file() and not run.metrics.is_file():
        raise UsageError(
            f"{run.root} has neither {run.attention.name} nor {run.metrics.name}: is it a training run's output_dir?"
        )
    out.mkdir(parents=True, exist_ok=True)
    _plot_attention(run, out)
    if run.metrics.is_file():
        path = out / layout.CURVES_PLOT_FILE
        plot.training_curves(run.metrics, path)
        print(f"Training curves: {path}")
    return 0


def _plot_attention(run: RunLayout, out: Path) -> None:
    """attention.png and attention_examples.png of an ATTEMPT run, or one line saying why there are none."""
    from attempt.evaluation import plots as plot
    from attempt.runs.build import read_run_config
    from attempt.utils.reading import read_json

    try:
        config = read_run_config(run.root, finished=False)
    except FileNotFoundError:
        config = None
    if not run.attention.is_file():
        mode = f"mode={config.mode}" if config else "this run"
        print(f"No attention heatmap: {mode} mixes no prompts (only ATTEMPT runs have attention weights).")
        return
    residual = config.attempt_config().target_residual if config else True
    attention = read_json(run.attention, "Train the run again to rewrite it.")
    path = out / layout.ATTENTION_PLOT_FILE
    title = f"Attention over source prompts ({run.root.name})"
    plot.attention_heatmap(attention, path, title=title, target_residual=residual)
    print(f"Attention heatmap: {path}")
    try:
        path = plot.example_attention_heatmap(
            run.predictions("test"), out / layout.EXAMPLES_PLOT_FILE, target_residual=residual,
            title=f"Attention per test example ({run.root.name})",
        )  # fmt: skip
        print(f"Attention per example: {path}")
    except (FileNotFoundError, ValueError) as error:
        print(f"No per-example attention: {error}")
