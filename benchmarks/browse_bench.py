"""Times of the browsing commands on one search: report, export (CSV, Parquet), dashboard.

Usage (from the repository root; the search defaults to `make demo`'s):
    .venv/bin/python benchmarks/browse_bench.py [--storage sqlite:///stagetune.db] [--name demo]
Runs each command through the CLI as a user would, 3 times, and prints the median.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

STAGETUNE = [sys.executable, "-m", "stagetune"]


def timed(command: list[str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=600)
    return time.monotonic() - started


def dashboard_start(storage: str, cwd: Path) -> float:
    """Seconds until the dashboard answers its first /api/studies request."""
    started = time.monotonic()
    process = subprocess.Popen(
        [*STAGETUNE, "dashboard", "--storage", storage, "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url.replace("/dashboard/", "/api/studies"), timeout=60) as r:
            r.read()
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite:///stagetune.db")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    storage = args.storage
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        storage = f"sqlite:///{Path(storage[len('sqlite:///') :]).resolve()}"
    source = ["--storage", storage, "--name", args.name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runs = {
            "report": lambda: timed([*STAGETUNE, "report", *source, "--out", "r"], out),
            "export csv": lambda: timed([*STAGETUNE, "export", *source, "--out", "t.csv"], out),
            "export parquet": lambda: timed(
                [*STAGETUNE, "export", *source, "--out", "t.parquet"], out
            ),
            "dashboard start": lambda: dashboard_start(storage, out),
        }
        for label, run in runs.items():
            seconds = [run() for _ in range(args.repeat)]
            print(f"{label:<16} median {statistics.median(seconds):6.2f} s  ({args.repeat} runs)")
        html = out / "r" / f"{args.name}-report.html"
        images = sorted((out / "r" / f"{args.name}-report").glob("*.png"))
        print(
            f"report: {html.stat().st_size / 1e6:.1f} MB HTML, {len(images)} PNG images, "
            f"{sum(p.stat().st_size for p in images) / 1e3:.0f} kB in all; "
            f"CSV {(out / 't.csv').stat().st_size / 1e3:.0f} kB, "
            f"Parquet {(out / 't.parquet').stat().st_size / 1e3:.0f} kB"
        )


if __name__ == "__main__":
    main()
