"""The docs site: it builds with warnings as errors, its reference covers every module, its results pages
include every committed report, its guides index lists every guide, and the README is a short tour whose
links lead somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PACKAGE = REPO / "src" / "attempt"
AUTOMODULE = re.compile(r"^\.\. automodule:: (attempt[\w.]*)$", re.MULTILINE)
INCLUDE = re.compile(r"^```\{include\} (\S+)$", re.MULTILINE)
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _documented_modules() -> list[str]:
    """Every module an `automodule` directive of the reference pages names, in page order."""
    return [
        name
        for page in sorted((DOCS / "reference").glob("*.md"))
        for name in AUTOMODULE.findall(page.read_text())
    ]


def _package_modules() -> set[str]:
    """Every importable module of src/attempt (packages by their own name; `__main__` is no module to read)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_subpackage_and_top_level_module_has_its_own_reference_page():
    pages = {page.stem for page in (DOCS / "reference").glob("*.md")} - {"index"}
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    top_level = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert subpackages <= pages, (
        f"give each subpackage a page docs/reference/<name>.md: {subpackages - pages}"
    )
    assert top_level <= pages, (
        f"give each top-level module a page docs/reference/<name>.md: {top_level - pages}"
    )
    assert pages == subpackages | top_level


def test_every_module_of_the_package_is_documented_exactly_once():
    documented = _documented_modules()
    assert sorted(documented) == sorted(set(documented)), "a module has two automodule directives"
    missing = _package_modules() - set(documented)
    assert missing == set(), (
        f"add an automodule for each to its subpackage's page in docs/reference: {missing}"
    )
    assert set(documented) == _package_modules()


def test_the_reference_index_lists_every_reference_page():
    index = (DOCS / "reference" / "index.md").read_text()
    toctree = index.split("```{toctree}", 1)[1].split("```", 1)[0]
    listed = {line.strip() for line in toctree.splitlines() if line.strip() and not line.startswith(":")}
    assert listed == {page.stem for page in (DOCS / "reference").glob("*.md")} - {"index"}


def test_every_committed_benchmark_report_is_included_by_a_results_page():
    included = set()
    for page in (DOCS / "results").glob("*.md"):
        included |= {(page.parent / target).resolve() for target in INCLUDE.findall(page.read_text())}
    reports = {path.resolve() for path in (REPO / "benchmarks" / "results").glob("*/*.md")}
    missing = sorted(str(path.relative_to(REPO)) for path in reports - included)
    assert missing == [], f"include each in a page of docs/results (dated with {{last-change}}): {missing}"


def test_each_results_page_dates_every_report_it_includes():
    for page in (DOCS / "results").glob("*.md"):
        text = page.read_text()
        for target in INCLUDE.findall(text):
            report = (page.parent / target).resolve().relative_to(REPO)
            assert f"{{last-change}}`{report}`" in text, f"{page.name} includes {report} without dating it"


def test_the_guides_index_lists_and_links_every_guide():
    index = (DOCS / "guides" / "index.md").read_text()
    guides = {page.stem for page in (DOCS / "guides").glob("*.md")} - {"index"}
    toctree = index.split("```{toctree}", 1)[1].split("```", 1)[0]
    listed = {line.strip() for line in toctree.splitlines() if line.strip() and not line.startswith(":")}
    assert listed == guides, "the guides index's toctree names each page of docs/guides, and no other"
    rows = [line for line in index.splitlines() if line.startswith("| [")]
    linked = [target for row in rows for target in re.findall(r"\]\(([\w.]+)\.md\)", row.split("|")[1])]
    assert sorted(linked) == sorted(guides), "the guides index's table links each guide once"
    assert len(linked) >= 10


def _slug(heading: str) -> str:
    """The anchor GitHub (and MyST's heading anchors) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_every_relative_link_of_the_readme_leads_to_a_file_and_heading():
    readme = (REPO / "README.md").read_text()
    targets = [t for t in MD_LINK.findall(readme) if not re.match(r"[a-z]+:", t)]
    assert len(targets) >= 20
    for target in targets:
        path, _, anchor = target.partition("#")
        assert (REPO / path).exists(), f"README.md links {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#{1,6} (.+)$", (REPO / path).read_text(), re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"README.md links {target}: no such heading"


def test_the_readme_is_a_short_tour_that_links_the_guides_and_the_results():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    linked = set(MD_LINK.findall(readme))
    guides = {f"docs/guides/{page.name}" for page in (DOCS / "guides").glob("*.md")} - {
        "docs/guides/index.md"
    }
    assert guides - linked == set(), "link each guide from the README"
    found = readme.split("\n## What we found\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in found.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) >= 6
    for row in rows:
        assert re.search(r"\]\(docs/results/\w+\.md\)", row), f"a finding without its results page: {row}"


def test_a_number_of_the_readme_quickstart_table_lives_on_a_results_page():
    readme = (REPO / "README.md").read_text()
    table = [line for line in readme.split("\n## Quickstart\n", 1)[1].splitlines() if line.startswith("| cb")]
    page = (DOCS / "results" / "runs_as_printed.md").read_text()
    assert len(table) == 6 and all(row in page for row in table)
    assert re.search(r"commit [0-9a-f]{7} of \d{4}-\d{2}-\d{2}", page)


@pytest.mark.slow
def test_the_docs_build_with_warnings_as_errors(tmp_path):
    for extension in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(extension, reason="the docs extra: pip install -e '.[docs]'")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-n",
        "-q",
        "-b",
        "html",
        str(DOCS),
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr == ""
    for page in (
        "index",
        "implementation",
        "results/fewshot",
        "reference/mixture",
        "guides/index",
        "guides/own_data",
    ):
        assert (tmp_path / f"{page}.html").is_file()
    fewshot = (tmp_path / "results" / "fewshot.html").read_text()
    assert "Few-shot ATTEMPT on HuggingFaceTB/SmolLM2-135M-Instruct" in fewshot  # the report, included
    assert re.search(r"commit [0-9a-f]{7,} of \d{4}-\d{2}-\d{2}", fewshot)
