"""Reads of the files this package writes that fail in one line naming the file and the way out, never with a
parser's traceback: a JSON file, a safetensors file (its content hash and finiteness checked), a ``torch.save``
file. The complement of `attempt.utils.storage`, whose writes record the hashes these reads check.

Every error is a `CorruptFile` (a ValueError, which the command line prints as one line). `nesting_problem` is
the check every reader of JSON or YAML (ours or yours) runs on what it parsed, before anything walks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

HASH_KEY = "weights_sha256"  # in a saved model's JSON config: the sha256 of its weights file
# No file attempt reads nests lists and mappings more than ~8 deep; far deeper is damage or an attack, and code
# that walks it recursively (repr, copy, json.dumps) would overflow Python's stack with a 3,000-line traceback.
MAX_NESTING = 100
NESTED_TOO_DEEP = f"lists or mappings nested more than {MAX_NESTING} deep"


class CorruptFile(ValueError):
    """A file is unreadable, damaged or changed since it was written; the message names it and the fix."""


def file_sha256(path: str | Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def nesting_problem(value: Any, max_values: int | None = None) -> str | None:
    """What makes a parsed JSON/YAML value unsafe to walk, or None: lists or mappings nested more than
    `MAX_NESTING` deep, or (YAML aliases can repeat one list many times over) more than `max_values` values.
    Walks `value` without recursion and stops at the first problem, so it is quick on any input."""
    stack, count = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if max_values is not None and count > max_values:
            return f"more than {max_values:,} values once its aliases (&name / *name) are expanded"
        if isinstance(item, (Mapping, list, tuple)):
            if depth > MAX_NESTING:
                return NESTED_TOO_DEEP
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, Mapping) else item)
            )
    return None


def _problem(path: Path, error: BaseException) -> str:
    detail = " ".join(str(error).split())[:200] or type(error).__name__
    return f"{path} is damaged or not what it should be ({detail})"


def read_json(path: str | Path, fix: str) -> Any:
    """The JSON value in `path`.

    Raises:
        FileNotFoundError: no such file. CorruptFile: not valid JSON, or lists or mappings nested more than
            `MAX_NESTING` deep (`fix` says what to do).
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptFile(f"{_problem(path, error)}. {fix}") from None
    except RecursionError:  # the parser's own stack overflowed: nested thousands deep
        raise CorruptFile(f"{_problem(path, ValueError(NESTED_TOO_DEEP))}. {fix}") from None
    problem = nesting_problem(value)
    if problem:
        raise CorruptFile(f"{_problem(path, ValueError(problem))}. {fix}")
    return value


def torch_load(path: str | Path, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line error for a damaged file."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CorruptFile(f"{_problem(path, error)}. {fix}") from None


def check_sha256(path: str | Path, expected: str | None, fix: str) -> None:
    """Raise `CorruptFile` when `path`'s bytes do not have the recorded hash (nothing to check when None)."""
    if expected and file_sha256(path) != expected:
        raise CorruptFile(
            f"{path} has changed since it was written (its sha256 differs from the recorded one). {fix}"
        )


def load_safetensors(
    path: str | Path, fix: str, sha256: str | None = None, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking its recorded hash (when given); all must be finite.

    Raises:
        FileNotFoundError: no such file. CorruptFile: unreadable, changed since written, or NaN/inf values.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such weights file: {path}. {fix}")
    check_sha256(path, sha256, fix)
    try:
        tensors = load_file(str(path), device=device)
    except Exception as error:  # noqa: BLE001 - SafetensorError is no ValueError / OSError
        raise CorruptFile(f"{_problem(path, error)}. {fix}") from None
    bad = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if bad:
        raise CorruptFile(f"{path} holds NaN or infinite values (in {', '.join(sorted(bad)[:5])}). {fix}")
    return tensors


def verify_model_directory(
    directory: str | Path, config_name: str, weights_name: str, fix: str
) -> dict[str, Any]:
    """Check a folder written by `attempt.utils.storage.write_model_directory` before a model class reads it: its JSON
    config parses, and its weights load, are finite and match the recorded hash (folders saved before the hash
    was recorded are checked without it). Returns the config."""
    directory = Path(directory)
    meta = read_json(directory / config_name, fix)
    if not isinstance(meta, dict):
        raise CorruptFile(f"{directory / config_name} should hold a JSON object. {fix}")
    load_safetensors(directory / weights_name, fix, sha256=meta.get(HASH_KEY))
    return meta
