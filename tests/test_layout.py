"""The docs' "Code layout" (docs/implementation.md, how the code works) names every module under src/attempt, in its
own subpackage, and no other."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "attempt"


LAYOUT_PAGE = REPO / "docs" / "implementation.md"


def _layout_block() -> list[str]:
    """The lines of the first code block under the page's "## Code layout" heading (its language tag dropped)."""
    text = LAYOUT_PAGE.read_text()
    assert "\n## Code layout\n" in text, f"{LAYOUT_PAGE.relative_to(REPO)} has no '## Code layout' section"
    section = text.split("\n## Code layout\n", 1)[1].split("\n## ", 1)[0]
    assert "```" in section, "the Code layout section has no code block"
    return section.split("```", 2)[1].splitlines()[1:]


def listed_modules(lines: list[str]) -> set[str]:
    """Module paths relative to src/attempt named in the block. `  pkg/` opens a subpackage whose modules sit on
    the lines below, indented four spaces; modules indented two spaces are top-level. A line's names are the
    words ending in .py before its description (which starts after a run of three or more spaces)."""
    modules, package = set(), None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        names = [n for n in re.split(r"\s{3,}", line.strip())[0].split() if n.endswith(".py")]
        if indent == 0:  # src/attempt/, benchmarks/, ...: outside the package's modules
            package = None
        elif indent == 2 and re.match(r"^\w+/", line.strip()):
            package = line.strip().split("/")[0]
        elif indent == 2:
            modules.update(names)
        elif indent == 4 and package:
            modules.update(f"{package}/{name}" for name in names)
    return modules


def test_the_code_layout_names_every_module_and_no_module_that_is_gone():
    actual = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name not in {"__main__.py"}}
    actual -= {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    listed = listed_modules(_layout_block())
    assert actual - listed == set(), "modules missing from the Code layout in docs/implementation.md"
    assert listed - actual == set(), (
        "the Code layout in docs/implementation.md names modules that do not exist"
    )


def test_the_layout_reader_sees_packages_and_top_level_modules():
    lines = ["src/attempt/", "  config.py    the configs", "  data/        rows", "    a.py b.py   two",
             "  mixture.py   the equation", "benchmarks/   x.py"]  # fmt: skip
    assert listed_modules(lines) == {"config.py", "data/a.py", "data/b.py", "mixture.py"}


def test_the_readme_points_to_the_code_layout_instead_of_keeping_a_copy():
    readme = (REPO / "README.md").read_text()
    assert "## Code layout" not in readme and "docs/implementation.md" in readme
