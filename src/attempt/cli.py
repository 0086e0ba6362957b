"""The `attempt` command: parse the command line, call the library, print.

    attempt train-source --config configs/cpu/minilm_source_sst2.yaml
    attempt train --config configs/cpu/minilm_attempt_rte.yaml --max-steps 50 --set attempt.prompt_length=10
    attempt evaluate runs/attempt_rte --split test
    attempt predict runs/attempt_rte --inputs inputs.jsonl --output predictions.jsonl
    attempt tasks --task rte
    attempt prompts --library prompts list
    attempt plot runs/attempt_rte

The training options are generated from `TrainConfig`'s fields (types, defaults and help text from its
docstring), so the command line cannot drift from the YAML recipes. Each subcommand is a pair of functions
registered in `COMMANDS`: `add_arguments(parser)` and `run(args) -> exit code`.

User mistakes (a missing file, an unknown task or config key, an invalid value) print one line on stderr and
exit with code 2; set ATTEMPT_DEBUG=1 (or pass --traceback) to see the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import os
import re
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from attempt.config import AttemptConfig, TrainConfig

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake on the command line or in the files it names; printed as one line, exit code 2."""


# ------------------------------------------------------------------------------------------ formatting
def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics_table(metrics: dict[str, Any]) -> str:
    """Rows of (task, metric, value) from {task: {metric: value}} or a flat {metric: value}."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [(key, name, _number(v)) for name, v in value.items() if not isinstance(v, (dict, list))]
        elif not isinstance(value, list):
            rows.append(("all", key, _number(value)))
    return _table(rows, ("task", "metric", "value"))


class _Flag(argparse.BooleanOptionalAction):
    """`--x` / `--no-x` (and the underscore spellings), shown once in the usage line."""

    def format_usage(self) -> str:
        return " | ".join(self.option_strings[:2])


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows a config option once (`--max-steps INT`, `--group-by-length / --no-group-by-length`), not
    every underscore alias."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.dest.startswith("config:"):
            return super()._format_action_invocation(action)
        if isinstance(action, _Flag):
            return " / ".join(action.option_strings[:2])
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{action.option_strings[0]} {metavar}"


def _add_parser(subparsers, name: str, run: Callable, **kwargs) -> argparse.ArgumentParser:
    doc = inspect.getdoc(run) or ""
    return subparsers.add_parser(
        name, help=doc.splitlines()[0] if doc else None, description=doc, formatter_class=_Formatter, **kwargs
    )


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
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def _parse_yaml_value(text: str) -> Any:
    import yaml

    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid YAML value ({error})") from error


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


def dataclass_options(cls: type, prefix: str = "", skip: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """(config key, argparse kwargs) for the fields of dataclass `cls`, in field order: the type from the
    type hints, the help from the docstring's Attributes section, no default (so only given options count).
    Mapping fields are left out (set them with dotted keys)."""
    hints, docs, options = get_type_hints(cls), attribute_docs(cls), []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kwargs = _option_kwargs(hints[f.name])
        if kwargs is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = list(default) if isinstance(default, tuple) else default
        text = docs.get(f.name, "").replace("%", "%%")
        kwargs["help"] = f"{text} [{prefix}{f.name}; default: {shown}]"
        options.append((prefix + f.name, kwargs))
    return options


def add_config_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one option per TrainConfig field (and per AttemptConfig field as --attempt.<field>)."""
    groups = [
        ("training options (TrainConfig)", dataclass_options(TrainConfig, skip=skip)),
        (
            "prompt options (AttemptConfig; YAML: the `attempt:` mapping)",
            dataclass_options(AttemptConfig, "attempt.", skip=("method", "tasks")),
        ),
    ]
    for title, options in groups:
        group = parser.add_argument_group(
            title, "Override the recipe; `--max-steps` and `--max_steps` are the same option."
        )
        for key, kwargs in options:
            flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
            group.add_argument(*flags, dest=f"config:{key}", default=argparse.SUPPRESS, **kwargs)


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
            raise UsageError(f"--set {item}: {error}") from None
    return pairs


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
            data = load_yaml(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise UsageError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} must hold a mapping of TrainConfig keys, e.g. 'mode: attempt'.")
    if mode is not None and data.get("mode", mode) != mode:
        raise UsageError(f"{args.config} has mode {data['mode']!r}, but this command trains mode {mode!r}.")
    overrides = [(k[len("config:"):], v) for k, v in vars(args).items() if k.startswith("config:")]
    for key, value in overrides + parse_set(args.set or []):
        _set_dotted(data, key, value)
    if mode is not None:
        data["mode"] = mode
    try:
        config = TrainConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    from attempt.tasks import get_task

    for task in config.tasks:
        get_task(task)  # an unknown task fails now, listing the known ones, not after loading a backbone
    return config


# ------------------------------------------------------------------------------------------- training
def _add_train_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    parser.usage = "%(prog)s [--config RECIPE.yaml] [OPTION ...] [--set KEY=VALUE ...] [--print-config] [--quiet]"
    parser.add_argument("--config", "-c", metavar="RECIPE.yaml", help="a YAML recipe (see configs/); options below override it")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[],
        help="override any config key with a YAML value; dotted keys reach into the `attempt:` mapping, "
        "e.g. --set attempt.prompt_length=10 --set tasks=[rte,mrpc]. Applied after the options below; repeatable.",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser, skip=skip)


def _train(args: argparse.Namespace, mode: str | None) -> int:
    config = build_config(args, mode)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from attempt.train import TrainingDiverged, train

    print(f"Training mode={config.mode} on {', '.join(config.tasks)} with {config.backbone} → {config.output_dir}")
    try:
        result = train(config, progress=not args.quiet)  # writes output_dir/train_config.json (resolved)
    except TrainingDiverged as error:
        print(f"attempt {args.command}: training diverged: {error}", file=sys.stderr)
        return 1
    print(f"\nDone in {result.wall_time_s:.1f}s: {result.steps} steps, "
          f"{result.trainable_parameters:,} trainable parameters; best step {result.best_step}.")
    for title, metrics in (("validation (best)", result.best_metrics), ("test", result.test_metrics)):
        if metrics:
            print(f"\n{title}:\n{_metrics_table(metrics)}")
    if config.mode == "source":
        name = config.prompt_name or config.tasks[0]
        print(f"\nSource prompt {name!r} added to the library {config.library}.")
    print(f"\nOutputs in {result.output_dir}")
    return 0


def add_train_source_arguments(parser: argparse.ArgumentParser) -> None:
    _add_train_arguments(parser, skip=("mode",))


def run_train_source(args: argparse.Namespace) -> int:
    """Train a source prompt (prompt tuning on one source task) and add it to the prompt library.

    The same options as `attempt train` with mode fixed to "source"; the prompt is stored as
    <library>/<prompt_name or task>.safetensors. Options override the recipe, --set overrides both.
    """
    return _train(args, mode="source")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_train_arguments(parser)


def run_train(args: argparse.Namespace) -> int:
    """Train ATTEMPT (single- or multi-task) or a baseline (--mode prompt_tuning|spot|finetune|lora).

    Writes to output_dir: train_config.json (the resolved config), metrics.jsonl, checkpoint/, best/,
    results.json, attention.json and the test predictions. Options override the recipe, --set overrides both.
    """
    return _train(args, mode=None)


# ----------------------------------------------------------------------------------------- evaluation
def _run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise UsageError(f"No such run directory: {run_dir}")
    return run_dir


def _add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output_dir")
    parser.add_argument(
        "--backbone", help="load the backbone from here instead of the one recorded in the run (moved folders)"
    )
    parser.add_argument("--batch-size", type=int, help="examples per batch (default: the run's eval_batch_size)")
    parser.add_argument(
        "--method", choices=("rank", "generate"), help="rank label verbalizers or generate (default: the run's)"
    )


def _load(args: argparse.Namespace):
    from attempt.evaluate import load_run

    backbone = tokenizer = None
    if args.backbone is not None:
        from attempt.resolve import load_backbone

        backbone, tokenizer, _ = load_backbone(args.backbone)
    return load_run(_run_dir(args.run_dir), backbone=backbone, tokenizer=tokenizer)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_load_arguments(parser)
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="which split of the paper's protocol to score (default: test)")
    parser.add_argument("--data-dir", help="local benchmark mirror (default: the run's data_dir, $ATTEMPT_DATA_DIR)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="score only these of the run's tasks")
    parser.add_argument("--limit", type=int, help="score at most N examples per task (default: the run's eval_limit)")
    parser.add_argument("--out", metavar="DIR", help="write metrics and predictions here instead of RUN_DIR")


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a trained run on the validation or test split of the paper's protocol; print a metrics table.

    Writes <out>/eval_<split>.json (metrics per task) and <out>/eval_<split>_predictions.jsonl, where <out>
    is RUN_DIR unless --out is given.
    """
    from attempt.evaluate import evaluate
    from attempt.tasks import get_task
    from attempt.train import load_task_data

    model, tokenizer, config = _load(args)
    tasks = [get_task(t).name for t in (args.tasks or config.tasks)]
    unknown = sorted(set(tasks) - {get_task(t).name for t in config.tasks})
    if unknown:
        raise UsageError(f"The run was not trained on {', '.join(unknown)}; its tasks: {', '.join(config.tasks)}.")
    # the very splits training used (the paper's protocol, same seed), with this command's overrides
    data_config = dataclasses.replace(
        config, tasks=tuple(tasks), data_dir=args.data_dir or config.data_dir,
        eval_limit=args.limit if args.limit is not None else config.eval_limit,
    )
    task_rows = {task: splits[args.split] for task, splits in load_task_data(data_config).items()}
    out = Path(args.out) if args.out else Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / f"eval_{args.split}_predictions.jsonl"
    attention_path = out / f"eval_{args.split}_attention.json"
    metrics = evaluate(
        model, tokenizer, task_rows, method=args.method or config.eval_method,
        batch_size=args.batch_size or config.eval_batch_size, max_source_length=config.max_source_length,
        max_target_length=config.max_target_length, pad_to=config.pad_to,
        predictions_path=predictions_path, attention_path=attention_path,
    )
    metrics_path = out / f"eval_{args.split}.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(f"{args.split} ({', '.join(f'{t}: {len(r)}' for t, r in task_rows.items())} examples)")
    print(_metrics_table(metrics))
    print(f"\nMetrics: {metrics_path}\nPredictions: {predictions_path}")
    if attention_path.is_file():
        print(f"Mean attention weights: {attention_path}")
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    _add_load_arguments(parser)
    parser.add_argument("--inputs", required=True, metavar="FILE.jsonl",
                        help='one JSON object per line: "task" plus the task\'s fields (tasks may be mixed)')
    parser.add_argument("--output", required=True, metavar="FILE.jsonl", help="where to write one prediction per line")


def run_predict(args: argparse.Namespace) -> int:
    """Predict with a trained run on your own inputs (JSON lines; each has "task" and that task's fields).

    Example line: {"task": "rte", "sentence1": "A man is sleeping.", "sentence2": "A man is awake."}
    """
    from attempt.data import read_jsonl
    from attempt.evaluate import predict
    from attempt.tasks import get_task

    inputs_path = Path(args.inputs)
    if not inputs_path.is_file():
        raise UsageError(f"No such inputs file: {inputs_path}")
    inputs = read_jsonl(inputs_path)
    if not inputs:
        raise UsageError(f"{inputs_path} has no inputs.")
    for number, row in enumerate(inputs, 1):
        if "task" not in row:
            raise UsageError(f'{inputs_path} line {number}: no "task" field (e.g. {{"task": "rte", ...}}).')
        get_task(row["task"])  # an unknown task fails here with the list of known ones
    model, tokenizer, config = _load(args)
    predictions = predict(
        model, tokenizer, inputs, method=args.method or config.eval_method,
        batch_size=args.batch_size or config.eval_batch_size, max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    print(f"{len(predictions)} predictions → {output}")
    return 0


# ---------------------------------------------------------------------------------------------- tasks
def add_tasks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", metavar="NAME", help="show one task in detail (with a formatted example if the data is available)")
    parser.add_argument("--data-dir", help="local benchmark mirror for the example (default: $ATTEMPT_DATA_DIR)")


def _example(task, data_dir: str | None) -> str:
    from attempt.data import resolve_data_dir

    if resolve_data_dir(data_dir) is None:
        return "(pass --data-dir or set ATTEMPT_DATA_DIR to show an example)"
    from attempt.data import load_split

    try:
        row = load_split(task, task.validation_split, data_dir)[0]
    except (OSError, ValueError) as error:
        return f"(no example: {error})"
    source, target = task.format(row)
    return f"source: {source}\ntarget: {target}"


def _protocol(t, short: bool = False) -> str:
    """The paper's split protocol for task `t` (see `attempt.splits.paper_splits`)."""
    if t.test_split:
        return f"test = {t.test_split}" if short else (
            f"validation = {t.validation_split}, test = {t.test_split}, full train")
    if t.is_small:
        return "halve validation" if short else "small: official validation halved into validation / test"
    return "hold out 1k train" if short else "large: 1,000 train rows held out as validation, official validation = test"


def run_tasks(args: argparse.Namespace) -> int:
    """List the task registry (Hub source, kind, metrics, official train size, split protocol) or show one task."""
    from attempt.tasks import get_task, list_tasks

    if args.task is None:
        rows = []
        for name in list_tasks():
            t = get_task(name)
            source = t.hub_id + (f"/{t.config}" if t.config else "")
            protocol = _protocol(t, short=True)
            rows.append((t.name, source, t.kind, ",".join(t.metrics), f"{t.official_train_size:,}", protocol))
        print(_table(rows, ("task", "source", "kind", "metrics", "train size", "paper split")))
        return 0
    t = get_task(args.task)
    labels = ", ".join(f"{i}={w}" for i, w in enumerate(t.label_words)) if t.label_words else "-"
    fields = [
        ("task", t.name), ("source", f"{t.hub_id} ({t.config or 'default'})"), ("kind", t.kind),
        ("fields", ", ".join(t.fields)), ("label field", t.label_field), ("labels", labels),
        ("metrics", ", ".join(t.metrics) + " (the first is the headline)"),
        ("official train size", f"{t.official_train_size:,}"),
        ("splits", f"train={t.train_split}, validation={t.validation_split}"
         + (f", test={t.test_split}" if t.test_split else "")),
        ("paper protocol", _protocol(t)),
    ]
    if t.subset:
        fields.append(("subset", t.subset))
    width = max(len(k) for k, _ in fields)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in fields))
    print(f"\nexample:\n{_example(t, args.data_dir)}")
    return 0


# -------------------------------------------------------------------------------------------- prompts
def add_prompts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", default="prompts", metavar="DIR", help="the prompt library folder (default: prompts)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the prompts with task, backbone, shape and hash")
    listing.add_argument("--json", action="store_true", help="print the metadata as JSON")
    add = actions.add_parser("add", help="add a prompt from a .safetensors file (key 'prompt' or its only tensor)")
    add.add_argument("name", help="library name, e.g. mnli")
    add.add_argument("file", metavar="FILE.safetensors")
    remove = actions.add_parser("remove", help="delete a prompt")
    remove.add_argument("name")
    rename = actions.add_parser("rename", help="rename a prompt (content and hash unchanged)")
    rename.add_argument("old")
    rename.add_argument("new")
    imp = actions.add_parser("import", help="import a prompt of the original ATTEMPT code (.pt) or a PEFT adapter")
    imp.add_argument("source", metavar="FILE_OR_DIR", help="a torch.save'd [m, d] tensor, or a PEFT adapter folder/file")
    imp.add_argument("--name", required=True, help="library name for the imported prompt")
    imp.add_argument("--format", choices=("original", "peft"),
                     help="default: peft for a folder or .safetensors file, original otherwise")
    for sub in (add, imp):
        sub.add_argument("--task", help="the task the prompt was trained on (metadata)")
        sub.add_argument("--backbone", help="the backbone it was trained with, e.g. google-t5/t5-base (metadata)")
    add.add_argument("--overwrite", action="store_true", help="replace a prompt of the same name")
    export = actions.add_parser("export", help="write a prompt as a PEFT prompt-tuning adapter")
    export.add_argument("name")
    export.add_argument("out_dir", metavar="OUT_DIR")
    export.add_argument("--task-type", required=True, choices=("CAUSAL_LM", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION"),
                        help="PEFT task type of the backbone (SEQ_2_SEQ_LM for T5)")
    export.add_argument("--base-model", help="base_model_name_or_path to record (default: the prompt's backbone)")
    for sub in (listing, add, remove, rename, imp, export):  # --library also after the action
        sub.add_argument("--library", default=argparse.SUPPRESS, metavar="DIR", help="the prompt library folder")


def _read_safetensors_prompt(path: Path):
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UsageError(f"No such prompt file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if "prompt" not in keys and len(keys) != 1:
                raise UsageError(f"{path} has tensors {', '.join(keys)}; expected one, or one named 'prompt'.")
            return f.get_tensor("prompt" if "prompt" in keys else keys[0])
    except SafetensorError as error:
        raise UsageError(f"{path} is not a safetensors file ({error}).") from None


def run_prompts(args: argparse.Namespace) -> int:
    """Manage a prompt library: list | add | remove | rename | import | export.

    A library is a folder of <name>.safetensors + <name>.json; `attempt train-source` adds to it and
    `attempt train` reads source prompts from it.
    """
    from attempt.prompts import PromptLibrary, SourcePrompt

    library = PromptLibrary(args.library)
    if args.action == "list":
        entries = library.list()
        if args.json:
            print(json.dumps(entries, indent=2))
        elif not entries:
            print(f"No prompts in {library.root}.")
        else:
            rows = [(e["name"], e.get("task"), e.get("backbone"), f"{e['length']}×{e['hidden_size']}",
                     (e.get("hash") or "")[:19]) for e in entries]
            print(_table(rows, ("name", "task", "backbone", "m×d", "hash")))
    elif args.action == "add":
        prompt = SourcePrompt(args.name, _read_safetensors_prompt(Path(args.file)), task=args.task,
                              backbone=args.backbone, training={"added_from": str(args.file)})
        path = library.add(prompt, overwrite=args.overwrite)
        print(f"Added {args.name!r} ({prompt.length}×{prompt.hidden_size}) → {path}")
    elif args.action == "remove":
        library.remove(args.name)
        print(f"Removed {args.name!r} from {library.root}")
    elif args.action == "rename":
        library.rename(args.old, args.new)
        print(f"Renamed {args.old!r} → {args.new!r}")
    elif args.action == "import":
        source = Path(args.source)
        if not source.exists():
            raise UsageError(f"No such file or folder: {source}")
        fmt = args.format or ("peft" if source.is_dir() or source.suffix == ".safetensors" else "original")
        reader = library.import_peft if fmt == "peft" else library.import_original
        prompt = reader(source, args.name, task=args.task, backbone=args.backbone)
        print(f"Imported {args.name!r} ({prompt.length}×{prompt.hidden_size}, {fmt} format) into {library.root}")
    elif args.action == "export":
        kwargs = {"task_type": args.task_type}
        if args.base_model:
            kwargs["base_model_name_or_path"] = args.base_model
        out = library.export_peft(args.name, args.out_dir, **kwargs)
        print(f"Exported {args.name!r} as a PEFT {args.task_type} adapter → {out}")
    return 0


# ----------------------------------------------------------------------------------------------- plot
def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output_dir")
    parser.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: RUN_DIR)")


def run_plot(args: argparse.Namespace) -> int:
    """Plot a run's attention heatmap and training curves as PNGs; prints their paths.

    attention.png from attention.json (ATTEMPT runs: mean weight of each source prompt per task) and
    training_curves.png from metrics.jsonl. Needs matplotlib (pip install attempt-tuning[plot]).
    """
    from attempt import plot

    run_dir = _run_dir(args.run_dir)
    out = Path(args.out) if args.out else run_dir
    attention_path, metrics_path = run_dir / "attention.json", run_dir / "metrics.jsonl"
    if not attention_path.is_file() and not metrics_path.is_file():
        raise UsageError(f"{run_dir} has neither attention.json nor metrics.jsonl: is it a training run's output_dir?")
    out.mkdir(parents=True, exist_ok=True)
    if attention_path.is_file():
        attention = json.loads(attention_path.read_text())
        path = out / "attention.png"
        plot.attention_heatmap(attention, path, title=f"Attention over source prompts ({run_dir.name})")
        print(f"Attention heatmap: {path}")
    else:
        print(f"No attention.json in {run_dir} (only ATTEMPT runs have one); no heatmap.")
    if metrics_path.is_file():
        path = out / "training_curves.png"
        plot.training_curves(metrics_path, path)
        print(f"Training curves: {path}")
    return 0


# ----------------------------------------------------------------------------------------- quickstart
def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    from attempt.quickstart import QuickstartConfig

    group = parser.add_argument_group("quickstart options (QuickstartConfig)")
    for key, kwargs in dataclass_options(QuickstartConfig):
        flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*flags, dest=f"config:{key}", default=argparse.SUPPRESS, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_quickstart(args: argparse.Namespace) -> int:
    """Train small source prompts, then ATTEMPT and prompt tuning on a target; print a table, draw a heatmap.

    Defaults: all-MiniLM-L6-v2; source prompts for sst2, mnli and qnli; target rte; about 10 minutes on
    2 CPU cores. Data come from --data-dir, else ATTEMPT_DATA_DIR, else the Hugging Face Hub. Source
    prompts already in OUT/prompts with the same settings are reused. Everything lands under --out
    (default ./attempt-quickstart).
    """
    from attempt.quickstart import QuickstartConfig
    from attempt.quickstart import run_quickstart as run

    given = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("config:")}
    run(QuickstartConfig.from_dict(given), progress=not args.quiet)
    return 0


# -------------------------------------------------------------------------------------- the registry
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attempt", formatter_class=_Formatter,
        description="ATTEMPT: attentional mixtures of soft prompts (Asai et al., EMNLP 2022) on any HF backbone.",
        epilog="Run `attempt COMMAND --help` for a command's options.",
    )
    parser.add_argument("--traceback", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        sub = _add_parser(commands, name, run)
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
        return int(args.run(args) or 0)
    except BrokenPipeError:  # `attempt tasks | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, FileNotFoundError, FileExistsError, KeyError, ValueError, ImportError, OSError) as error:
        # the library's errors for bad input (unknown task/key/prompt, missing file or split, invalid value,
        # backbone not found, optional dependency missing) say what is wrong and what to do
        if debug:
            raise
        print(f"attempt {args.command}: error: {_message(error)}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
