"""The run folder's layout: the one place that names every file and folder a run writes; everyone else asks here.

A run folder (``TrainConfig.output_dir``) written by `attempt.training.loop.train` and read by
`attempt.runs.build.load_run`, `attempt serve`, `attempt evaluate / predict / plot`::

    <run>/
      .attempt.lock               LOCK_FILE         held while a run trains in it (`attempt.utils.locking`)
      train_config.json           CONFIG_FILE       the run's TrainConfig, paths relative (`attempt.runs.portable`)
      metrics.jsonl               METRICS_FILE      the training log (`attempt.runs.metrics_log`)
      metrics.previous-<n>.jsonl  PREVIOUS_METRICS_FILE  the log of an earlier start that restarted from step 0
      checkpoint/                 CHECKPOINT_DIR    the resumable checkpoint (`attempt.runs.checkpoint`)
        trainable.safetensors     CHECKPOINT_WEIGHTS_FILE  the trainable weights
        optimizer.pt              OPTIMIZER_FILE
        scheduler.pt              SCHEDULER_FILE
        rng.pt                    RNG_FILE          every process's random generators
        state.json                STATE_FILE        the loop's position (`attempt.runs.state.LoopState`)
        train_config.json         CONFIG_FILE       to refuse resuming a different run
        manifest.json             MANIFEST_FILE     source prompt hashes and the sha256 of each file above
      best/                       BEST_DIR          the best validation model: alone enough to predict
        attempt_config.json       the model's own files (`attempt.modeling`: AttemptModel.config_file and
        attempt_model.safetensors   .weights_file; finetune_config.json / finetune_model.safetensors for
        sources/                    FineTuneModel); sources/ holds copies of the source prompts (SOURCES_DIR)
        train_config.json         CONFIG_FILE       a copy of the run's config
        environment.json          ENVIRONMENT_FILE  the software and backbone that trained it (`attempt.runs.model_card`)
        README.md                 CARD_FILE         the model card
      results.json                RESULTS_FILE      best step, validation and test metrics, attention
      test_predictions.jsonl      PREDICTIONS_FILE  one record per test example ("<split>_predictions.jsonl")
      attention.json              ATTENTION_FILE    mean attention per task (ATTEMPT only)
      trackers/                   TRACKERS_DIR      report_to's local files (TensorBoard events)
      eval_<split>.json           EVAL_METRICS_FILE       `attempt evaluate` (or into --out); <split> is
      eval_<split>_predictions.jsonl  EVAL_PREDICTIONS_FILE  "test", "validation", or "file" for --file
      eval_<split>_attention.json     EVAL_ATTENTION_FILE
      attention.png               ATTENTION_PLOT_FILE  `attempt plot` (or into --out)
      attention_examples.png      EXAMPLES_PLOT_FILE   each test example's attention
      training_curves.png         CURVES_PLOT_FILE
    comparison.png                COMPARISON_PLOT_FILE `attempt plot RUN RUN ...` (into --out, else the current folder)

`RESULTS_TABLE_FILE` (``results.md``) is the Markdown table the quickstart writes beside its ``results.json``.

These names are a file format: runs written before a rename would stop loading. tests/test_run_layout.py pins
them, and fails when any other module under src/attempt spells one instead of asking here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attempt.utils import locking

LOCK_FILE = locking.LOCK_FILE  # a run folder is locked like any folder attempt writes
CONFIG_FILE = "train_config.json"  # in the run folder, and a copy in best/ and checkpoint/
METRICS_FILE = "metrics.jsonl"
PREVIOUS_METRICS_FILE = "metrics.previous-{number}.jsonl"
CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
TRACKERS_DIR = "trackers"
RESULTS_FILE = "results.json"
RESULTS_TABLE_FILE = "results.md"
PREDICTIONS_FILE = "{split}_predictions.jsonl"
ATTENTION_FILE = "attention.json"
EVAL_METRICS_FILE = "eval_{split}.json"
EVAL_PREDICTIONS_FILE = "eval_{split}_predictions.jsonl"
EVAL_ATTENTION_FILE = "eval_{split}_attention.json"
ATTENTION_PLOT_FILE = "attention.png"
CURVES_PLOT_FILE = "training_curves.png"
EXAMPLES_PLOT_FILE = "attention_examples.png"
COMPARISON_PLOT_FILE = "comparison.png"

# best/
ENVIRONMENT_FILE = "environment.json"
CARD_FILE = "README.md"

# checkpoint/
CHECKPOINT_WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
RNG_FILE = "rng.pt"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
# what a complete checkpoint holds (the manifest is absent from checkpoints written before it existed)
CHECKPOINT_FILES = (
    CHECKPOINT_WEIGHTS_FILE,
    OPTIMIZER_FILE,
    SCHEDULER_FILE,
    RNG_FILE,
    STATE_FILE,
    CONFIG_FILE,
)


def predictions_file(split: str) -> str:
    """The name of a split's per-example predictions: ``test_predictions.jsonl`` for "test"."""
    return PREDICTIONS_FILE.format(split=split)


def eval_files(split: str) -> tuple[str, str, str]:
    """The names `attempt evaluate` writes for `split` ("test", "validation" or "file"): (metrics,
    predictions, attention)."""
    return tuple(
        name.format(split=split) for name in (EVAL_METRICS_FILE, EVAL_PREDICTIONS_FILE, EVAL_ATTENTION_FILE)
    )


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder: ``RunLayout(run_dir).best``, ``.config``, ``.checkpoint`` ...

    Attributes:
        root: the run folder (``TrainConfig.output_dir``).
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """``train_config.json``: the run's TrainConfig."""
        return self.root / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: the training log."""
        return self.root / METRICS_FILE

    def previous_metrics(self, number: int) -> Path:
        """``metrics.previous-<number>.jsonl``: the log of an earlier start set aside."""
        return self.root / PREVIOUS_METRICS_FILE.format(number=number)

    @property
    def checkpoint(self) -> Path:
        """``checkpoint/``: the resumable checkpoint folder."""
        return self.root / CHECKPOINT_DIR

    @property
    def best(self) -> Path:
        """``best/``: the best validation model, its config copy, environment and model card."""
        return self.root / BEST_DIR

    @property
    def best_config(self) -> Path:
        """``best/train_config.json``: the copy of the run's config."""
        return self.best / CONFIG_FILE

    @property
    def best_sources(self) -> Path:
        """``best/sources/``: copies of the source prompts an ATTEMPT model mixes."""
        from attempt.modeling.base import SOURCES_DIR  # the model's own folder: named where it is saved

        return self.best / SOURCES_DIR

    @property
    def results(self) -> Path:
        """``results.json``: what `train` returns, as a file."""
        return self.root / RESULTS_FILE

    def predictions(self, split: str = "test") -> Path:
        """``<split>_predictions.jsonl``: one record per example of the split."""
        return self.root / predictions_file(split)

    @property
    def attention(self) -> Path:
        """``attention.json``: the mean attention per task (ATTEMPT runs only)."""
        return self.root / ATTENTION_FILE

    @property
    def trackers(self) -> Path:
        """``trackers/``: the local files of report_to's experiment trackers."""
        return self.root / TRACKERS_DIR

    @property
    def lock(self) -> Path:
        """``.attempt.lock``: held while a run trains in the folder."""
        return self.root / LOCK_FILE


__all__ = [
    "ATTENTION_FILE",
    "ATTENTION_PLOT_FILE",
    "BEST_DIR",
    "CARD_FILE",
    "CHECKPOINT_DIR",
    "CHECKPOINT_FILES",
    "CHECKPOINT_WEIGHTS_FILE",
    "COMPARISON_PLOT_FILE",
    "CONFIG_FILE",
    "CURVES_PLOT_FILE",
    "ENVIRONMENT_FILE",
    "EVAL_ATTENTION_FILE",
    "EVAL_METRICS_FILE",
    "EVAL_PREDICTIONS_FILE",
    "EXAMPLES_PLOT_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "OPTIMIZER_FILE",
    "PREDICTIONS_FILE",
    "PREVIOUS_METRICS_FILE",
    "RESULTS_FILE",
    "RESULTS_TABLE_FILE",
    "RNG_FILE",
    "SCHEDULER_FILE",
    "STATE_FILE",
    "TRACKERS_DIR",
    "RunLayout",
    "eval_files",
    "predictions_file",
]
