"""The training commands: `attempt train-source`, `attempt train` and `attempt quickstart`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attempt.cli.options import add_config_arguments, add_labels_argument, build_config, dataclass_options
from attempt.cli.tables import metrics_table
from attempt.tasks.data_files import SPLITS


def _add_train_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    parser.usage = (
        "%(prog)s [--config RECIPE.yaml] [--task-file TASK.yaml ...] [OPTION ...] [--set KEY=VALUE ...] "
        "[--train-file [TASK=]FILE ...] [--columns COLUMN=FIELD ...] [--print-config] [--quiet] [--overwrite]"
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="RECIPE.yaml",
        help="a YAML recipe (see configs/); options below override it",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override any config key with a YAML value; dotted keys reach into the `attempt:` mapping, "
        "e.g. --set attempt.prompt_length=10 --set tasks=[rte,mrpc]. Applied after the options below; repeatable.",
    )
    parser.add_argument(
        "--task-file",
        action="append",
        metavar="TASK.yaml",
        default=[],
        help="your own task (YAML or JSON: name, data files or hub_id, fields, template, label_field, label_words "
        "or raw_labels, metrics, k_shot); its tasks are the run's unless --tasks names them. Recorded in the run "
        "(task_definitions), so evaluate/predict need no task file. Repeatable.",
    )
    for split in SPLITS:
        parser.add_argument(
            f"--{split}-file",
            action="append",
            metavar="[TASK=]FILE",
            default=[],
            dest=f"{split}_file",
            help=f"the {split} split of a built-in task from your CSV/TSV/JSONL file (TASK= needed when the run "
            "has several tasks); the other splits follow the paper's protocol. Recorded in data_files."
            if split == SPLITS[0]
            else f"the {split} split from your file, as --{SPLITS[0]}-file",  # said once, not three times
        )
    parser.add_argument(
        "--columns",
        action="append",
        metavar="[TASK:]COLUMN=FIELD",
        default=[],
        help="with --*-file: your file's COLUMN holds the task's FIELD (or its label), e.g. --columns "
        "premise=sentence1. Repeatable.",
    )
    add_labels_argument(parser)
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="mode=source: replace a prompt of the same name already in the library (default: refuse, before training)",
    )
    add_config_arguments(parser, skip=skip)


def _train(args: argparse.Namespace, mode: str | None) -> int:
    config = build_config(args, mode)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from attempt.training.loop import TrainingDiverged, train

    print(
        f"Training mode={config.mode} on {', '.join(config.tasks)} with {config.backbone} → {config.output_dir}"
    )
    try:
        # writes output_dir/train_config.json (resolved)
        result = train(config, progress=not args.quiet, overwrite_prompt=args.overwrite)
    except TrainingDiverged as error:
        print(f"attempt {args.command}: training diverged: {error}", file=sys.stderr)
        return 1
    print(
        f"\nDone in {result.wall_time_s:.1f}s: {result.steps} steps, "
        f"{result.trainable_parameters:,} trainable parameters; best step {result.best_step}."
    )
    for title, metrics in (("validation (best)", result.best_metrics), ("test", result.test_metrics)):
        if metrics:
            print(f"\n{title}:\n{metrics_table(metrics)}")
    if config.mode == "source":
        name = config.prompt_name or config.tasks[0]
        print(f"\nSource prompt {name!r} added to the library {config.library}.")
    print(f"\nOutputs in {result.output_dir}")
    return 0


def add_train_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt train-source`: those of `attempt train` without --mode."""
    _add_train_arguments(parser, skip=("mode",))


def run_train_source(args: argparse.Namespace) -> int:
    """Train a source prompt (prompt tuning on one source task) and add it to the prompt library.

    The same options as `attempt train` with mode fixed to "source"; the prompt is stored as
    <library>/<prompt_name or task>.safetensors; a prompt of that name already there is replaced only with
    --overwrite (checked before training). Options override the recipe, --set overrides both.
    """
    return _train(args, mode="source")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt train`: a recipe, one option per config field, --set."""
    _add_train_arguments(parser)


def run_train(args: argparse.Namespace) -> int:
    """Train ATTEMPT (single- or multi-task) or a baseline (--mode prompt_tuning|spot|finetune|lora).

    Writes to output_dir: train_config.json (the resolved config), metrics.jsonl, checkpoint/, best/,
    results.json, attention.json and the test predictions. Options override the recipe, --set overrides both.
    """
    return _train(args, mode=None)


# ----------------------------------------------------------------------------------------- quickstart


def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt quickstart`: one per `QuickstartConfig` field."""
    from attempt.quickstart import QuickstartConfig

    group = parser.add_argument_group("quickstart options (QuickstartConfig)")
    for key, kwargs in dataclass_options(QuickstartConfig):
        flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*flags, dest=f"config:{key}", default=argparse.SUPPRESS, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_quickstart(args: argparse.Namespace) -> int:
    """Take (or train) source prompts, then train ATTEMPT and prompt tuning on a target; print a table, draw a heatmap.

    Defaults: SmolLM2-135M-Instruct with three of the source prompts this repository ships for it (mnli, qnli, sst2);
    target cb, 60 steps of 8; about 6 minutes on 2 CPU cores. For all-MiniLM-L6-v2 (sources trained here):
    --backbone sentence-transformers/all-MiniLM-L6-v2 --batch-size 16 --target-steps 120 --learning-rate 0.1. Data come from --data-dir, else ATTEMPT_DATA_DIR, else the Hugging Face Hub. Source
    prompts already in OUT/prompts with the same settings are reused. Everything lands under --out
    (default ./attempt-quickstart).
    """
    from attempt.quickstart import QuickstartConfig
    from attempt.quickstart import run_quickstart as run

    given = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("config:")}
    run(QuickstartConfig.from_dict(given), progress=not args.quiet)
    return 0
