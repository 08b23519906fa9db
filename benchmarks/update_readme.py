"""Copies the benchmark tables (benchmarks/results/*.md) into README.md and docs/*.md between
the markers `<!-- results:NAME -->` and `<!-- /results:NAME -->`, so the documents show what was
measured."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    tables = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text()
        for table in tables:
            name = table.stem
            pattern = re.compile(
                rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)",
                re.S,
            )
            if pattern.search(text):
                body = table.read_text().strip()
                text = pattern.sub(lambda m, body=body: f"{m.group(1)}{body}\n{m.group(2)}", text)
                print(f"{document.relative_to(ROOT)}: updated {name}")
        document.write_text(text)


if __name__ == "__main__":
    main()
