"""What the benchmarks share: where things are, the data overlay, writes, and state that outlives a session.

Every benchmark writes its results under ``benchmarks/results/<benchmark>/`` (committed) and its run folders
under ``benchmarks/results/<benchmark>/runs/`` (never committed: see .gitignore). A session's files end with
it, so what a later session needs to go on is committed in one of two forms:

- a run that has not finished keeps its resumable state (checkpoint, best model, log, config): `stash_run`
  copies it out, `restore_run` puts it back (the source prompts, whose runs take hours);
- a grid of short runs keeps each finished run as one record of a JSON-lines file (`read_records`,
  `write_records`): a run found there is not run again (the few-shot grid).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from attempt.runs.layout import BEST_DIR, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, RunLayout
from attempt.utils import storage
from attempt.utils.textfiles import numbered_jsonl

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"
DATA_DIR = Path(os.environ.get("ATTEMPT_DATA_DIR") or SHARED / "data")  # the data mirror
ORIGINAL_PROMPTS = SHARED / "original-prompts"  # the original release's prompts, when present
RUNS = "runs"  # a benchmark's run folders, beside its results; not committed

# the mirror's stand-ins for splits it lacks: {(hub_id, config): {split the task reads: file in the mirror}}
SPLIT_STANDINS = {
    ("nyu-mll/glue", "qqp"): {"validation": "validation_bimpm_proxy"},
    ("aps/super_glue", "boolq"): {"train": "train_fewglue32"},
}
# Held-out test rows, for the benchmarks that compare a score with the paper's distribution (`data_overlay` with
# held_out=True: the source prompts and the main table, issue 22): {(hub_id, config): (split, rows of the mirror's
# train file)}. qqp's official dev is not in the mirror and its stand-in above, the BiMPM proxy, is another
# partition of the Quora pairs, label-balanced (49.9% duplicate; the training rows 36.9%): a prompt that learns
# the training prior scores lower there than it would on the dev. Rows 8,999-9,998 of the mirror's train file
# are PowerfulPromptFT's dev, 1,000 pairs held out of the official train (37.7% duplicate; the GLUE dev: 36.8%),
# none of them repeated elsewhere in the file: they become the task's validation split (the large-task
# protocol's test rows) and leave its train.
HELD_OUT = {("nyu-mll/glue", "qqp"): ("validation", range(8_999, 9_999))}
# what an unfinished run needs to resume (a few hundred KB for a prompt run): `stash_run` keeps these
RESUMABLE = (CHECKPOINT_DIR, BEST_DIR, METRICS_FILE, CONFIG_FILE)


def results_dir(benchmark: str) -> Path:
    """``benchmarks/results/<benchmark>/``: where a benchmark's reports and committed state live."""
    return RESULTS / benchmark


def add_run_arguments(parser: Any, benchmark: str, threads: int = 1) -> None:
    """The options every small benchmark takes: --threads, --tiny (the tests' tiny causal LM), --out (its results
    folder) and --data-dir (the mirror)."""
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny causal LM")
    parser.add_argument("--out", type=Path, default=results_dir(benchmark))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)


def slug(name: str) -> str:
    """A backbone name as it appears in file names: ``HuggingFaceTB/SmolLM2-135M-Instruct`` →
    ``SmolLM2-135M-Instruct``."""
    return name.rstrip("/").split("/")[-1].replace(".", "_")


def shown(path: Path) -> str:
    """A path as a report records it: relative to the repository when inside it, so checkouts agree."""
    path = path.resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def data_overlay(source: Path, overlay: Path, held_out: bool = False) -> Path:
    """A mirror folder of symlinks to `source`, adding the split stand-ins of `SPLIT_STANDINS` under the split
    names the tasks read (qqp's validation = the BiMPM proxy, boolq's train = FewGLUE's 32 examples); with
    `held_out`, the splits of `HELD_OUT` instead, written as files (qqp's validation = 1,000 held-out training
    pairs, its train = the others). The overlay holds one choice: a folder made with the other is rewritten.

    Builders of one overlay take turns (a lock file beside it): two jobs started together, as
    scripts/background.sh starts them, would otherwise both find a link missing and the second fail to make it.
    filelock rather than fcntl by hand: it releases on exceptions and works wherever the jobs may run."""
    overlay.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(overlay.parent / f".{overlay.name}.lock"):
        return _build_overlay(source, overlay, held_out)


def _build_overlay(source: Path, overlay: Path, held_out: bool) -> Path:
    """`data_overlay`'s work, under its lock."""
    for (hub_id, config), (split, _) in HELD_OUT.items():
        for name in () if held_out else (split, "train"):  # files of an earlier held_out overlay
            path = overlay / hub_id / config / f"{name}.jsonl"
            if path.is_file() and not path.is_symlink():
                path.unlink()
    for path in source.rglob("*.jsonl"):
        link = overlay / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())
    for (hub_id, config), standins in SPLIT_STANDINS.items():
        for split, present in standins.items():
            target = source / hub_id / config / f"{present}.jsonl"
            link = overlay / hub_id / config / f"{split}.jsonl"
            missing = not (source / hub_id / config / f"{split}.jsonl").exists() and not link.exists()
            if target.is_file() and missing:
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target.resolve())
    for (hub_id, config), (split, rows) in HELD_OUT.items():
        train = source / hub_id / config / "train.jsonl"
        if held_out and train.is_file():
            hold_out(train, overlay / hub_id / config, split, rows)
    return overlay


def hold_out(train: Path, folder: Path, split: str, rows: Sequence[int]) -> None:
    """Write `rows` of `train` (line numbers) as folder/<split>.jsonl and the other lines as folder/train.jsonl
    (each rewritten only when its content changes)."""
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    held = set(rows)
    kept = {split: [lines[i] for i in rows], "train": [line for i, line in enumerate(lines) if i not in held]}
    for name, chosen in kept.items():
        path = folder / f"{name}.jsonl"
        if path.is_symlink() or not path.is_file() or path.read_text(encoding="utf-8") != "".join(chosen):
            path.unlink(missing_ok=True)  # a symlink: writing through it would change the mirror
            with storage.atomic_path(path) as tmp:
                tmp.write_text("".join(chosen), encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically, its keys in the order the benchmark built them (the order
    of the committed reports; `attempt.utils.storage.write_json` sorts them)."""
    storage.write_text(path, json.dumps(data, indent=2) + "\n")


def save_figure(figure: Any, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with storage.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def stash_run(run: Path, state: Path, also: Iterable[str] = ()) -> Path | None:
    """Copy what the unfinished run in `run` needs to resume (`RESUMABLE`, and the names in `also`) to
    `state`, replacing it whole. None when the run has no checkpoint yet."""
    if not RunLayout(run).checkpoint.is_dir():
        return None
    with storage.atomic_directory(state) as tmp:
        for name in (*RESUMABLE, *also):
            source = run / name
            if source.is_dir():
                shutil.copytree(source, tmp / name)
            elif source.is_file():
                shutil.copy2(source, tmp / name)
    return state


def restore_run(run: Path, state: Path) -> bool:
    """Put a stashed state back into `run` when the run has neither a checkpoint nor results of its own (a
    new session); False when there was nothing to do. The checkpoint comes back last, so a restore cut off
    halfway leaves a run that starts over, not one that resumes from half a state."""
    layout = RunLayout(run)
    if layout.checkpoint.is_dir() or layout.results.is_file() or not state.is_dir():
        return False
    run.mkdir(parents=True, exist_ok=True)
    for item in sorted(state.iterdir(), key=lambda item: item.name == CHECKPOINT_DIR):
        if item.is_dir():
            with storage.atomic_directory(run / item.name) as tmp:
                shutil.copytree(item, tmp, dirs_exist_ok=True)
        else:
            with storage.atomic_path(run / item.name) as tmp:
                shutil.copy2(item, tmp)
    return True


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file written by `write_records`; none when it does not exist yet.

    Raises:
        attempt.utils.textfiles.DataError: a line that is not a JSON object (the message names file and line).
    """
    return [row for _, row in numbered_jsonl(path)] if path.is_file() else []


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write `records` as JSON lines, one a line, atomically (the whole file: a session cut off while writing
    leaves the previous file)."""
    storage.write_text(path, "".join(json.dumps(record) + "\n" for record in records))


def commit() -> tuple[str, bool]:
    """The repository's commit, and whether src/ has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") or "unknown", bool(git("status", "--porcelain", "--", "src"))


def machine() -> dict[str, Any]:
    """What a timing depends on: torch, Python, the threads and the CPU's bf16 instructions."""
    import platform

    import torch

    flags = set()
    with contextlib.suppress(OSError):
        flags = set(Path("/proc/cpuinfo").read_text().split())
    wanted = ("avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_features": ", ".join(f for f in wanted if f in flags) or "no bf16 instructions",
    }


def provenance(
    benchmark: str, args: Any, backbone: str, started: float, flags: Sequence[str] = ()
) -> dict[str, Any]:
    """The head of a small benchmark's results: its backbone, the command that runs it again (``--tiny``, the
    non-default `flags`, ``--threads`` and ``--out`` as given), the commit and whether src/ had uncommitted
    changes, the machine, and the wall time since `started`."""
    import time

    command = " ".join([f"python -m benchmarks.{benchmark}", *(["--tiny"] if args.tiny else []), *flags])
    command += "" if args.threads == 1 else f" --threads {args.threads}"
    if args.out.resolve() != results_dir(benchmark).resolve():
        command += f" --out {shown(args.out)}"
    revision, src_modified = commit()
    return {"backbone": backbone, "command": command, "commit": revision, "src_modified": src_modified,
            "machine": machine(), "wall_s": time.time() - started}  # fmt: skip


def measure_or_reread(path: Path, report_only: bool, measure: Any, report: Any) -> int:
    """A small benchmark's last step: `measure()` and write its results to the JSON at `path`, or read that JSON
    back (``--report-only``); then write ``report(results)`` beside it as Markdown. Returns 0 (the exit code)."""
    if report_only:
        from attempt.utils.reading import read_json

        results = read_json(path, "Run the benchmark to write it again.")
    else:
        results = measure()
        write_json(path, results)
    storage.write_text(path.with_suffix(".md"), report(results))
    print("report:", shown(path.with_suffix(".md")), flush=True)
    return 0


def made_by(results: dict[str, Any]) -> str:
    """A report's sentence on how its results were made, from their `provenance` head."""
    machine = results["machine"]
    return (
        f"`{results['command']}` at commit {results['commit']}"
        + (" (with uncommitted changes under src/)" if results["src_modified"] else "")
        + f", torch {machine['torch']} on {machine['threads']} thread(s), CPU features {machine['cpu_features']}; "
        f"{results['wall_s'] / 60:.1f} min in all."
    )
