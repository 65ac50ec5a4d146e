"""The docs: the site from docs/ builds in strict mode, every page is in its table of contents, and every link
of the README and the pages leads somewhere (a file that exists, a heading that exists, as GitHub makes its
anchors).

``make docs`` builds the same site into docs/_build/html.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cronium_provider.get_provider_info import get_provider_info
from tests.conftest import REPO, airflow_env, missing

DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = sorted(DOCS.glob("*.md"))

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text: str) -> str:
    """The Markdown outside code: fenced blocks and inline code spans removed (their brackets are no links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (MyST's ``myst_heading_anchors`` makes the same):
    lower case, inline code and punctuation dropped but ``-`` and ``_``, spaces as ``-``, repeats numbered."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", FENCE.sub("", path.read_text()), re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(source: Path) -> list[str]:
    """Every relative link of ``source`` whose file does not exist, or whose ``#anchor`` is no heading there."""
    broken = []
    for target in LINK.findall(prose(source.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve() if path else source
        if not file.exists():
            broken.append(f"{source.relative_to(REPO)}: {target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in github_anchors(file):
            broken.append(f"{source.relative_to(REPO)}: {target}: no heading #{anchor} in {file.relative_to(REPO)}")
    return broken


def test_every_link_of_the_readme_resolves() -> None:
    assert LINK.findall(prose(README.read_text())), "the README links nowhere: the pattern is wrong"
    assert broken_links(README) == []
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in LINK.findall(prose(README.read_text()))}
    assert DOCS / "index.md" in linked, "the README links to the docs' index"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_of_a_docs_page_resolves_on_github(page: Path) -> None:
    assert broken_links(page) == []


def test_every_docs_page_is_in_the_toctree() -> None:
    listed: list[str] = []
    for page in PAGES:
        for block in re.findall(r"^```\{toctree\}[^\n]*\n(.*?)^```", page.read_text(), re.M | re.S):
            listed += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")]
    assert len(listed) == len(set(listed)), f"pages listed twice: {sorted(listed)}"
    pages = {p.stem for p in PAGES} - {"index"}
    assert sorted(pages - set(listed)) == [], "pages in no toctree"
    assert sorted(set(listed) - pages) == [], "toctree entries with no page"


def test_the_docs_build_in_strict_mode(tmp_path: Path) -> None:
    """``sphinx-build -W --keep-going -n``: any warning (a broken reference, a docstring docutils cannot read,
    a page outside the toctree) fails the build; the output holds no warning either."""
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None:
        missing("sphinx and myst-parser", "install the docs extra: pip install -e '.[docs]'")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(DOCS), str(out)],
        env=airflow_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-5000:]
    pages = {p.stem for p in PAGES}
    assert {p.stem for p in out.glob("*.html")} >= pages, sorted(pages - {p.stem for p in out.glob("*.html")})
    # the options table is read from the provider's declaration: every option there is on the page
    table = (out / "configuration.html").read_text()
    for option in get_provider_info()["config"]["cronium"]["options"]:
        assert f'id="option-{option.replace("_", "-")}"' in table, option
    # the reference is generated from the docstrings: each operator and hook class has its entry
    reference = (out / "operators.html").read_text() + (out / "hooks.html").read_text()
    for name in ("CroniumScriptOperator", "CroniumRemoteScriptOperator", "CroniumHttpOperator", "CroniumHook"):
        assert 'id="cronium_provider.' in reference and f'.{name}"' in reference, name
