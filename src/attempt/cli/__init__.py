"""The `attempt` command: parse the command line, call the library, print.

    attempt train-source --config configs/cpu/minilm_source_sst2.yaml
    attempt train --config configs/cpu/minilm_attempt_rte.yaml --max-steps 50 --set attempt.prompt_length=10
    attempt evaluate runs/attempt_rte --split test
    attempt predict runs/attempt_rte --inputs inputs.jsonl --output predictions.jsonl
    attempt tasks --task rte
    attempt prompts --library prompts list
    attempt plot runs/attempt_rte
    attempt serve runs/attempt_rte runs/attempt_glue --port 8000
    attempt push runs/attempt_rte your-name/attempt-rte

The training options are generated from `TrainConfig`'s fields (types, defaults and help text from its
docstring), so the command line cannot drift from the YAML recipes. Each subcommand is a pair of functions
registered in `COMMANDS`: `add_arguments(parser)` and `run(args) -> exit code`.

Layout: `options` (the generated options, `--set`, YAML recipes, `UsageError`), `training` (train-source,
train, quickstart), `runs` (evaluate, predict, plot: the commands that read a run's output_dir), `library`
(tasks, prompts), `ranking` (prompts rank), `hub` (prompts push / pull, push: the Hugging Face Hub),
`serving` (serve: the HTTP server) and `tables` (the printed tables); this module holds the registry, the
parser and `main`.

User mistakes (a missing file, an unknown task or config key, an invalid value) print one line on stderr and
exit with code 2; set ATTEMPT_DEBUG=1 (or pass --traceback) to see the traceback instead.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence

from attempt.cli.hub import add_push_arguments, run_push
from attempt.cli.library import add_prompts_arguments, add_tasks_arguments, run_prompts, run_tasks
from attempt.cli.options import (
    HelpFormatter,
    UsageError,
    add_config_arguments,
    attribute_docs,
    build_config,
    dataclass_options,
    load_yaml,
    parse_set,
)
from attempt.cli.runs import (
    add_evaluate_arguments,
    add_plot_arguments,
    add_predict_arguments,
    run_evaluate,
    run_plot,
    run_predict,
)
from attempt.cli.serving import add_serve_arguments, run_serve
from attempt.cli.training import (
    add_quickstart_arguments,
    add_train_arguments,
    add_train_source_arguments,
    run_quickstart,
    run_train,
    run_train_source,
)

USAGE_ERROR = 2


# name → (add_arguments(parser), run(args) -> exit code). The first line of run's docstring is the
# subcommand's one-line help, the whole docstring its description. A new subcommand is two functions.
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "train-source": (add_train_source_arguments, run_train_source),
    "train": (add_train_arguments, run_train),
    "evaluate": (add_evaluate_arguments, run_evaluate),
    "predict": (add_predict_arguments, run_predict),
    "tasks": (add_tasks_arguments, run_tasks),
    "prompts": (add_prompts_arguments, run_prompts),
    "plot": (add_plot_arguments, run_plot),
    "quickstart": (add_quickstart_arguments, run_quickstart),
    "serve": (add_serve_arguments, run_serve),
    "push": (add_push_arguments, run_push),
}


def build_parser() -> argparse.ArgumentParser:
    """The `attempt` parser: one subcommand per `COMMANDS` entry, its help taken from the run function's docstring."""
    parser = argparse.ArgumentParser(
        prog="attempt",
        formatter_class=HelpFormatter,
        description="ATTEMPT: attentional mixtures of soft prompts (Asai et al., EMNLP 2022) on any HF backbone.",
        epilog="Run `attempt COMMAND --help` for a command's options.",
    )
    parser.add_argument("--traceback", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        doc = inspect.getdoc(run) or ""
        sub = commands.add_parser(
            name, help=doc.splitlines()[0] if doc else None, description=doc, formatter_class=HelpFormatter
        )
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        return error.args[0]  # str(KeyError) would add quotes
    return str(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `attempt` command; returns the exit code (0 ok, 2 a usage or input error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exit_.code or 0)
    debug = args.traceback or os.environ.get("ATTEMPT_DEBUG", "") not in ("", "0")
    try:
        code = int(args.run(args) or 0)
        _end_process_group()
        return code
    except BrokenPipeError:  # `attempt tasks | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (
        UsageError,
        FileNotFoundError,
        FileExistsError,
        KeyError,
        ValueError,
        ImportError,
        OSError,
    ) as error:
        # the library's errors for bad input (unknown task/key/prompt, missing file or split, invalid value,
        # backbone not found, optional dependency missing) say what is wrong and what to do
        if debug:
            raise
        print(f"attempt {args.command}: error: {_message(error)}", file=sys.stderr)
        return USAGE_ERROR


def _end_process_group() -> None:
    """A command launched by torchrun ends the processes' group Accelerate started, before the interpreter
    does: gloo's worker threads still hold tensors at exit, and destroying them while Python finalizes aborts
    the process ("terminate called without an active exception": pytorch/pytorch#190489). Only after a
    command succeeded, on every process alike: after an error the others may still be in a collective, and
    destroying then can hang (torchtitan#1342). Torch is looked at only if the command imported it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


__all__ = [
    "COMMANDS",
    "USAGE_ERROR",
    "UsageError",
    "add_config_arguments",
    "attribute_docs",
    "build_config",
    "build_parser",
    "dataclass_options",
    "load_yaml",
    "main",
    "parse_set",
]
