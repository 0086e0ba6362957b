"""The training log of a run: JSON lines in ``metrics.jsonl``, and the same numbers to the experiment trackers
of ``report_to`` (TensorBoard, Weights & Biases, MLflow, ... through Accelerate's ``log_with``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from attempt.runs.layout import RunLayout
from attempt.utils import storage

PROJECT_NAME = "attempt"  # the trackers' project / experiment; each run is named after its folder


class MetricsLog:
    """JSON lines in ``metrics.jsonl`` plus, when `trackers` (an Accelerator with ``log_with``) is given, the
    numeric values of every record to its trackers as ``<type>/<key>`` at the record's step (main process)."""

    def __init__(
        self, output_dir: Path, enabled: bool, resume_step: int | None, trackers: Any = None,
        hparams: dict[str, Any] | None = None,
    ):  # fmt: skip
        self.path = RunLayout(output_dir).metrics
        self.enabled = enabled
        self.trackers = trackers if enabled else None
        if not enabled:
            return
        if resume_step is None:
            _set_aside(RunLayout(output_dir))
            self.path.write_text("")
        elif self.path.exists():
            # drop lines logged after the checkpoint we resume from, and an earlier test record: a resumed run
            # (a finished one included) tests its best model again, and its log keeps one test record
            kept = [
                line for line, record in read_records(self.path)
                if record.get("step", 0) <= resume_step and not _is_test(record)
            ]  # fmt: skip
            storage.write_text(self.path, "".join(line + "\n" for line in kept))
        if self.trackers is not None:
            self.trackers.init_trackers(
                PROJECT_NAME,
                config=_scalars(hparams or {}),
                init_kwargs=_run_names(self.trackers, output_dir.name),
            )

    def log(self, record: dict[str, Any]) -> None:
        """Append `record` as one JSON line and send its numbers to the trackers (main process only)."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.trackers is not None:
            kind = record.get("type", "train")
            values = {f"{kind}/{name}": value for name, value in flatten_record(record).items()
                      if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)}  # fmt: skip
            if values:
                self.trackers.log(values, step=record.get("step", 0))

    def close(self) -> None:
        """Finish the trackers' runs (flushing their files), if any. Not `Accelerator.end_training`: it also
        destroys the processes' group, here on the main process alone (the only one that logs), which would
        leave the others' collectives waiting and a caller that trains again without a group."""
        if self.trackers is not None:
            for tracker in self.trackers.trackers:
                tracker.finish()
            self.trackers = None


def _scalars(hparams: dict[str, Any]) -> dict[str, Any]:
    """The run's config as the flat scalars every tracker accepts (TensorBoard's hparams refuse None, lists)."""
    flat = flatten_record(hparams)
    return {
        k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        for k, v in flat.items()
        if v is not None
    }


def _run_names(accelerator: Any, name: str) -> dict[str, dict[str, str]]:
    """Name the run after its folder in the trackers that name runs (TensorBoard's takes no name)."""
    started = {str(getattr(t, "value", t)) for t in accelerator.log_with}
    names = {"wandb": {"name": name}, "mlflow": {"run_name": name}}
    return {tracker: kwargs for tracker, kwargs in names.items() if tracker in started}


def _is_test(record: dict[str, Any]) -> bool:
    return record.get("type") == "eval" and record.get("split") == "test"


def _set_aside(run: RunLayout) -> Path | None:
    """Keep the log of an earlier start of a run that restarts from step 0 (it died before its first
    checkpoint, or its checkpoint was deleted): move it to ``metrics.previous-<n>.jsonl`` rather than lose it."""
    path = run.metrics
    if not path.is_file() or path.stat().st_size == 0:
        return None
    number = 1
    while (kept := run.previous_metrics(number)).exists():
        number += 1
    path.rename(kept)
    warnings.warn(
        f"{path.parent} restarts from step 0; the log of its earlier start is kept in {kept}", stacklevel=3
    )
    return kept


def read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for each line of a metrics file. A torn last line (the process was killed while writing
    it) is dropped with a warning; a bad line elsewhere is an error naming the file and the line.

    Raises:
        ValueError: a line before the last is not a JSON object.
    """
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            if number == len(lines):
                warnings.warn(f"{path}: dropped its torn last line {line[:60]!r}", stacklevel=3)
                break
            raise ValueError(
                f"{path} line {number} is not a JSON record ({line[:60]!r}). Fix or delete that line, then resume."
            ) from None
        records.append((line, record))
    return records


def flatten_record(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"metrics": {"rte": {"accuracy": 71}}, "lr": {"prompt": 0.3}} → {"metrics/rte/accuracy": 71, "lr/prompt": 0.3}."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten_record(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
