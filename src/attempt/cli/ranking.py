"""`attempt prompts rank`: which of a library's source prompts suit a new task (SPoT's selection).

    attempt prompts rank --task cb --library prompts/smollm2-135m-instruct --data-dir ../shared/data
    attempt train ... --source-prompts $(attempt prompts rank --task cb --top 2)

Every prompt is scored untrained, as the task's target prompt, on the task's validation rows
(`attempt.evaluation.ranking`); the defaults pick the rows `attempt train` validates on with its own defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from attempt.cli.options import UsageError
from attempt.cli.tables import text_table
from attempt.config import TrainConfig

# the rows a run with TrainConfig's defaults validates on, and how it scores them
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def add_rank_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt prompts rank`."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--task", help="the target task (`attempt tasks` lists them)")
    target.add_argument("--task-file", metavar="TASK.yaml", help="your own target task, from its task file")
    parser.add_argument(
        "--library", default=argparse.SUPPRESS, metavar="DIR", help="the prompt library folder"
    )
    parser.add_argument("--sources", nargs="+", metavar="NAME", help="rank only these prompts (default: all)")
    parser.add_argument(
        "--backbone", help="the backbone (default: the one the prompts record; they must agree)"
    )
    parser.add_argument(
        "--data-dir", help="local benchmark mirror (default: $ATTEMPT_DATA_DIR, else the Hub)"
    )
    parser.add_argument(
        "--split-seed", type=int, default=_DEFAULTS["seed"],
        help=f"seed of the paper's validation split, as a run's split_seed, and of an encoder's untrained head "
        f"(default: {_DEFAULTS['seed']})",
    )  # fmt: skip
    parser.add_argument("--eval-limit", type=int, help="score at most N validation rows (default: all)")
    parser.add_argument(
        "--max-source-length", type=int, default=_DEFAULTS["max_source_length"], help="input tokens at most"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="examples per batch (default: 32)")
    parser.add_argument(
        "--method", choices=("rank", "generate"), default=_DEFAULTS["eval_method"],
        help="score label words (rank) or generate, on LM backbones (default: rank)",
    )  # fmt: skip
    parser.add_argument(
        "--top", type=int, metavar="K",
        help="print only the K best names, space-separated, for --source-prompts (the table goes to stderr)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON")


def _task(args: argparse.Namespace) -> str:
    """The target task's name, registering a --task-file's task first."""
    from attempt.tasks import get_task
    from attempt.tasks.user import read_task_file, register_definition

    if args.task_file is None:
        return get_task(args.task).name
    try:
        definition = register_definition(read_task_file(args.task_file), origin=str(args.task_file))
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    return get_task(definition["name"]).name


def _backbone_name(args: argparse.Namespace, prompts: list) -> str:
    if args.backbone:
        return args.backbone
    recorded = sorted({p.backbone for p in prompts if p.backbone})
    if len(recorded) != 1:
        found = ", ".join(recorded) or "none"
        raise UsageError(
            f"The prompts record {found} as their backbone; name the one to use with --backbone."
        )
    return recorded[0]


def run_rank(args: argparse.Namespace) -> int:
    """Rank a library's source prompts for a task: each scored untrained, as the task's target prompt, on
    its validation rows (SPoT's selection); --top K prints the K best for --source-prompts."""
    from attempt.backbones.resolve import load_backbone
    from attempt.data.splits import paper_validation
    from attempt.evaluation.ranking import rank_sources
    from attempt.prompts.library import PromptLibrary

    if args.top is not None and args.top < 1:
        raise UsageError(f"--top {args.top}: give a number of prompts of at least 1.")
    task = _task(args)
    prompts = PromptLibrary(args.library).load(args.sources)
    # the rows before any weights: a missing split fails at once
    rows = paper_validation(task, args.data_dir, seed=args.split_seed)[: args.eval_limit]
    name = _backbone_name(args, prompts)
    backbone, tokenizer, family = load_backbone(name)
    ranking = rank_sources(
        backbone, tokenizer, family, prompts, task, rows, method=args.method, batch_size=args.batch_size,
        max_source_length=args.max_source_length, seed=args.split_seed, backbone_name=name,
    )  # fmt: skip
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in ranking], indent=2))
        return 0
    table = text_table(
        [(i + 1, s.name, s.source_task, f"{s.score:.2f}") for i, s in enumerate(ranking)],
        ("rank", "prompt", "trained on", f"{task} validation ({len(rows)} rows, untrained)"),
    )
    if args.top is None:
        print(table)
    else:
        print(table, file=sys.stderr)
        print(" ".join(s.name for s in ranking[: args.top]))
    return 0


# `attempt prompts ACTION`: name → (add_arguments, run, one-line help)
PROMPT_ACTIONS = {
    "rank": (add_rank_arguments, run_rank, "rank the prompts for a new task, each scored untrained (SPoT)"),
}
