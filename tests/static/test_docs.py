"""The documentation: links and anchors resolve, what it names exists, figures are generated.

Runs in `make test` and CI like every static test. The Markdown files are the tracked
ones (git ls-files) plus docs/, so a new page is checked before it is committed.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from bench import render_docs
from tests.conftest import require
from tests.static.static_helpers import ROOT

FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
MAKE_TARGET = re.compile(r"(?:^|[\s;&|(])make\s+((?:[A-Z_]+=\S+\s+)*)([a-z][a-z0-9-]*)")
SCRIPT_PATH = re.compile(r"(?<![\w/.])scripts/[\w./-]*[\w]")
# Words of a log, not of a reference: docs say what is true now (history: CHANGELOG.md).
LOG_PROSE = re.compile(
    r"\b(the run before|since then|this morning|the morning's|earlier today|yesterday|the day before)\b",
    re.IGNORECASE,
)


@cache
def tracked_files() -> tuple[str, ...]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ()
    return tuple(listed.stdout.splitlines())


def markdown_files() -> list[Path]:
    files = {ROOT / name for name in tracked_files() if name.endswith(".md")}
    files |= set((ROOT / "docs").glob("*.md")) | set(ROOT.glob("*.md"))
    return sorted(path for path in files if path.exists())


def reference_pages() -> list[Path]:
    """Pages that describe the present: every Markdown file but the changelog."""
    return [path for path in markdown_files() if path.name != "CHANGELOG.md"]


def without_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code_of(text: str) -> str:
    """The fenced blocks and inline code spans of a page, where commands are written."""
    return "\n".join([m.group(0) for m in FENCE.finditer(text)] + INLINE_CODE.findall(FENCE.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_there_are_pages_to_check() -> None:
    names = {relative(path) for path in markdown_files()}
    assert {"README.md", "docs/operations.md", "docs/benchmarks.md", "PROJECT_STRUCTURE.md"} <= names


@pytest.mark.parametrize("page", markdown_files(), ids=relative)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    text = without_code(page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], broken


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*)\s*:(?!=)", makefile, re.MULTILINE))


@pytest.mark.parametrize("page", reference_pages(), ids=relative)
def test_every_make_target_named_exists(page: Path) -> None:
    named = {match[1] for match in MAKE_TARGET.findall(code_of(page.read_text(encoding="utf-8")))}
    assert named - make_targets() == set()


@pytest.mark.parametrize("page", reference_pages(), ids=relative)
def test_every_script_named_exists(page: Path) -> None:
    named = set(SCRIPT_PATH.findall(page.read_text(encoding="utf-8")))
    assert {path for path in named if not (ROOT / path).exists()} == set()


@pytest.mark.parametrize("page", reference_pages(), ids=relative)
def test_no_page_reads_like_a_log(page: Path) -> None:
    assert LOG_PROSE.findall(without_code(page.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", [render_docs.BENCHMARKS_MD, render_docs.README], ids=relative)
def test_generated_figures_equal_their_rendering_from_the_results(path: Path) -> None:
    """docs/benchmarks.md and the README's headline table are what `make docs` renders."""
    assert path.read_text(encoding="utf-8") == render_docs.rendered()[path], (
        f"{relative(path)} is not what bench/results renders: run `make docs`"
    )


def test_every_generated_table_names_its_source() -> None:
    text = render_docs.render_benchmarks()
    sections = text.split("\n## ")[1:]
    for section in sections:
        if "|---" in section and not section.startswith(("Sources", "Sections without")):
            assert re.search(r"Source: `bench/results/[\w/.-]+\.json`", section), section.splitlines()[0]


def test_project_structure_names_every_folder_and_sub_package() -> None:
    require(bool(tracked_files()), "git and a checkout (git ls-files)")
    text = (ROOT / "PROJECT_STRUCTURE.md").read_text(encoding="utf-8")
    folders = {name.split("/")[0] for name in tracked_files() if "/" in name}
    packages = {path.parent.name for path in (ROOT / "src" / "filmrec").rglob("__init__.py")} - {"filmrec"}
    missing = {f"{name}/" for name in folders | packages} - {word for word in re.findall(r"[\w.-]+/", text)}
    assert missing == set()


def test_every_alert_has_a_runbook_entry() -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    headings = set(HEADING.findall((ROOT / "docs" / "operations.md").read_text(encoding="utf-8")))
    assert alerts - headings == set()
