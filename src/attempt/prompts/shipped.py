"""The source prompts this repository ships: one prompt library per backbone, in prompts/<slug>/.

They were trained by benchmarks/source_prompts.py; each prompt's JSON holds its recipe, validation curve, test
score and the backbone's zero-shot score on the same rows. A checkout (and the editable install
scripts/setup.sh makes) finds them beside the package; a wheel does not carry them, and `shipped_library`
then answers None, so callers fall back to training their own.
"""

from __future__ import annotations

from pathlib import Path

from attempt.backbones.wheels import canonical_name

SHIPPED_ROOT = Path(__file__).resolve().parents[3] / "prompts"  # src/attempt/prompts/ -> the repository root


def library_slug(backbone: str) -> str:
    """The folder name of a backbone's library: the last part of its Hub id, lower-cased
    ("HuggingFaceTB/SmolLM2-135M-Instruct" and its aliases -> "smollm2-135m-instruct")."""
    return canonical_name(backbone).rstrip("/").rsplit("/", 1)[-1].lower()


def shipped_library(backbone: str, root: str | Path | None = None) -> Path | None:
    """The shipped prompt library for `backbone`, or None when there is none (no folder, or no prompt in it)."""
    folder = Path(root or SHIPPED_ROOT) / library_slug(backbone)
    return folder if folder.is_dir() and any(folder.glob("*.safetensors")) else None
