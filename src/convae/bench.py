"""``make bench``: run every chapter in full mode; write ``bench/results.json`` and print a table.

For each chapter the result holds ``seconds`` (wall time of executing the solution notebook top to
bottom), ``peak_mb`` (peak resident memory of the kernel and its children, sampled every 0.2 s),
``backend`` (the Keras backend) and ``metrics``: whatever the notebook reported with :func:`record`,
e.g. a test accuracy.

A chapter listed in :data:`ANCHORS` is then compared with published Keras recipes
(:mod:`convae.anchors`), run one after the other right after the chapter, on the same machine in the
same minutes, so that the time ratio is honest on a noisy machine. Their results join the chapter's
metrics as ``anchor_<name>_test_acc`` and ``anchor_<name>_train_seconds``; the verdicts against
:data:`TARGETS` are printed in a second table and kept under the chapter's ``targets``.

Results go to ``bench/results.json`` with the TensorFlow backend and to
``bench/results-<backend>.json`` with any other, so a JAX run keeps the TensorFlow figures.

Chapters record metrics with ``convae.bench.record(name=value)``. Outside a benchmark run it only
returns the values, so the same notebook code runs everywhere (fast mode included).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from convae.procwatch import ProcessWatch

METRICS_ENV = "CONVAE_METRICS_FILE"

#: The published recipes (:mod:`convae.anchors`) that run after a chapter, to compare with.
ANCHORS = {"04-mlp-vs-cnn": ("convnet", "mlp")}
#: Per chapter: (our model, its anchor, the test accuracy our model must reach).
TARGETS = {"04-mlp-vs-cnn": [("cnn", "convnet", 0.992), ("mlp", "mlp", 0.983)]}
#: Our model must train in at most this share of its anchor's train seconds.
TIME_BUDGET = 1 / 3


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


class AnchorFailed(RuntimeError):
    """An anchor recipe did not give a result; the message ends with its stderr."""


def run_anchor(name: str, env: dict | None = None) -> dict:
    """Run ``python -m convae.anchors NAME`` in its own process and return its JSON result.

    A process of its own: the anchor does not share memory, threads or compiled graphs with the
    bench or with the chapter's kernel, just as the chapter does not.
    """
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != METRICS_ENV}
    run = subprocess.run([sys.executable, "-m", "convae.anchors", name], env=env,
                         capture_output=True, text=True)
    lines = run.stdout.strip().splitlines()
    try:
        if run.returncode != 0:
            raise ValueError(f"exit code {run.returncode}")
        return json.loads(lines[-1])
    except (ValueError, IndexError) as err:  # a crash, or no JSON line at the end of its stdout
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
        raise AnchorFailed(f"anchor {name!r} failed ({err}); the end of its output:\n{tail}") from None


def compare(metrics: dict, targets, time_budget: float = TIME_BUDGET) -> dict:
    """Judge our models against their targets and anchors: {model: row with a plain verdict}.

    Our figures are ``<model>_test_acc`` and ``<model>_train_seconds``, the anchor's
    ``anchor_<anchor>_test_acc`` and ``anchor_<anchor>_train_seconds``. A missing figure is named in
    the verdict; whatever can still be judged without it is judged.
    """
    rows = {}
    for model, anchor, target_acc in targets:
        names = {"test_acc": f"{model}_test_acc", "train_seconds": f"{model}_train_seconds",
                 "anchor_test_acc": f"anchor_{anchor}_test_acc",
                 "anchor_train_seconds": f"anchor_{anchor}_train_seconds"}
        row = {"anchor": anchor, "target_test_acc": target_acc, "time_budget": round(time_budget, 4)}
        row.update({key: metrics.get(name) for key, name in names.items()})
        times = row["train_seconds"], row["anchor_train_seconds"]
        row["time_ratio"] = round(times[0] / times[1], 4) if None not in times and times[1] > 0 else None
        missing = [name for key, name in names.items() if row[key] is None]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        if row["test_acc"] is not None and row["test_acc"] < target_acc:
            problems.append(f"accuracy {row['test_acc']:.4f} < {target_acc:g} target")
        if row["time_ratio"] is not None and row["time_ratio"] > time_budget:
            problems.append(f"time ratio {row['time_ratio']:.2f} > {time_budget:.2f}")
        row["met"] = not problems
        row["verdict"] = "; ".join(problems) or "met"
        rows[model] = row
    return rows


def comparison_table(rows: dict) -> str:
    """The rows of :func:`compare` as a text table under a line that states the targets.

    A missing figure shows as ``-``.
    """
    def shown(value, spec):
        return "-" if value is None else format(value, spec)

    accuracy_targets = ", ".join(f"{model} test acc >= {r['target_test_acc']:g}" for model, r in rows.items())
    budget = next(iter(rows.values()))["time_budget"] if rows else TIME_BUDGET
    lines = [f"targets: {accuracy_targets}; train time <= {budget:.2f} x the anchor's",
             f"{'model':<18}{'our acc':>9}{'our s':>9}{'anchor acc':>12}{'anchor s':>10}{'ratio':>7}  verdict"]
    for model, r in rows.items():
        lines.append(f"{model + ' vs ' + r['anchor']:<18}{shown(r['test_acc'], '.4f'):>9}"
                     f"{shown(r['train_seconds'], '.1f'):>9}{shown(r['anchor_test_acc'], '.4f'):>12}"
                     f"{shown(r['anchor_train_seconds'], '.1f'):>10}{shown(r['time_ratio'], '.2f'):>7}  {r['verdict']}")
    return "\n".join(lines)


def default_results_path(backend: str) -> str:
    """``bench/results.json`` for TensorFlow, ``bench/results-<backend>.json`` for any other."""
    return "bench/results.json" if backend == "tensorflow" else f"bench/results-{backend}.json"


def keras_backend() -> str:
    """The backend Keras picks here (KERAS_BACKEND, else keras.json), which the kernels inherit."""
    import keras

    return keras.backend.backend()


def main(argv=None) -> int:
    from convae import config
    from convae.book import chapters
    from convae.judge import course_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: all)")
    parser.add_argument("--out", help="results file (default: bench/results.json, "
                                          "bench/results-<backend>.json for a backend other than tensorflow)")
    ns = parser.parse_args(argv)
    if config.FAST:
        print(f"make bench measures full mode; unset {config.ENV_VAR} and run again.", file=sys.stderr)
        return 2
    backend = keras_backend()
    root = course_root()
    selected = ns.chapters or chapters(root)
    out = root / (ns.out or default_results_path(backend))
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}

    def save():  # after every step, so a later failure or interruption loses nothing measured
        out.write_text(json.dumps(results, indent=2) + "\n")

    failures = []
    for chapter in selected:
        print(f"[bench] {chapter} (full mode, {backend}) ...", flush=True)
        result = results[chapter] = run_chapter(chapter, root, out.parent / f".{chapter}.metrics.jsonl")
        result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
        result["backend"] = backend
        save()
        for name in ANCHORS.get(chapter, ()):
            print(f"[bench] {chapter}: anchor {name} ...", flush=True)
            try:
                anchor = run_anchor(name)
            except AnchorFailed as err:
                failures.append(f"{chapter}: anchor {name}")
                result.setdefault("anchor_failures", {})[name] = str(err)
                print(f"[bench] {err}", file=sys.stderr, flush=True)
                continue
            result["metrics"].update({f"anchor_{name}_{key}": anchor[key] for key in ("test_acc", "train_seconds")})
            save()
        if chapter in TARGETS:
            result["targets"] = compare(result["metrics"], TARGETS[chapter])
            save()
    print(f"\n{'chapter':<18}{'seconds':>10}{'peak MB':>10}  metrics")
    for chapter in selected:
        r = results[chapter]
        shown = ", ".join(f"{k}={v:.4g}" for k, v in r["metrics"].items()) or "-"
        print(f"{chapter:<18}{r['seconds']:>10.1f}{r['peak_mb']:>10.0f}  {shown}")
    for chapter in selected:
        if "targets" in results[chapter]:
            print(f"\n{chapter} against the published recipes (convae.anchors)")
            print(comparison_table(results[chapter]["targets"]))
    print(f"\nwritten: {out}")
    if failures:
        print(f"[bench] failed, chapter results kept (the error is above and under anchor_failures in "
              f"{out.name}): {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
