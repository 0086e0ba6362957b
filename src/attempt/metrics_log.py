"""The training log of a run: JSON lines in ``metrics.jsonl``, plus TensorBoard scalars when installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attempt import storage

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsLog:
    """JSON lines in ``metrics.jsonl`` plus TensorBoard scalars when tensorboard is installed (main process)."""

    def __init__(self, output_dir: Path, enabled: bool, resume_step: int | None):
        self.path = output_dir / METRICS_FILE
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():  # drop lines logged after the checkpoint we resume from
            kept = [line for line in self.path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            storage.write_text(self.path, "".join(line + "\n" for line in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(output_dir / TENSORBOARD_DIR))
        except ImportError:
            self.writer = None

    def log(self, record: dict[str, Any]) -> None:
        """Append `record` as one JSON line and its numeric values as TensorBoard scalars (main process only)."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in flatten_record(record).items():
                if name != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{record.get('type', 'train')}/{name}", value, record.get("step", 0))

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.close()



def flatten_record(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"metrics": {"rte": {"accuracy": 71}}, "lr": {"prompt": 0.3}} → {"metrics/rte/accuracy": 71, "lr/prompt": 0.3}."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten_record(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

