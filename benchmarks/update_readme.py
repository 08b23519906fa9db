"""Copies the benchmark tables (benchmarks/results/*.md) into README.md between the markers
`<!-- results:NAME -->` and `<!-- /results:NAME -->`, so the README shows what was measured."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for table in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        name = table.stem
        pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S)
        if pattern.search(text):
            body = table.read_text().strip()
            text = pattern.sub(lambda m, body=body: f"{m.group(1)}{body}\n{m.group(2)}", text)
            print(f"README: updated {name}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
