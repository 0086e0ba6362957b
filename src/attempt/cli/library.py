"""The commands that browse what the library knows: `attempt tasks` (the task registry) and
`attempt prompts` (a prompt library folder)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attempt.cli import hub, ranking
from attempt.cli.options import UsageError
from attempt.cli.tables import text_table

# the actions of `attempt prompts` defined in their own modules: name → (add_arguments, run, one-line help)
MORE_ACTIONS = {**ranking.PROMPT_ACTIONS, **hub.PROMPT_ACTIONS}


def add_tasks_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt tasks`: a task NAME (or --task NAME) shows that task."""
    parser.add_argument(
        "name", nargs="?", metavar="NAME", help="show one task in detail (with a formatted example if the data "
        "is available); without it, list them all",
    )  # fmt: skip
    parser.add_argument("--task", metavar="NAME", help="the same as NAME")
    parser.add_argument(
        "--data-dir", help="local benchmark mirror for the example (default: $ATTEMPT_DATA_DIR)"
    )
    parser.add_argument(
        "--task-file",
        action="append",
        metavar="TASK.yaml",
        default=[],
        help="also list your own task of this task file (checked as `attempt train` does); repeatable",
    )


def _example(task, data_dir: str | None) -> str:
    from attempt.data.sources import resolve_data_dir

    if not task.data_files and resolve_data_dir(data_dir) is None:  # a task file's own files need no mirror
        return "(pass --data-dir or set ATTEMPT_DATA_DIR to show an example)"
    from attempt.data.sources import load_split

    try:
        row = load_split(task, task.validation_split, data_dir)[0]
    except (OSError, ValueError) as error:
        return f"(no example: {error})"
    source, target = task.format(row)
    return f"source: {source}\ntarget: {target}"


def _protocol(t, short: bool = False) -> str:
    """The paper's split protocol for task `t` (see `attempt.data.splits.paper_splits`)."""
    if t.test_split:
        return (
            f"test = {t.test_split}"
            if short
            else (f"validation = {t.validation_split}, test = {t.test_split}, full train")
        )
    if t.is_small:
        return "halve validation" if short else "small: official validation halved into validation / test"
    return (
        "hold out 1k train"
        if short
        else "large: 1,000 train rows held out as validation, official validation = test"
    )


def _source(t, short: bool = False) -> str:
    """Where a task's rows come from: a Hub dataset (and config), or a task file's own files."""
    if t.data_files:
        return "your files" if short else ", ".join(f"{split}={path}" for split, path in t.data_files)
    if short:
        return t.hub_id + (f"/{t.config}" if t.config else "")
    return f"{t.hub_id} ({t.config or 'default'})"


def _metrics(t) -> str:
    """A task's metrics, the binary F1 with the class it scores (`attempt.tasks.metrics.f1`: label id 1)."""
    positive = t.label_words[1] if t.label_words and len(t.label_words) > 1 else "label 1"
    named = {
        "f1": f"f1 (F1 of class 1 = {positive})",
        "f1a": f"f1a (F1 of class 1 = {positive}, over all answers)",
    }
    return ", ".join(named.get(m, m) for m in t.metrics) + " (the first is the headline)"


def run_tasks(args: argparse.Namespace) -> int:
    """List the task registry (Hub source, kind, metrics, official train size, split protocol) or show one task
    (`attempt tasks rte`); --task-file adds your own tasks to both."""
    from attempt.tasks import get_task, list_tasks
    from attempt.tasks.user import read_task_file, register_definition

    for path in args.task_file:
        try:
            register_definition(read_task_file(path), origin=str(path))
        except (ValueError, FileNotFoundError) as error:
            raise UsageError(str(error)) from None
    if args.name and args.task and args.name != args.task:
        raise UsageError(f"Two tasks named: {args.name} and --task {args.task}; name one.")
    name = args.name or args.task
    if name is None:
        rows = []
        for name in list_tasks():
            t = get_task(name)
            source = _source(t, short=True)
            size = f"{t.official_train_size:,}" if t.defined_in is None else "-"  # yours: no official size
            rows.append((t.name, source, t.kind, ",".join(t.metrics), size, _protocol(t, short=True)))
        print(text_table(rows, ("task", "source", "kind", "metrics", "train size", "paper split")))
        return 0
    t = get_task(name)
    labels = ", ".join(f"{i}={w}" for i, w in enumerate(t.label_words)) if t.label_words else "-"
    fields = [
        ("task", t.name),
        ("source", _source(t)),
        ("kind", t.kind),
        ("fields", ", ".join(t.fields)),
        ("label field", t.label_field),
        ("labels", labels),
        ("metrics", _metrics(t)),
        (
            "official train size",
            f"{t.official_train_size:,}" if t.defined_in is None else f"- (defined in {t.defined_in})",
        ),
        (
            "splits",
            f"train={t.train_split}, validation={t.validation_split}"
            + (f", test={t.test_split}" if t.test_split else ""),
        ),
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
    """The actions of `attempt prompts` (list, add, remove, rename, import, export) and their options."""
    parser.add_argument(
        "--library", default="prompts", metavar="DIR", help="the prompt library folder (default: prompts)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the prompts with task, backbone, shape and hash")
    listing.add_argument("--json", action="store_true", help="print the metadata as JSON")
    add = actions.add_parser(
        "add", help="add a prompt from a .safetensors file (key 'prompt' or its only tensor)"
    )
    add.add_argument("name", help="library name, e.g. mnli")
    add.add_argument("file", metavar="FILE.safetensors")
    remove = actions.add_parser("remove", help="delete a prompt")
    remove.add_argument("name")
    rename = actions.add_parser("rename", help="rename a prompt (content and hash unchanged)")
    rename.add_argument("old")
    rename.add_argument("new")
    imp = actions.add_parser(
        "import", help="import a prompt of the original ATTEMPT code (.pt) or a PEFT adapter"
    )
    imp.add_argument(
        "source", metavar="FILE_OR_DIR", help="a torch.save'd [m, d] tensor, or a PEFT adapter folder/file"
    )
    imp.add_argument("--name", required=True, help="library name for the imported prompt")
    imp.add_argument(
        "--format",
        choices=("original", "peft"),
        help="default: peft for a folder or .safetensors file, original otherwise",
    )
    for sub in (add, imp):
        sub.add_argument("--task", help="the task the prompt was trained on (metadata)")
        sub.add_argument(
            "--backbone", help="the backbone it was trained with, e.g. google-t5/t5-base (metadata)"
        )
    add.add_argument("--overwrite", action="store_true", help="replace a prompt of the same name")
    export = actions.add_parser("export", help="write a prompt as a PEFT prompt-tuning adapter")
    export.add_argument("name")
    export.add_argument("out_dir", metavar="OUT_DIR")
    export.add_argument(
        "--task-type",
        required=True,
        choices=("CAUSAL_LM", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION"),
        help="PEFT task type of the backbone (SEQ_2_SEQ_LM for T5)",
    )
    export.add_argument(
        "--base-model", help="base_model_name_or_path to record (default: the prompt's backbone)"
    )
    for sub in (listing, add, remove, rename, imp, export):  # --library also after the action
        sub.add_argument(
            "--library", default=argparse.SUPPRESS, metavar="DIR", help="the prompt library folder"
        )
    for name, (add_arguments, _, help_text) in MORE_ACTIONS.items():
        add_arguments(actions.add_parser(name, help=help_text))


def _read_safetensors_prompt(path: Path):
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UsageError(f"No such prompt file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if "prompt" not in keys and len(keys) != 1:
                raise UsageError(
                    f"{path} has tensors {', '.join(keys)}; expected one, or one named 'prompt'."
                )
            return f.get_tensor("prompt" if "prompt" in keys else keys[0])
    except SafetensorError as error:
        raise UsageError(f"{path} is not a safetensors file ({error}).") from None


def run_prompts(args: argparse.Namespace) -> int:
    """Manage a prompt library: list | add | remove | rename | import | export | rank | push | pull.

    A library is a folder of <name>.safetensors + <name>.json; `attempt train-source` adds to it and
    `attempt train` reads source prompts from it.
    """
    from attempt.prompts.library import PromptLibrary, SourcePrompt

    if args.action in MORE_ACTIONS:
        return MORE_ACTIONS[args.action][1](args)
    library = PromptLibrary(args.library)
    if args.action == "list":
        entries, damaged = library.scan()
        if args.json:
            print(json.dumps(entries, indent=2))
        elif not entries:
            print(f"No {'usable ' if damaged else ''}prompts in {library.root}.")
        else:
            rows = [
                (
                    e["name"],
                    e.get("task"),
                    e.get("backbone"),
                    f"{e['length']}×{e['hidden_size']}",
                    (e.get("hash") or "")[:19],
                )
                for e in entries
            ]
            print(text_table(rows, ("name", "task", "backbone", "m×d", "hash")))
        for problem in damaged.values():  # listed after the good ones, which stay usable
            print(f"attempt {args.command}: error: {problem}", file=sys.stderr)
        if damaged:
            return 2  # the exit code of every damaged-file error (attempt.cli.USAGE_ERROR)
    elif args.action == "add":
        prompt = SourcePrompt(
            args.name,
            _read_safetensors_prompt(Path(args.file)),
            task=args.task,
            backbone=args.backbone,
            training={"added_from": str(args.file)},
        )
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
        print(
            f"Imported {args.name!r} ({prompt.length}×{prompt.hidden_size}, {fmt} format) into {library.root}"
        )
    elif args.action == "export":
        kwargs = {"task_type": args.task_type}
        if args.base_model:
            kwargs["base_model_name_or_path"] = args.base_model
        out = library.export_peft(args.name, args.out_dir, **kwargs)
        print(f"Exported {args.name!r} as a PEFT {args.task_type} adapter → {out}")
    return 0
