"""``make bench``: run every chapter in full mode; write ``bench/results.json`` and print a table.

For each chapter the result holds ``seconds`` (wall time of executing the solution notebook top to
bottom), ``peak_mb`` (peak resident memory of the kernel and its children, sampled every 0.2 s)
and ``metrics``: whatever the notebook reported with :func:`record`, e.g. a test accuracy.

Chapters record metrics with ``convae.bench.record(name=value)``. Outside a benchmark run it only
returns the values, so the same notebook code runs everywhere (fast mode included).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from convae.procwatch import ProcessWatch

METRICS_ENV = "CONVAE_METRICS_FILE"


def record(**metrics):
    """Report named results of a chapter to the benchmark (a no-op outside ``make bench``)."""
    path = os.environ.get(METRICS_ENV)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({k: float(v) for k, v in metrics.items()}) + "\n")
    return metrics


class PeakMemory(ProcessWatch):
    """Peak RSS of a process and its children (the chapter's kernel)."""

    interval = 0.2

    def __init__(self, pid: int):
        import psutil

        super().__init__()
        self.process = psutil.Process(pid)

    def processes(self):
        import psutil

        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []


def run_chapter(chapter: str, root: Path, metrics_file: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient

    path = root / "solutions" / chapter / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=None, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    metrics_file.unlink(missing_ok=True)
    os.environ[METRICS_ENV] = str(metrics_file)
    start = time.perf_counter()
    with client.setup_kernel():
        with PeakMemory(client.km.provisioner.process.pid) as memory:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
    seconds = time.perf_counter() - start
    metrics = {}
    if metrics_file.exists():
        for line in metrics_file.read_text().splitlines():
            metrics.update(json.loads(line))
        metrics_file.unlink()
    return {"seconds": round(seconds, 1), "peak_mb": round(memory.peak / 2**20, 1), "metrics": metrics}


def main(argv=None) -> int:
    from convae import config
    from convae.book import chapters
    from convae.judge import course_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: all)")
    parser.add_argument("--out", default="bench/results.json")
    ns = parser.parse_args(argv)
    if config.FAST:
        print(f"make bench measures full mode; unset {config.ENV_VAR} and run again.", file=sys.stderr)
        return 2
    root = course_root()
    selected = ns.chapters or chapters(root)
    out = root / ns.out
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    for chapter in selected:
        print(f"[bench] {chapter} (full mode) ...", flush=True)
        results[chapter] = run_chapter(chapter, root, out.parent / f".{chapter}.metrics.jsonl")
        results[chapter]["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'chapter':<18}{'seconds':>10}{'peak MB':>10}  metrics")
    for chapter in selected:
        r = results[chapter]
        shown = ", ".join(f"{k}={v:.4g}" for k, v in r["metrics"].items()) or "-"
        print(f"{chapter:<18}{r['seconds']:>10.1f}{r['peak_mb']:>10.0f}  {shown}")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
