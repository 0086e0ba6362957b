"""The README's and the guides' examples work as printed (as litgpt's test_readme checks its README).

- Every ```python block of README.md and docs/guides/*.md runs, in a folder of its own, on tiny random backbones
  built in code (`attempt.testing`), beside copies of the shipped prompts and examples/ and a tiny trained
  `runs/reviews`.
- Every `attempt ...` command of a ```bash block (also after `&&`, in `$(...)` and after `torchrun ... -m
  attempt.cli`) parses with the command's own parser: its subcommand and every flag exist.
- Every ```yaml block loads; one marked `file=PATH` says what that file says.

A block can be marked by an HTML comment on the line right before it, which a reader does not see:

    <!-- doc-test: skip (why) -->              not run: it needs something the tests cannot have
    <!-- doc-test: backbone=tiny-llama -->     real backbone names and their shipped libraries become tiny ones
    <!-- doc-test: replace OLD => NEW -->      one exact replacement (several: separated by ";")
    <!-- doc-test: file=examples/x.yaml -->    a YAML block holds the keys of that file, with its values
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from conftest import forgetting_registered_tasks

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs" / "guides").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!-- doc-test: (.*?) -->\n$")
# What `backbone=NAME` replaces: the real backbones the pages name, and the prompt libraries shipped for them.
REAL_BACKBONES = ("HuggingFaceTB/SmolLM2-135M-Instruct", "sentence-transformers/all-MiniLM-L6-v2")
REAL_LIBRARIES = ("prompts/smollm2-135m-instruct", "prompts/minilm")
# The tiny backbones the workspace holds: family, and the length of its prompt library's prompts.
TINY = {"tiny-llama": ("causal", 20), "tiny-bert": ("encoder", 100)}
SOURCES = ("mnli", "qnli", "sst2")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None

    @property
    def id(self) -> str:
        page = self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page.name
        return f"{page}:{self.line}"


def parse_directive(text: str, block: Block) -> None:
    """Fill the block's skip / replacements / file from a `doc-test:` comment; anything else is an error."""
    for item in (part.strip() for part in text.split(";")):
        if skip := re.fullmatch(r"skip \((.+)\)", item):
            block.skip = skip.group(1)
        elif backbone := re.fullmatch(r"backbone=([\w-]+)", item):
            name = backbone.group(1)
            assert name in TINY, f"{block.id}: no tiny backbone {name!r}; the tests build {sorted(TINY)}"
            used = [real for real in REAL_BACKBONES if real in block.code]
            assert used, f"{block.id}: backbone={name} but the block names none of {REAL_BACKBONES}"
            block.replacements += [(real, name) for real in REAL_BACKBONES]
            block.replacements += [(library, f"prompts/{name}") for library in REAL_LIBRARIES]
        elif replace := re.fullmatch(r"replace (.+?) => (.+)", item):
            old, new = replace.groups()
            assert old in block.code, f"{block.id}: replace {old!r}, which the block does not hold"
            block.replacements.append((old, new))
        elif file := re.fullmatch(r"file=(\S+)", item):
            block.file = file.group(1)
        else:
            raise AssertionError(f"{block.id}: unknown doc-test directive {item!r}")


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, each with the directive on the line before it, if any."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        if text[match.start() + 3 : match.start() + 4] == "{":
            continue  # a MyST directive (toctree, include), not code
        block = Block(page, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2))
        before = text[: match.start()]
        if directive := DIRECTIVE.search(before[before.rstrip("\n").rfind("\n") + 1 :]):
            parse_directive(directive.group(1), block)
        found.append(block)
    return found


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [block for block in ALL if block.lang == "python"]
BASH = [block for block in ALL if block.lang == "bash"]
YAML = [block for block in ALL if block.lang == "yaml"]


# ------------------------------------------------------------------------------------------ the pages' blocks
def test_every_block_says_its_language_and_the_examples_mostly_run():
    untagged = [block.id for block in ALL if not block.lang]
    assert untagged == [], f"give each block a language (python, bash, yaml, text, ...): {untagged}"
    skipped = [block for block in PYTHON if block.skip]
    assert len(PYTHON) >= 6 and len(skipped) * 4 <= len(PYTHON), [block.id for block in skipped]
    assert any(block.page.name == "README.md" for block in PYTHON if not block.skip)


def test_the_readme_keeps_its_two_commands_as_printed():
    main, tests = (
        "bash scripts/setup.sh && ATTEMPT_DATA_DIR=../shared/data .venv/bin/attempt quickstart   # the main job",
        "bash scripts/setup.sh && .venv/bin/python -m pytest -q                                   # the tests",
    )
    assert f"```bash\n{main}\n{tests}\n```" in (REPO / "README.md").read_text()


def test_the_block_reader_sees_directives_only_right_before_a_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doc-test: skip (far away) -->\n\ntext\n\n```python\nx = 1\n```\n\n"
        "<!-- doc-test: replace 1 => 2 -->\n```python\ny = 1\n```\n"
    )
    first, second = blocks(page)
    assert (first.skip, first.replacements) == (None, [])
    assert (second.code, second.replacements) == ("y = 1\n", [("1", "2")])
    with pytest.raises(AssertionError, match="unknown doc-test directive"):
        parse_directive("backbone: tiny-llama", Block(page, 1, "python", "x"))
    with pytest.raises(AssertionError, match="does not hold"):
        parse_directive("replace z => w", Block(page, 1, "python", "x"))


# ------------------------------------------------------------------------------------------ python blocks run
@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny backbones and their prompt libraries, copies of the shipped prompts and examples/, and a tiny
    ATTEMPT run `runs/reviews` trained on the own-task example; the task it registers is forgotten after."""
    from attempt import PromptLibrary, SourcePrompt, cli
    from attempt.testing import build_backbone, build_tokenizer

    root = tmp_path_factory.mktemp("doc-examples")
    for name, (family, length) in TINY.items():
        build_backbone(family).save_pretrained(root / name)
        build_tokenizer(family).save_pretrained(root / name)
        library = PromptLibrary(root / "prompts" / name)
        for seed, source in enumerate(SOURCES):
            torch.manual_seed(seed)
            library.add(SourcePrompt(source, torch.randn(length, 32), task=source, backbone=name))
    shutil.copytree(REPO / "prompts" / "smollm2-135m-instruct", root / "prompts" / "smollm2-135m-instruct")
    shutil.copytree(REPO / "examples", root / "examples")
    with forgetting_registered_tasks():
        argv = ["train", "--task-file", str(root / "examples" / "own_task" / "task.yaml"), "--mode", "attempt",
                "--backbone", str(root / "tiny-llama"), "--library", str(root / "prompts" / "tiny-llama"),
                "--source-prompts", *SOURCES, "--output-dir", str(root / "runs" / "reviews"), "--max-steps", "1",
                "--batch-size", "4", "--train-limit", "8", "--eval-limit", "4", "--quiet"]  # fmt: skip
        assert cli.main(argv) == 0
        yield root


def _folder_for(block: Block, workspace: Path, tmp_path: Path) -> Path:
    """A folder of the block's own that sees the workspace's backbones, prompt libraries, examples and runs
    (linked, so what the block writes stays in its folder)."""
    for name in (*TINY, "examples"):
        (tmp_path / name).symlink_to(workspace / name)
    for sub in ("prompts", "runs"):
        (tmp_path / sub).mkdir()
        for entry in (workspace / sub).iterdir():
            (tmp_path / sub / entry.name).symlink_to(entry)
    return tmp_path


@pytest.mark.parametrize("block", PYTHON, ids=[block.id for block in PYTHON])
def test_the_python_block_runs(block, workspace, tmp_path, monkeypatch, capsys):
    if block.skip:
        pytest.skip(block.skip)
    code = block.code
    for old, new in block.replacements:
        code = code.replace(old, new)
    monkeypatch.chdir(_folder_for(block, workspace, tmp_path))
    with forgetting_registered_tasks():
        exec(compile(code, block.id, "exec"), {"__name__": "__doc_example__"})


# ---------------------------------------------------------------------------------- bash blocks parse
def attempt_commands(script: str) -> list[list[str]]:
    """The argument lists (without the program) of every `attempt` command in a shell snippet: lines joined at
    a trailing backslash, comments dropped, each `&&` part read, `$(...)` read on its own and then taken as one
    word, `...` (the rest, left to the reader) dropped; `python -m attempt.cli` and `-m attempt.cli` after a
    launcher (torchrun, accelerate launch) count as `attempt`."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        for inner in re.findall(r"\$\(([^)]*)\)", line):
            commands += attempt_commands(inner)
        line = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line)
        if not re.search(r"(^|[\s/])attempt(\s|$)|-m attempt\.cli\s", line):
            continue  # another program (curl, echo, mv, ...), whose quoting may span lines
        for part in line.split("&&"):
            words = [word for word in shlex.split(part) if word != "..."]
            for i, word in enumerate(words):
                if re.fullmatch(r"(\S*/)?attempt", word):
                    commands.append(words[i + 1 :])
                    break
                if word == "-m" and words[i + 1 : i + 2] == ["attempt.cli"]:
                    commands.append(words[i + 2 :])
                    break
    return commands


def test_the_command_reader_finds_every_attempt_command():
    script = (
        "bash scripts/setup.sh && X=1 .venv/bin/attempt quickstart   # the main job\n"
        "attempt train --tasks cb --source-prompts $(attempt prompts rank --task cb --top 2 ...) ...\n"
        "torchrun --nproc-per-node N -m attempt.cli train \\\n  --config r.yaml\n"
        "curl -s localhost:8000/health\n"
    )
    assert attempt_commands(script) == [
        ["quickstart"],
        ["prompts", "rank", "--task", "cb", "--top", "2"],
        ["train", "--tasks", "cb", "--source-prompts", "SUBSTITUTED"],
        ["train", "--config", "r.yaml"],
    ]


def _parse_error(argv: list[str]) -> str | None:
    """None when the `attempt` parser accepts argv, else what it said."""
    from attempt.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exit_:
            return err.getvalue().strip() or f"exit {exit_.code}"
    return None


def test_the_parse_check_catches_a_wrong_flag_or_subcommand():
    assert _parse_error(["evaluate", "runs/x", "--split", "test"]) is None
    assert "--no-such-flag" in _parse_error(["evaluate", "runs/x", "--no-such-flag"])
    assert "invalid choice" in _parse_error(["no-such-command"])


@pytest.mark.parametrize("block", BASH, ids=[block.id for block in BASH])
def test_the_bash_block_commands_parse(block):
    commands = attempt_commands(block.code)
    wrong = {shlex.join(argv): error for argv in commands if (error := _parse_error(argv))}
    assert wrong == {}


def test_the_bash_blocks_hold_attempt_commands():
    assert sum(len(attempt_commands(block.code)) for block in BASH) >= 30


# -------------------------------------------------------------------------------------------- yaml blocks
@pytest.mark.parametrize("block", YAML, ids=[block.id for block in YAML])
def test_the_yaml_block_loads_and_says_what_its_file_says(block):
    shown = yaml.safe_load(block.code)
    if block.file:
        actual = yaml.safe_load((REPO / block.file).read_text())
        assert {key: actual.get(key) for key in shown} == shown
