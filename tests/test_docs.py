"""The documents: every relative link resolves, and the Chinese quick start shows only commands
and flags the CLI has."""

import re
import shlex
from pathlib import Path

import pytest

from gankit.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def relative_links(document: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


def test_the_documents_exist_and_link_to_each_other():
    names = {d.relative_to(ROOT).as_posix() for d in DOCUMENTS}
    for name in (
        "README.md",
        "docs/guide.md",
        "docs/metrics.md",
        "docs/results.md",
        "docs/reproduction.md",
        "docs/README.zh-CN.md",
    ):
        assert name in names
    readme_links = relative_links(ROOT / "README.md")
    for name in names - {"README.md"}:
        assert name in readme_links, f"README.md does not link {name}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(document):
    links = relative_links(document)
    for link in links:
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: {link} does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{document.name}: no heading #{anchor} in {path}"


def test_slug_follows_github():
    assert slug("Results in brief") == "results-in-brief"
    assert slug("What beats the reference CGAN") == "what-beats-the-reference-cgan"
    assert slug("Several processes: torchrun") == "several-processes-torchrun"


def shown_commands(document: Path) -> list[list[str]]:
    """Every `gankit ...` command line in the document's code blocks and inline code."""
    text = document.read_text()
    lines = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S):
        lines += [line.split("#")[0] for line in block.splitlines()]
    lines += re.findall(r"`(gankit [^`]*)`", text)
    commands = []
    for line in lines:
        line = line.strip()
        if line.startswith("gankit "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_chinese_quick_start_shows_only_real_commands_and_flags(capsys):
    commands = shown_commands(ROOT / "docs" / "README.zh-CN.md")
    assert len(commands) >= 10
    for argv in commands:  # argparse exits on an unknown command, flag or value
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"gankit {shlex.join(argv)}: {capsys.readouterr().err.strip()}")
    # the check catches what it is for
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--preset", "cdcgan", "--out", "r", "--budjet", "5"])
