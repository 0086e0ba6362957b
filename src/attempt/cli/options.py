"""Command-line options generated from the config dataclasses, `--set key=value` overrides and YAML recipes.

`add_config_arguments` adds one typed option per `TrainConfig` field (and per `AttemptConfig` field as
``--attempt.<field>``), with the help text taken from the dataclass docstrings; `build_config` merges the
recipe, those options and ``--set`` into a validated `TrainConfig`. Bad input raises `UsageError`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import inspect
import re
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from attempt.config import AttemptConfig, TrainConfig
from attempt.runs.layout import CONFIG_FILE
from attempt.runs.portable import resolve_paths
from attempt.utils.reading import NESTED_TOO_DEEP, nesting_problem
from attempt.utils.textfiles import decoded

# a recipe holds tens of values; YAML aliases (&a / *a) can expand a small one to billions
MAX_YAML_VALUES = 100_000


class UsageError(Exception):
    """A mistake on the command line or in the files it names; printed as one line, exit code 2."""


class _Flag(argparse.BooleanOptionalAction):
    """`--x` / `--no-x` (and the underscore spellings), shown once in the usage line."""

    def format_usage(self) -> str:
        return " | ".join(self.option_strings[:2])


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows a config option once (`--max-steps INT`, `--group-by-length / --no-group-by-length`), not
    every underscore alias."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.dest.startswith("config:"):
            return super()._format_action_invocation(action)
        if isinstance(action, _Flag):
            return " / ".join(action.option_strings[:2])
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{action.option_strings[0]} {metavar}"


# --------------------------------------------------------------------- config options from the dataclass


def attribute_docs(cls: type) -> dict[str, str]:
    """{field: help} from the "Attributes:" section of a dataclass docstring (`a, b: text` documents both)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        entry = re.match(r"^    ([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            for n in names:
                docs[n] = entry.group(2).strip()
        elif line.startswith("        ") and names:
            for n in names:
                docs[n] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break  # the next section
    return docs


@functools.cache
def _yaml_loader():
    """PyYAML's SafeLoader, also reading `1e-2` as a float (YAML 1.2; PyYAML's YAML 1.1 makes it a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    number = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    return Loader


def load_yaml(text: str) -> Any:
    """Parse YAML text with `_yaml_loader` (so `1e-2` is a float, as in YAML 1.2).

    Raises:
        yaml.YAMLError: not YAML, or lists or mappings nested more than 100 deep or too many values once aliases
            are expanded (what would overflow the stack or hang what reads it next).
    """
    import yaml

    try:
        value = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # the parser's own stack overflowed
        raise yaml.YAMLError(NESTED_TOO_DEEP) from None
    problem = nesting_problem(value, max_values=MAX_YAML_VALUES)
    if problem:
        raise yaml.YAMLError(problem)
    return value


def _parse_yaml_value(text: str) -> Any:
    import yaml

    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(
            f"{_clipped(text)!r} is not a valid YAML value ({' '.join(str(error).split())})"
        ) from None


def _clipped(text: str, limit: int = 60) -> str:
    """`text` as an error quotes it: a 10,000-character value would bury the message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _scalar(kind: type, optional: bool) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if optional and text.strip().lower() in ("none", "null", "~"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an' if kind is int else 'a'} {kind.__name__}{' or none' if optional else ''}, "
                f"got {text!r}"
            ) from None

    convert.__name__ = kind.__name__  # argparse names the type in its errors
    return convert


def _option_kwargs(tp: Any) -> dict[str, Any] | None:
    """argparse keyword arguments for a field's type hint; None for mappings (set through dotted keys)."""
    args = get_args(tp)
    is_union = get_origin(tp) in (Union, types.UnionType)  # Optional[int] and int | None
    members = [a for a in args if a is not type(None)] if is_union else [tp]
    optional = is_union and type(None) in args
    if len(members) == 1:
        base, origin = members[0], get_origin(members[0])
        if base is bool:
            return {"action": _Flag}
        if base in (int, float, str):
            return {"type": _scalar(base, optional), "metavar": base.__name__.upper()}
        if origin is tuple:
            return {"nargs": "*", "metavar": "NAME"}
        if origin is dict or base is dict:
            return None
    return {"type": _parse_yaml_value, "metavar": "YAML"}  # unions such as int | dict[str, int] | None


def dataclass_options(
    cls: type, prefix: str = "", skip: Sequence[str] = (), shown_defaults: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(config key, argparse kwargs) for the fields of dataclass `cls`, in field order: the type from the
    type hints, the help from the docstring's Attributes section, no default (so only given options count).
    Mapping fields are left out (set them with dotted keys). `shown_defaults`: {field: how the help states its
    default} where the value alone would mislead (None that the run fills in)."""
    hints, docs, options = get_type_hints(cls), attribute_docs(cls), []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kwargs = _option_kwargs(hints[f.name])
        if kwargs is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = list(default) if isinstance(default, tuple) else default
        shown = (shown_defaults or {}).get(f.name, shown)
        text = docs.get(f.name, "").replace("%", "%%")
        kwargs["help"] = f"{text} [{prefix}{f.name}; default: {shown}]"
        options.append((prefix + f.name, kwargs))
    return options


# defaults a run picks when it starts (`attempt.training.defaults`), as the help states them
PICKED = "from the backbone"
SHOWN_DEFAULTS = {"learning_rate": PICKED, "batch_size": PICKED, "log_every": "every step up to 200 steps, else 10",
                  "source_prompts": "all", "gradient_checkpointing": "on for prompt modes over causal/seq2seq "
                  "backbones and with --shard-backbone, else off"}  # fmt: skip
SHOWN_PROMPT_DEFAULTS = {
    "prompt_length": f"{PICKED} (attempt/spot: the source prompts')",
    "seed": "the run's --seed",
}


def add_config_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one option per TrainConfig field (and per AttemptConfig field as --attempt.<field>), and `--help-all`:
    `--help` shows the options of a first run (`FIRST_RUN_GROUPS`), `--help-all` every one."""
    groups = [
        ("training options (TrainConfig)", dataclass_options(TrainConfig, skip=skip, shown_defaults=SHOWN_DEFAULTS)),
        (
            "prompt options (AttemptConfig; YAML: the `attempt:` mapping)",
            dataclass_options(AttemptConfig, "attempt.", skip=("method", "tasks"), shown_defaults=SHOWN_PROMPT_DEFAULTS),
        ),
    ]  # fmt: skip
    for title, options in groups:
        group = parser.add_argument_group(title)
        for key, kwargs in options:
            flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
            group.add_argument(*flags, dest=f"config:{key}", default=argparse.SUPPRESS, **kwargs)
    parser.add_argument("--help-all", action=_HelpAll, help="show every option, grouped, and exit")
    parser.epilog = "Each option has an underscore spelling too: --max_steps is --max-steps."
    parser.format_help = functools.partial(first_run_help, parser)  # what --help prints


# ------------------------------------------------------------------------------------ --help, --help-all

# `attempt train --help`: the options a first run needs, by what they are about ({dest: short help}; a config
# key's dest is "config:<key>"); `--help-all` shows every option with its whole help. A dest a command lacks is
# left out (train-source has no --mode).
FIRST_RUN_GROUPS: dict[str, dict[str, str]] = {
    "task and data": {
        "config:tasks": "built-in task(s) (`attempt tasks`); several = multi-task",
        "task_file": "your own task, e.g. examples/own_task/task.yaml",
        "train_file": "a built-in task's training split from your CSV/TSV/JSONL file",
        "validation_file": "its validation split (else: the paper's protocol)",
        "test_file": "its test split (else: the paper's protocol)",
        "columns": "your file's COLUMN holds the task's FIELD, e.g. premise=sentence1",
        "labels": "your label VALUE is the task's LABEL, e.g. entails=entailment",
        "config:data_dir": "a local mirror of the Hub datasets (else $ATTEMPT_DATA_DIR, else the Hub)",
    },
    "backbone and prompts": {
        "config:backbone": "Hub id, alias or local folder of the frozen backbone",
        "config:mode": "attempt, prompt_tuning, spot, source, finetune or lora",
        "config:library": "the folder of source prompts (prompts/<backbone>/ ships some)",
        "config:source_prompts": "the library's prompts ATTEMPT mixes",
    },
    "budget": {
        "config:max_steps": "optimizer steps",
        "config:batch_size": "examples per step",
        "config:learning_rate": "prompt learning rate",
        "config:eval_every": "validate and checkpoint every N steps (0: at the end only)",
    },
    "output": {
        "config:output_dir": "the run folder",
        "quiet": "no progress bar",
    },
    "recipe": {
        "config": "a YAML recipe (configs/); options override it",
        "set": "any config key, e.g. --set attempt.prompt_length=10",
        "print_config": "print the resolved config as YAML and exit",
    },
}


class _HelpAll(argparse.Action):
    """`--help-all`: print the whole help (every option in its group, with its whole text) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(argparse.ArgumentParser.format_help(parser))
        parser.exit()


def first_run_help(parser: argparse.ArgumentParser) -> str:
    """The help `--help` prints: usage, description, the options of `FIRST_RUN_GROUPS` with their short help
    and default, and how many more `--help-all` shows."""
    # argparse's own format_help, with a chosen list of actions: it keeps them (and its formatter) private
    actions = {action.dest: action for action in parser._actions}
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    formatter.add_text(parser.description)
    shown = 0
    for title, entries in FIRST_RUN_GROUPS.items():
        formatter.start_section(title)
        for dest, text in entries.items():
            if dest in actions:
                default = re.search(r"; default: (.*)\]$", actions[dest].help or "")
                brief = f"{text} [default: {default.group(1)}]" if default else text
                formatter.add_argument(_briefed(actions[dest], brief))
                shown += 1
        formatter.end_section()
    more = len(parser._actions) - shown - 2  # not counting --help and --help-all
    formatter.add_text(f"{more} more options (prompt, optimiser, evaluation, data, multi-task): {parser.prog} "
                       f"--help-all.\n{parser.epilog}")  # fmt: skip
    return formatter.format_help()


def _briefed(action: argparse.Action, text: str) -> argparse.Action:
    """A copy of `action` that shows `text` as its help."""
    brief = copy.copy(action)
    brief.help = text.replace("%", "%%")
    return brief


# ---------------------------------------------------------------------------------- recipe + overrides


def _set_dotted(data: dict[str, Any], key: str, value: Any, top: bool = True) -> None:
    """data[a][b] = value for key "a.b"; of TrainConfig's fields only mappings (`attempt`) have sub-keys."""
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    hint = get_type_hints(TrainConfig).get(head) if top else None
    node = data.setdefault(head, {})
    if not isinstance(node, dict) or (hint is not None and get_origin(hint) is not dict):
        raise UsageError(f"Cannot set {key!r}: {head!r} is not a mapping of keys.")
    _set_dotted(node, rest, value, top=False)


def parse_set(items: Sequence[str]) -> list[tuple[str, Any]]:
    """`key=value` strings → (key, YAML-parsed value) pairs."""
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value (e.g. --set attempt.prompt_length=10), got {item!r}.")
        try:
            pairs.append((key.strip(), _parse_yaml_value(text)))
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"--set {_clipped(item)}: {error}") from None
    return pairs


def _add_task_files(data: dict[str, Any], paths: Sequence[str]) -> None:
    """Read `--task-file`s into ``data["task_definitions"]`` (registering their tasks). They are the run's tasks
    unless the recipe or an option names the tasks, and give its k_shot unless one is set.

    Raises:
        UsageError: an invalid task file (naming it and the fix), two files of one name, different k_shots.
    """
    from attempt.tasks.user import read_task_file, register_definition

    definitions: dict[str, Any] = {}
    for path in paths:
        try:
            definition = register_definition(read_task_file(path), origin=str(path))
        except (ValueError, FileNotFoundError) as error:
            raise UsageError(str(error)) from None
        if definition["name"] in definitions:
            raise UsageError(
                f"{path}: another --task-file already defines a task named {definition['name']!r}."
            )
        definitions[definition["name"]] = definition
    data["task_definitions"] = {**(data.get("task_definitions") or {}), **definitions}
    data.setdefault("tasks", list(definitions))
    shots = sorted({d["k_shot"] for d in definitions.values() if d["k_shot"] is not None})
    if len(shots) > 1 and data.get("k_shot") is None:
        raise UsageError(f"The task files ask for different k_shot values {shots}; pass one with --k-shot.")
    if shots and data.get("k_shot") is None:
        data["k_shot"] = shots[0]


def _add_split_files(data: dict[str, Any], args: argparse.Namespace) -> None:
    """`--train-file/--validation-file/--test-file [TASK=]FILE`, `--columns [TASK:]COLUMN=FIELD` and `--labels
    [TASK:]VALUE=LABEL` into ``data["data_files"]`` (`attempt.tasks.data_files`); TASK may be left out when the
    run has one task.

    Raises:
        UsageError: no TASK with several tasks, a --columns entry that is not COLUMN=FIELD, a --labels entry
            that is not VALUE=LABEL.
    """
    from attempt.tasks.data_files import SPLITS

    options = (*(f"{split}_file" for split in SPLITS), "columns", "labels")
    if not any(getattr(args, name, None) for name in options):
        return  # the recipe's own data_files are TrainConfig's to check
    tasks = data.get("tasks") or list(TrainConfig.tasks)
    tasks = [tasks] if isinstance(tasks, str) else tasks
    recorded = data.get("data_files") or {}
    shapes = isinstance(tasks, list) and isinstance(recorded, dict) and all(isinstance(s, dict) for s in recorded.values())  # fmt: skip
    if not shapes:
        raise UsageError("--train-file, --validation-file, --test-file, --columns and --labels add to the recipe's tasks "
                         "(a list of names) and data_files ({task: {split: file}}); fix those in the recipe.")  # fmt: skip
    files: dict[str, Any] = {task: dict(spec) for task, spec in recorded.items()}
    for split in SPLITS:
        for item in getattr(args, f"{split}_file", None) or []:
            task, path = task_and_value(item, "=", f"--{split}-file", tasks)
            files.setdefault(task, {})[split] = path
    for task, columns in column_options(getattr(args, "columns", None) or [], tasks).items():
        files.setdefault(task, {}).setdefault("columns", {}).update(columns)
    for task, labels in label_options(getattr(args, "labels", None) or [], tasks).items():
        files.setdefault(task, {}).setdefault("labels", {}).update(labels)
    if files:
        data["data_files"] = files


def task_and_value(item: str, separator: str, option: str, tasks: Sequence[str]) -> tuple[str, str]:
    """``TASK<separator>VALUE`` → (TASK, VALUE) when TASK is one of `tasks`; a bare VALUE is the only task's.

    Raises:
        UsageError: a bare VALUE when there are several tasks.
    """
    head, found, rest = item.partition(separator)
    if found and head in tasks:
        return head, rest
    if len(tasks) != 1:
        raise UsageError(f"{option} {item}: the run has several tasks ({', '.join(tasks)}); write "
                         f"{option} TASK{separator}{item}.")  # fmt: skip
    return tasks[0], item


def column_options(items: Sequence[str], tasks: Sequence[str]) -> dict[str, dict[str, str]]:
    """`--columns [TASK:]COLUMN=FIELD` options → ``{task: {column: field}}``.

    Raises:
        UsageError: an item that is not COLUMN=FIELD, or without TASK when there are several tasks.
    """
    columns: dict[str, dict[str, str]] = {}
    for item in items:
        task, pair = task_and_value(item, ":", "--columns", tasks)
        column, found, field_name = pair.partition("=")
        if not found or not column or not field_name:
            raise UsageError(f"--columns {item}: write COLUMN=FIELD (your file's column, the task's field), "
                             "e.g. --columns premise=sentence1.")  # fmt: skip
        columns.setdefault(task, {})[column] = field_name
    return columns


LABELS_HELP = (
    "your files' label VALUE means the task's LABEL (a label word or its id), e.g. --labels entails=entailment "
    "neutral=not_entailment; TASK: when the run has several tasks. Recorded in data_files"
)


def add_labels_argument(parser: argparse.ArgumentParser, help: str = LABELS_HELP) -> None:
    """--labels [TASK:]VALUE=LABEL ... (several after one flag, or the flag repeated)."""
    parser.add_argument(
        "--labels", action="extend", nargs="+", default=[], metavar="[TASK:]VALUE=LABEL", help=help
    )


def label_options(items: Sequence[str], tasks: Sequence[str]) -> dict[str, dict[str, str]]:
    """`--labels [TASK:]VALUE=LABEL` options → ``{task: {value: label}}``.

    Raises:
        UsageError: an item that is not VALUE=LABEL, or without TASK when there are several tasks.
    """
    labels: dict[str, dict[str, str]] = {}
    for item in items:
        task, pair = task_and_value(item, ":", "--labels", tasks)
        value, found, label = pair.partition("=")
        if not found or not value.strip() or not label.strip():
            raise UsageError(f"--labels {item}: write VALUE=LABEL (your files' label, the task's label word), "
                             "e.g. --labels entails=entailment neutral=not_entailment.")  # fmt: skip
        labels.setdefault(task, {})[value.strip()] = label.strip()
    return labels


def build_config(args: argparse.Namespace, mode: str | None = None) -> TrainConfig:
    """The run's TrainConfig: recipe YAML, then typed options, then --set, validated.

    Raises:
        UsageError: a missing or malformed recipe, an unknown key (listing the valid ones), an invalid value.
    """
    import yaml

    data: dict[str, Any] = {}
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"No such recipe file: {path}")
        try:
            data = load_yaml(decoded(path)) or {}
        except yaml.YAMLError as error:
            raise UsageError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} must hold a mapping of TrainConfig keys, e.g. 'mode: attempt'.")
        if path.name == CONFIG_FILE:  # a run's own saved config (resuming it): its paths are relative to it
            data = resolve_paths(data, path.parent)
    if mode is not None and data.get("mode", mode) != mode:
        raise UsageError(f"{args.config} has mode {data['mode']!r}, but this command trains mode {mode!r}.")
    overrides = [(k[len("config:") :], v) for k, v in vars(args).items() if k.startswith("config:")]
    for key, value in overrides + parse_set(args.set or []):
        _set_dotted(data, key, value)
    if mode is not None:
        data["mode"] = mode
    if getattr(args, "task_file", None):
        _add_task_files(data, args.task_file)
    _add_split_files(data, args)
    try:
        config = TrainConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    from attempt.tasks import get_task

    try:
        config.register_tasks()  # the run's own tasks (a recipe's or a resumed run's task_definitions)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for task in config.tasks:
        get_task(task)  # an unknown task fails now, listing the known ones, not after loading a backbone
    return config
