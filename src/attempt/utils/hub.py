"""The Hugging Face Hub as a place for folders: what an ``hf://`` name leads to, downloads and uploads.

The module through which prompt libraries and runs reach the Hub (huggingface_hub's `snapshot_download` and
`HfApi`). A Hub location is ``hf://owner/name[@revision]``, or a plain ``owner/name[@revision]`` where a plain id
is accepted and no such local path exists; `local_folder` turns either into a folder on disk: the repository's
snapshot in the Hugging Face cache (downloaded on first use; with ``HF_HUB_OFFLINE=1`` read from the cache alone). ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` are read at each call, so a process can point at a mirror or go offline after importing.
What a folder holds and how it is checked belongs to its owner (`attempt.prompts.hub`, `attempt.runs.hub`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub.constants import REPOCARD_NAME

SCHEME = "hf://"
LIBRARY_NAME = "attempt-tuning"  # the distribution's name: library_name in cards and the Hub's user agent
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_TRUE = ("1", "true", "yes", "on")
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._/-]*")  # a YAML plain scalar that reads back as the same text
CARD_NAME = REPOCARD_NAME  # the file the Hub shows as a repository's card
KEEP_REMOTE = (".gitattributes",)  # the Hub's own file: never deleted by a push


@dataclasses.dataclass(frozen=True)
class HubRepo:
    """A model repository on the Hub, at a revision (None: its default branch); `plain`: named by a plain
    ``owner/name``, which could have been a local folder (errors then say that there is none)."""

    repo_id: str
    revision: str | None = None
    plain: bool = dataclasses.field(default=False, compare=False)

    def __str__(self) -> str:
        return SCHEME + self.repo_id + (f"@{self.revision}" if self.revision else "")

    @property
    def name(self) -> str:
        """The repository's name, without its owner."""
        return self.repo_id.split("/")[1]


def is_repo_id(text: str) -> bool:
    """Whether `text` has the form of a Hub repository id, ``owner/name``."""
    return bool(_REPO_ID.fullmatch(text))


def parse_location(location: str | os.PathLike, plain_ids: bool = True) -> HubRepo | None:
    """The Hub repository `location` names, or None when it is a local path.

    Args:
        location: ``hf://owner/name[@revision]``, a plain ``owner/name[@revision]``, or a path. A `Path` object is
            always local (``Path("hf://a/b")`` would have lost a slash).
        plain_ids: also read a plain id as the Hub's when no such local path exists (False: only ``hf://``,
            for a folder that may be about to be created, such as a prompt library).

    Raises:
        ValueError: an ``hf://`` name that is not ``owner/name[@revision]``.
    """
    if isinstance(location, os.PathLike):
        return None
    text = str(location)
    explicit = text.startswith(SCHEME)
    if not explicit and (not plain_ids or Path(text).exists()):
        return None
    repo_id, _, revision = text.removeprefix(SCHEME).partition("@")
    if is_repo_id(repo_id):
        return HubRepo(repo_id, revision or None, plain=not explicit)
    if explicit:
        raise ValueError(
            f"{text!r} is not a Hub location: write hf://owner/name or hf://owner/name@revision."
        )
    return None


def local_folder(location: str | os.PathLike, plain_ids: bool = True) -> Path:
    """`location` as a folder on disk: a local path as it is, a Hub location (`parse_location`) as its
    downloaded snapshot (`download`)."""
    repo = parse_location(location, plain_ids)
    return Path(location) if repo is None else download(repo)


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None  # None: huggingface_hub's default (https://huggingface.co)


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _version() -> str | None:
    try:
        return metadata.version(LIBRARY_NAME)
    except metadata.PackageNotFoundError:
        return None


def download(repo: HubRepo) -> Path:
    """The snapshot folder of `repo` in the Hugging Face cache, downloaded when not there (offline: the
    cached snapshot of that revision, or an error). The files are checked by their owner, not here.

    Raises:
        FileNotFoundError: no such repository or revision (or a private one without a token). OSError: the Hub
            cannot be reached and the cache lacks the snapshot, or another Hub error; each in one line.
    """
    try:
        return _snapshot(repo)
    except OSError as error:  # FileNotFoundError too
        if not repo.plain:
            raise
        raise type(error)(
            f"No local folder {repo.repo_id}{'@' + repo.revision if repo.revision else ''}. {error}"
        ) from None


def _snapshot(repo: HubRepo) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    try:
        folder = snapshot_download(
            repo.repo_id, revision=repo.revision, endpoint=_endpoint(), local_files_only=_offline(),
            library_name=LIBRARY_NAME, library_version=_version(),
        )  # fmt: skip
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{repo}: the Hub repository has no revision {repo.revision!r}.") from None
    except LocalEntryNotFoundError as error:  # offline, or the Hub unreachable, and not in the cache
        raise OSError(
            f"{repo} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"({_first_line(error)}). Connect once (unset HF_HUB_OFFLINE), or give a local folder."
        ) from None
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code in (401, 403, 404):
            raise FileNotFoundError(
                f"No Hub repository {repo.repo_id!r}, or it is private: check the name, or log in (`hf auth login`, "
                "or set HF_TOKEN)."
            ) from None
        raise OSError(f"{repo}: the Hub answered {_first_line(error)}.") from None
    return Path(folder)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def check_push_target(repo: str) -> str:
    """The repository id a push names (``owner/name``, optionally as ``hf://owner/name``).

    Raises:
        ValueError: not ``owner/name``, or a revision given (a push goes to the default branch).
    """
    repo_id = repo.removeprefix(SCHEME)
    if "@" in repo_id:
        raise ValueError(f"{repo!r}: a push goes to the repository's default branch; drop the @revision.")
    if not is_repo_id(repo_id):
        raise ValueError(
            f"{repo!r} is not a Hub repository id: write owner/name (e.g. your-name/attempt-cb)."
        )
    return repo_id


def upload(
    repo: str, files: Mapping[str, Path | bytes], message: str, private: bool = False
) -> dict[str, Any]:
    """Make the model repository `repo` hold exactly `files`, in one commit: it is created when missing, each
    file added (or replaced), and every other file of it deleted (but ``.gitattributes``).

    Args:
        repo: ``owner/name`` (or ``hf://owner/name``).
        files: ``{path in the repository: a local file, or the bytes to write}``.
        message: the commit message.
        private: create the repository private (an existing one keeps its visibility).

    Returns:
        ``{"repo": owner/name, "commit": the commit's URL, "files": sorted paths sent, "deleted": sorted paths}``.

    Raises:
        ValueError: a bad repository id. OSError: the Hub refused (not logged in, no write access) or cannot be
            reached, in one line.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = check_push_target(repo)
    api = HfApi(endpoint=_endpoint(), library_name=LIBRARY_NAME, library_version=_version())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        stale = sorted(set(api.list_repo_files(repo_id)) - set(files) - set(KEEP_REMOTE))
        operations = [
            CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(content) if isinstance(content, Path) else content)
            for path, content in sorted(files.items())
        ] + [CommitOperationDelete(path_in_repo=path) for path in stale]  # fmt: skip
        commit = api.create_commit(repo_id, operations=operations, commit_message=message)
    except (HfHubHTTPError, OSError) as error:
        raise OSError(
            f"Could not push to {repo_id} ({_first_line(error)}). Log in with `hf auth login` (or set HF_TOKEN) "
            "with write access to it."
        ) from None
    return {"repo": repo_id, "commit": getattr(commit, "commit_url", str(commit)), "files": sorted(files),
            "deleted": stale}  # fmt: skip


def front_matter(fields: Mapping[str, Any]) -> list[str]:
    """A model card's YAML front matter, one line per non-empty field: a plain word as it is, anything else
    as JSON (which YAML reads as it is)."""
    shown = {key: value if isinstance(value, str) and _PLAIN.fullmatch(value) else json.dumps(value)
             for key, value in fields.items() if value}  # fmt: skip
    return ["---", *(f"{key}: {value}" for key, value in shown.items()), "---"]


__all__ = [
    "CARD_NAME",
    "LIBRARY_NAME",
    "SCHEME",
    "HubRepo",
    "check_push_target",
    "download",
    "front_matter",
    "is_repo_id",
    "local_folder",
    "parse_location",
    "upload",
]
