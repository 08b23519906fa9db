"""Throughput of the web demo's API: `gankit serve` on loopback, 8 client threads.

Trains a tiny seed-cgan run (50 iterations; the network size, not its quality, sets the cost),
serves it, warms up, then times --requests GET /api/generate?n=16 calls from --threads threads,
and, one at a time, the largest requests the API allows (the tests check their answers, this
their times: each should take well under a second on 2 cores).

  python benchmarks/bench_serve.py [--requests 400 --threads 8]
Writes benchmarks/results/bench_serve.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from machine import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


LARGEST = {  # the most work one request may ask for
    "generate n=256, t=0.05": "/api/generate?n=256&truncation=0.05&seed=9223372036854775807",
    "interpolate steps=32": "/api/interpolate?steps=32&seed_a=9223372036854775807",
    "morph steps=32": "/api/morph?class_a=3&class_b=8&steps=32",
}


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--n", type=int, default=16, help="images per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gankit",
                "train",
                "--preset",
                "seed-cgan",
                "--out",
                str(run),
                "--iterations",
                "50",
                "--seed",
                "0",
                "--no-progress",
            ],
            check=True,
            capture_output=True,
        )
        command = [sys.executable, "-m", "gankit", "serve", str(run), "--port", "0"]
        server = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:  # the server binds a free port and prints its URL
            base = re.search(r"on (http://[^/\s]+)/", server.stdout.readline()).group(1)
            for _ in range(300):
                try:
                    fetch(base + "/api/info")
                    break
                except OSError:
                    time.sleep(0.1)
            urls = [
                f"{base}/api/generate?n={args.n}&seed={i}&label={i % 10}"
                for i in range(args.requests)
            ]
            for url in urls[:20]:
                fetch(url)
            start = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                latencies = list(pool.map(fetch, urls))
            seconds = time.perf_counter() - start
            largest = {
                name: [fetch(base + path) for _ in range(5)] for name, path in LARGEST.items()
            }
        finally:
            server.terminate()
            server.wait()
    result = {
        "requests": args.requests,
        "threads": args.threads,
        "images_per_request": args.n,
        "requests_per_s": args.requests / seconds,
        "latency_median_ms": 1000 * statistics.median(latencies),
        "latency_p95_ms": 1000 * sorted(latencies)[int(0.95 * len(latencies)) - 1],
        "largest_ms": {name: 1000 * statistics.median(t) for name, t in largest.items()},
        "largest_max_ms": {name: 1000 * max(t) for name, t in largest.items()},
    }
    text = "\n".join(
        [
            f"Web demo throughput: {args.requests} GET /api/generate (n={args.n}, seed-cgan) from "
            f"{args.threads} threads on loopback ({cpu_name()}, {os.cpu_count()} cores)",
            "",
            "| requests/s | median latency ms | p95 latency ms |",
            "|---|---|---|",
            f"| {result['requests_per_s']:.0f} | {result['latency_median_ms']:.1f} | "
            f"{result['latency_p95_ms']:.1f} |",
            "",
            "The largest requests, one at a time (5 each):",
            "",
            "| request | median ms | max ms |",
            "|---|---|---|",
            *(
                f"| {name} | {result['largest_ms'][name]:.0f} | "
                f"{result['largest_max_ms'][name]:.0f} |"
                for name in LARGEST
            ),
        ]
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_serve.md").write_text(text + "\n")
    (RESULTS / "bench_serve.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
