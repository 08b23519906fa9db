"""What a base install costs: venv size, packages pulled in, and `import gankit` time.

For this checkout and a baseline commit (default: the one before mlxtend was dropped), builds a
fresh virtual environment, installs `torch==2.13.0` (the CPU wheel) and then gankit without
extras (`pip install .`), and measures: the venv's size with and without torch, the
distributions installed, whether pandas / scikit-learn came along, and the wall time of
`python -c "import gankit"` (median of 7 runs, the two installs alternated, after one warm-up).

  python benchmarks/bench_install.py [--baseline REV]
Writes benchmarks/results/bench_install.{md,json}. Needs the package index (PyPI).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TORCH = os.environ.get("TORCH", "torch==2.13.0")


def run(*command: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def size_mb(path: Path, skip: tuple[str, ...] = ()) -> float:
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(skip)]
        total += sum(os.path.getsize(Path(root) / f) for f in files if not f.startswith(skip))
    return total / 1e6


def install(source: Path, venv: Path) -> dict:
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "-q", TORCH)
    run(python, "-m", "pip", "install", "-q", str(source))
    packages = json.loads(run(python, "-m", "pip", "list", "--format", "json"))
    names = {p["name"].lower() for p in packages}
    site = next((venv / "lib").glob("python3*/site-packages"))
    return {
        "python": python,
        "size_mb": round(size_mb(venv), 1),
        "size_without_torch_mb": round(size_mb(venv) - size_mb(site / "torch"), 1),
        "distributions": len(packages),
        "pandas": "pandas" in names,
        "scikit-learn": "scikit-learn" in names,
        "mlxtend": "mlxtend" in names,
    }


def import_seconds(python: str) -> float:
    start = time.perf_counter()
    run(python, "-c", "import gankit")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ab662a3", help="commit to compare against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "baseline"
        run("git", "worktree", "add", "--detach", str(old_tree), args.baseline, cwd=ROOT)
        try:
            rows = {
                f"baseline {args.baseline}": install(old_tree, tmp / "venv-old"),
                "this checkout": install(ROOT, tmp / "venv-new"),
            }
            for row in rows.values():
                import_seconds(row["python"])  # warm-up: the file cache, .pyc files
            times: dict[str, list[float]] = {name: [] for name in rows}
            for _ in range(7):
                for name, row in rows.items():
                    times[name].append(import_seconds(row["python"]))
        finally:
            run("git", "worktree", "remove", "--force", str(old_tree), cwd=ROOT)
    for name, row in rows.items():
        row.pop("python")
        row["import_s"] = round(statistics.median(times[name]), 3)
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    lines = [
        f"Base install (`pip install {TORCH}`, then `pip install .`, no extras) in a fresh venv "
        f"on Python {platform.python_version()} ({machine}); `import gankit`: median of 7 "
        "processes, alternated.",
        "",
        "| install | venv MB | without torch MB | distributions | pandas | scikit-learn | "
        "mlxtend | import gankit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        flags = " | ".join("yes" if row[k] else "no" for k in ("pandas", "scikit-learn", "mlxtend"))
        lines.append(
            f"| {name} | {row['size_mb']:.0f} | {row['size_without_torch_mb']:.0f} | "
            f"{row['distributions']} | {flags} | {row['import_s']:.2f} |"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_install.md").write_text(text + "\n")
    (RESULTS / "bench_install.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
