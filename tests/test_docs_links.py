"""Every relative link and image of README.md and docs/*.md points to a file that exists, and to a
heading that exists when it carries a ``#anchor``; no machine-specific path appears in the pages;
every docs page is reachable from the README's table of contents.

Anchors follow GitHub's rule: the heading text lower-cased, punctuation other than ``-`` and
``_`` dropped, spaces turned into ``-``, and ``-1``, ``-2``, ... appended to repeats.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`+[^`]*`+")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_SRC = re.compile(r"""<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
#: absolute paths of one machine (this VM's work tree, temporary files, home directories)
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home)/")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def split_code(text: str) -> tuple[list[str], list[str]]:
    """The lines of a Markdown text outside fenced code blocks (with code spans blanked) and
    the lines inside them."""
    prose, code = [], []
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
            code.append(line)
            continue
        if in_fence:
            code.append(line)
        else:
            prose.append(CODE_SPAN.sub("", line))
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link in a heading: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():   # code spans kept: they are text
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
            continue
        m = None if in_fence else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def link_targets(path: Path) -> list[str]:
    """Targets of every inline link, image, reference definition and HTML src/href outside
    code."""
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    out = []
    for line in prose:
        out += INLINE_LINK.findall(line)
        out += HTML_SRC.findall(line)
        m = REFERENCE_DEF.match(line)
        if m:
            out.append(m.group(1))
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """One message per relative link of ``path`` whose file or anchor does not exist."""
    problems = []
    for target in link_targets(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}: ({target})"
        if file_part.startswith("/"):
            problems.append(f"{where} is an absolute path; link relative to the page")
            continue
        if not dest.exists():
            problems.append(f"{where}: {file_part} does not exist")
            continue
        try:
            dest.relative_to(root)
        except ValueError:
            problems.append(f"{where} points outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor} in "
                            f"{dest.relative_to(root)}")
    return problems


def machine_paths(path: Path) -> list[str]:
    """Lines of ``path`` (code included) that contain an absolute path of one machine."""
    return [f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if MACHINE_PATH.search(line)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_resolve(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_paths(page):
    assert machine_paths(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = ROOT / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve()
              for t in link_targets(readme) if not EXTERNAL.match(t) and t.partition("#")[0]}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert unlinked == [], "docs pages missing from the README's table of contents"


def test_the_checker_finds_what_it_should(tmp_path):
    # a small tree with one good and one bad instance of every kind of reference
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "a.png").write_bytes(b"")
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## `kmc run` in detail\n\n## Repeat\n\n## Repeat\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n"
        "[ok](docs/page.md#kmc-run-in-detail) [ok2](docs/page.md#repeat-1) [self](#top)\n"
        "![img](docs/img/a.png) [web](https://example.org/x.md#nowhere)\n"
        "[gone](docs/missing.md) ![noimg](docs/img/b.png) [badanchor](docs/page.md#nope)\n"
        "[badself](#nowhere) <img src=\"docs/img/c.png\">\n"
        "`[not a link](docs/missing2.md)`\n"
        "```\n[in code](docs/missing3.md) /work/in-code\n```\n"
        "see /home/someone/x and ~/work/ok and a/tmp/ok\n", encoding="utf-8")
    problems = broken_links(readme, root=tmp_path)
    assert len(problems) == 5, problems
    for bad in ("docs/missing.md", "docs/img/b.png", "#nope", "#nowhere", "docs/img/c.png"):
        assert sum(bad in p for p in problems) == 1, (bad, problems)
    assert [p.split(":")[1] for p in machine_paths(readme)] == ["8", "10"]


@pytest.mark.parametrize("heading,anchor", [
    ("`kmc validate`: a one-command proof that the install is right",
     "kmc-validate-a-one-command-proof-that-the-install-is-right"),
    ("Real frameworks: garnet LLZO, LGPS and any CIF", "real-frameworks-garnet-llzo-lgps-and-any-cif"),
    ("Marking only what can change (2026-12-05)", "marking-only-what-can-change-2026-12-05"),
    ("Model vs experiment", "model-vs-experiment"),
])
def test_github_anchor_rule(heading, anchor):
    assert slug(heading) == anchor
