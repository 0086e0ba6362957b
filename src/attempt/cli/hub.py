"""Sharing on the Hugging Face Hub: `attempt prompts push / pull` (a prompt library) and `attempt push` (a run).

    attempt prompts push prompts/smollm2-135m-instruct your-name/smollm2-source-prompts
    attempt prompts pull hf://your-name/smollm2-source-prompts --into prompts/shared
    attempt push runs/attempt-cb your-name/attempt-cb
    attempt predict hf://your-name/attempt-cb --inputs inputs.jsonl --output predictions.jsonl

Pushing needs a Hub token with write access (`hf auth login`, or HF_TOKEN); HF_ENDPOINT names another Hub.
"""

from __future__ import annotations

import argparse

from attempt.cli.options import UsageError


def _add_push_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--message", help="the commit message")


def _pushed(result: dict, what: str) -> None:
    deleted = f"; removed {', '.join(result['deleted'])}" if result["deleted"] else ""
    print(
        f"Pushed {what} to hf://{result['repo']}: {len(result['files'])} files{deleted}.\n{result['commit']}"
    )


def add_prompts_push_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt prompts push`."""
    parser.add_argument("library_dir", metavar="LIBRARY", help="the prompt library folder to push")
    parser.add_argument("repo", metavar="REPO", help="the Hub model repository, owner/name")
    _add_push_options(parser)


def run_prompts_push(args: argparse.Namespace) -> int:
    """Push a prompt library to a Hub model repository (each prompt checked first; the repository then holds
    exactly the library's prompts and a card)."""
    from attempt.prompts.hub import push_library

    _pushed(
        push_library(args.library_dir, args.repo, private=args.private, message=args.message),
        args.library_dir,
    )
    return 0


def add_prompts_pull_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt prompts pull`."""
    parser.add_argument("repo", metavar="REPO", help="hf://owner/name[@revision], or owner/name")
    parser.add_argument("--into", metavar="DIR", help="the library folder to pull into (default: ./<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace different prompts of the same name")


def run_prompts_pull(args: argparse.Namespace) -> int:
    """Pull a prompt library from the Hub into a local library folder; every prompt is checked against the hash
    its JSON records, and nothing is written unless all pass."""
    from attempt.prompts.hub import pull_library
    from attempt.utils.hub import parse_location

    repo = parse_location(args.repo)
    into = args.into or (repo.name if repo is not None else None)
    if into is None:  # a local folder: pulling from it checks it into another
        raise UsageError(f"{args.repo} is a local folder: name the library to pull into with --into DIR.")
    names = pull_library(args.repo, into, overwrite=args.overwrite)
    print(
        f"Pulled {len(names)} prompts ({', '.join(names)}) from {args.repo} into {into}, each checked by its hash."
    )
    return 0


# `attempt prompts ACTION`: name → (add_arguments, run, one-line help)
PROMPT_ACTIONS = {
    "push": (add_prompts_push_arguments, run_prompts_push, "push a prompt library to the Hugging Face Hub"),
    "pull": (
        add_prompts_pull_arguments,
        run_prompts_pull,
        "pull a prompt library from the Hub (hash-checked)",
    ),
}


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt push`."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished training run's output_dir")
    parser.add_argument("repo", metavar="REPO", help="the Hub model repository, owner/name")
    _add_push_options(parser)


def run_push(args: argparse.Namespace) -> int:
    """Push a trained run's best/ to a Hub model repository: the trained part, the source prompts it mixes and
    a model card with the run's scores; `attempt predict hf://owner/name` then predicts with it."""
    from attempt.runs.hub import push_run

    _pushed(push_run(args.run_dir, args.repo, private=args.private, message=args.message), args.run_dir)
    return 0


__all__ = ["PROMPT_ACTIONS", "add_push_arguments", "run_push"]
