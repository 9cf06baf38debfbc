"""``make bench``: run every chapter in full mode; write ``bench/results.json`` and print a table.

For each chapter the result holds ``seconds`` (wall time of executing the solution notebook top to
bottom), ``peak_mb`` (peak resident memory of the kernel and its children, sampled every 0.2 s),
``backend`` (the Keras backend) and ``metrics``: whatever the notebook reported with :func:`record`,
e.g. a test accuracy.

A chapter listed in :data:`ANCHORS` is then compared with published Keras recipes
(:mod:`convae.anchors`), run one after the other right after the chapter, on the same machine in the
same minutes, so that the time ratio is honest on a noisy machine. Their results join the chapter's
metrics as ``anchor_<name>_<figure>`` (``anchor_convnet_test_acc``, ``anchor_ae_train_seconds``...).

Each chapter's :data:`TARGETS` are :class:`Target` rows (higher- or lower-is-better, an absolute
bound or one relative to another figure of the same run, time ratios, wall time and peak memory);
their verdicts ("met", or the distance in words, or "not measured") are printed in one table per
chapter and kept under the chapter's ``targets``.

Results go to ``bench/results.json`` with the TensorFlow backend and to
``bench/results-<backend>.json`` with any other, so a JAX run keeps the TensorFlow figures.
Each chapter's executed notebook is kept in ``bench/executed/<chapter>.ipynb`` (not committed), so
the chapter's text can be checked against the full run's printed figures.

While a chapter runs, a line such as ``[bench] 05-autoencoders: cell 23 of 61, 2 min 10 s elapsed``
comes at most every 30 s (:class:`ChapterProgress`, a long cell included), and its total at the end.
The kernels report Keras's training one line per epoch (:func:`convae.config.headless_env`).

Chapters record metrics with ``convae.bench.record(name=value)``. Outside a benchmark run it only
returns the values, so the same notebook code runs everywhere (fast mode included).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from convae.procwatch import ProcessWatch, kill_processes
from convae.progress import duration

METRICS_ENV = "CONVAE_METRICS_FILE"

#: The published recipes (:mod:`convae.anchors`) that run after a chapter, to compare with.
ANCHORS = {"04-mlp-vs-cnn": ("convnet", "mlp"), "05-autoencoders": ("ae",), "07-vae": ("vae",)}

#: The comparisons a target may make: higher is better, lower is better.
HIGHER, LOWER = (">=", ">"), ("<=", "<")


@dataclass(frozen=True)
class Target:
    """One target: ``metric op bound``, the bound absolute or relative to another figure of the run.

    ``Target("cnn_test_acc", ">=", 0.992)`` is absolute; with ``of=`` the bound is
    ``times * <of> / divided_by``, read from the same run: ``Target("ae_test_mse_32", "<=",
    of="pca_test_mse_32", times=0.55)``, ``Target("cnn_train_seconds", "<=",
    of="anchor_convnet_train_seconds", divided_by=3)``. The figures are the chapter's recorded
    metrics, its anchors' (``anchor_<recipe>_<figure>``), and the run's own ``seconds`` (wall time
    of the notebook) and ``peak_mb`` (its kernel's peak memory). ``noun`` and ``unit`` word the
    verdict of a miss: "accuracy 0.0001 short", "time missed by 12.0 s".
    """

    metric: str
    op: str
    value: float | None = None
    of: str | None = None
    times: float = 1.0
    divided_by: float = 1.0
    noun: str = "value"
    unit: str = ""
    spec: str = ".4f"

    def __post_init__(self):
        if self.op not in HIGHER + LOWER:
            raise ValueError(f"{self.metric}: op must be one of {HIGHER + LOWER}, not {self.op!r}")
        if (self.value is None) == (self.of is None):
            raise ValueError(f"{self.metric}: give either an absolute value or of=<metric>, not both or neither")

    @property
    def higher_is_better(self) -> bool:
        return self.op in HIGHER

    def text(self) -> str:
        """The target as one would write it: ``ae_test_mse_32 <= 0.55 * pca_test_mse_32``."""
        if self.of is None:
            return f"{self.metric} {self.op} {self.value:g}"
        bound = self.of if self.times == 1 else f"{self.times:g} * {self.of}"
        bound += "" if self.divided_by == 1 else f" / {self.divided_by:g}"
        return f"{self.metric} {self.op} {bound}"

    def judge(self, figures: dict) -> dict:
        """A row: the measured figure, the bound, the margin (positive = room to spare) and a verdict.

        A figure that is absent from ``figures`` (or None) is "not measured", never met.
        """
        row = {"target": self.text(), "metric": self.metric, "value": figures.get(self.metric),
               "reference": figures.get(self.of) if self.of else None, "bound": None, "margin": None,
               "ratio": None}
        needed = [self.metric] + ([self.of] if self.of else [])
        missing = [name for name in needed if figures.get(name) is None]
        if row["reference"] is not None:
            reference = row["reference"]
            row["bound"] = self.times * reference / self.divided_by
            if row["value"] is not None and reference:
                row["ratio"] = round(row["value"] / reference, 4)
        elif self.of is None:
            row["bound"] = self.value
        if missing:
            return {**row, "met": False, "verdict": f"not measured ({', '.join(missing)} missing)"}
        value, bound = row["value"], row["bound"]
        margin = value - bound if self.higher_is_better else bound - value
        # Figures often come from float32 (Keras's accuracy of 9,920 / 10,000 is 0.99199998): within
        # float32's precision a figure equals its bound, so it meets ">=" and misses ">".
        if math.isclose(value, bound, rel_tol=1e-6, abs_tol=1e-12):
            margin = 0.0
        strict = self.op in (">", "<")
        met = margin > 0 if strict else margin >= 0
        if met:
            verdict = "met"
        elif margin == 0:  # only a strict target can miss by nothing
            verdict = f"{self.noun} equal to the bound, must be {'above' if self.higher_is_better else 'below'} it"
        else:
            gap = f"{-margin:{self.spec}}" + (f" {self.unit}" if self.unit else "")
            verdict = f"{self.noun} {gap} short" if self.higher_is_better else f"{self.noun} missed by {gap}"
        return {**row, "margin": margin, "met": met, "verdict": verdict}


def train_time(metric: str, anchor: str, share: float = 3) -> Target:
    """Our ``model.fit`` seconds at most ``1/share`` of the anchor recipe's."""
    return Target(metric, "<=", of=f"anchor_{anchor}_train_seconds", divided_by=share, noun="time", unit="s",
                  spec=".1f")


def accuracy(metric: str, at_least: float | None = None, *, above: str | None = None) -> Target:
    """A test accuracy at least ``at_least``, or strictly above another accuracy of the run."""
    if above is not None:
        return Target(metric, ">", of=above, noun="accuracy")
    return Target(metric, ">=", at_least, noun="accuracy")


def wall_time(seconds: float) -> Target:
    """The chapter's notebook, top to bottom in full mode, in at most ``seconds`` (anchors not counted)."""
    return Target("seconds", "<=", seconds, noun="wall time", unit="s", spec=".1f")


def peak_memory(megabytes: float) -> Target:
    """The peak resident memory of the chapter's kernel (and its children) at most ``megabytes``."""
    return Target("peak_mb", "<=", megabytes, noun="peak memory", unit="MB", spec=".0f")


#: Per chapter, the targets ``make bench`` judges (one row each in the targets table).
#: Every chapter's kernel stays under 1.5 GB in full mode (Binder gives 2 GB, server included);
#: ``make binder`` runs them in Binder's environment, killed at 2 GB.
BINDER_BUDGET_MB = 1536

TARGETS = {
    **{chapter: (wall_time(600), peak_memory(BINDER_BUDGET_MB))
       for chapter in ("01-pixels", "02-convolution", "03-pooling")},
    "04-mlp-vs-cnn": (
        accuracy("cnn_test_acc", 0.992),
        train_time("cnn_train_seconds", "convnet"),
        accuracy("mlp_test_acc", 0.983),
        train_time("mlp_train_seconds", "mlp"),
        wall_time(600),
        peak_memory(BINDER_BUDGET_MB),
    ),
    "05-autoencoders": (
        # PCA-32 is measured in the same run (published on MNIST: 0.0168).
        Target("ae_test_mse_32", "<=", of="pca_test_mse_32", times=0.55, noun="test MSE", spec=".5f"),
        # F. Chollet's deep AE (32-unit code) published ~0.097; its anchor runs in the same bench.
        Target("ae_test_bce_32", "<=", 0.090, noun="test BCE"),
        Target("ae_test_bce_32", "<", of="anchor_ae_test_bce", noun="test BCE"),
        train_time("ae_train_seconds", "ae"),
        # One-class protocol; Deep SVDD's published mean is 0.948. Every digit is in the metrics.
        Target("anomaly_auroc_mean", ">=", 0.95, noun="mean AUROC"),
        # 100 labels, 20 draws: the 1-nearest-neighbour rule, then a linear (ridge) classifier
        accuracy("fewlabel_acc_ae", above="fewlabel_acc_pixels"),
        accuracy("fewlabel_acc_ae", above="fewlabel_acc_pca"),
        accuracy("fewlabel_linear_acc_ae", above="fewlabel_linear_acc_pixels"),
        accuracy("fewlabel_linear_acc_ae", above="fewlabel_linear_acc_pca"),
        wall_time(600),
        peak_memory(BINDER_BUDGET_MB),
    ),
    "06-denoising": (
        # Clipped Gaussian noise, sigma 0.5; a published small conv DAE on MNIST: about 20.2 dB.
        Target("psnr_dae_g050", ">=", 21.0, noun="PSNR", unit="dB", spec=".2f"),
        # dB above the best classical filter of the same run (each tuned on validation images)
        Target("dae_gain_over_classical_g050", ">=", 4.0, noun="gain", unit="dB", spec=".2f"),
        # what not knowing sigma costs, per level; Noise2Noise (unclipped targets) against clean targets
        *(Target(f"blind_gap_{level}", "<=", 0.5, noun="gap", unit="dB", spec=".2f") for level in ("g010", "g030", "g050")),
        Target("n2n_gap_g030", "<=", 1.0, noun="gap", unit="dB", spec=".2f"),
        Target("dae_train_seconds", "<=", 60, noun="time", unit="s", spec=".1f"),
        wall_time(600),
        peak_memory(BINDER_BUDGET_MB),
    ),
    "07-vae": (
        # Continuous MNIST, Bernoulli summed over pixels, one-sample held-out −ELBO in nats. keras.io's
        # conv VAE (latent 2, 30 epochs): held-out 149.6 measured on one GPU; its port (5 epochs,
        # training set only) runs in the same bench as the anchor "vae".
        Target("vae2_test_nelbo", "<=", 150.0, noun="test −ELBO", unit="nats", spec=".1f"),
        Target("vae2_test_nelbo", "<", of="anchor_vae_test_nelbo", noun="test −ELBO", unit="nats", spec=".1f"),
        train_time("vae2_train_seconds", "vae"),
        # PyTorch examples' MLP VAE (latent 20, continuous MNIST, summed BCE): 106.7 after 7 epochs
        Target("vae20_test_nelbo", "<=", 103.0, noun="test −ELBO", unit="nats", spec=".1f"),
        # the course classifier's labels for CVAE samples; train on CVAE digits, test on real ones
        accuracy("cvae_label_acc", 0.95),
        accuracy("synthetic_to_real_acc", 0.95),
        wall_time(600),
        peak_memory(BINDER_BUDGET_MB),
    ),
}


def record(**metrics):
    """Report named results of a chapter to the benchmark (a no-op outside ``make bench``)."""
    path = os.environ.get(METRICS_ENV)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({k: float(v) for k, v in metrics.items()}) + "\n")
    return metrics


def is_hidden_check_judge(proc) -> bool:
    """Whether ``proc`` is the one-shot ``python -I -m convae.judge`` that a solution notebook's hidden
    tests start (:func:`convae.judge.hidden_check`). A student's notebook (on Binder too) has no
    hidden tests, so the bench leaves it out of the kernel's memory."""
    import psutil

    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return "-m" in cmdline and "convae.judge" in cmdline


class PeakMemory(ProcessWatch):
    """Peak RSS of a process and its children (the chapter's kernel), the hidden-check judge excepted.

    With ``limit`` (bytes) it is also the memory cap a Binder pod puts on a kernel: the first sample
    above it kills the watched processes, as the out-of-memory killer would, and keeps the figure in
    ``exceeded``.
    """

    interval = 0.2

    def __init__(self, pid: int, limit: int | None = None):
        import psutil

        super().__init__()
        self.process = psutil.Process(pid)
        self.limit = limit
        self.exceeded = None

    def check(self, rss: int, elapsed: float) -> bool:
        if self.limit is None or rss <= self.limit:
            return False
        self.exceeded = rss
        kill_processes(self.processes())
        return True

    def processes(self):
        import psutil

        try:
            return [self.process, *(child for child in self.process.children(recursive=True)
                                    if not is_hidden_check_judge(child))]
        except psutil.Error:
            return []


class ChapterProgress:
    """The lines a person watching ``make bench`` sees while one chapter's notebook runs.

    nbclient's ``on_cell_start`` hook calls :meth:`cell_started`; :meth:`tick` (called often, from
    :meth:`ticking`'s thread) returns a line once ``every`` seconds have passed since the last one,
    else None, so fast cells make no lines and a long cell still says it is running.
    """

    def __init__(self, chapter: str, cells: int, every: float = 30.0, last_seconds: float | None = None,
                 clock=time.monotonic):
        self.chapter, self.cells, self.every, self.clock = chapter, cells, every, clock
        self.last_seconds = last_seconds  # the previous bench's wall time, if any
        self.started = self.last_line = self.cell_since = clock()
        self.cell = 0

    def cell_started(self, cell_index: int, **_):
        self.cell, self.cell_since = cell_index + 1, self.clock()

    def line(self) -> str:
        now = self.clock()
        text = f"[bench] {self.chapter}: cell {self.cell} of {self.cells}, {duration(now - self.started)} elapsed"
        if now - self.cell_since >= self.every:
            text += f", this cell for {duration(now - self.cell_since)}"
        if self.last_seconds:
            text += f" (last run {duration(self.last_seconds)})"
        return text

    def tick(self) -> str | None:
        if self.clock() - self.last_line < self.every:
            return None
        self.last_line = self.clock()
        return self.line()

    def total(self) -> str:
        return f"[bench] {self.chapter}: {self.cells} cells in {duration(self.clock() - self.started)}"

    @contextmanager
    def ticking(self):
        """While the block runs, a daemon thread prints :meth:`tick`'s lines (the first one
        ``every`` seconds after the block starts)."""
        stop = threading.Event()

        def run():
            while not stop.wait(min(1.0, self.every / 4)):
                line = self.tick()
                if line:
                    print(line, flush=True)

        self.last_line = self.clock()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


class MemoryLimitExceeded(RuntimeError):
    """A chapter's kernel went over :func:`run_chapter`'s ``memory_limit`` and was killed."""


def run_chapter(chapter: str, root: Path, metrics_file: Path, *, progress_every: float = 30.0,
                last_seconds: float | None = None, memory_limit: int | None = None) -> dict:
    """Execute the chapter's solution notebook in full (a kernel of its own, Keras reporting a line
    per epoch), printing :class:`ChapterProgress` lines; return its seconds, peak memory, metrics.

    ``memory_limit`` (bytes): the kernel is killed the moment its memory (children included, the
    hidden-check judge not) goes above it, and :class:`MemoryLimitExceeded` names the cell."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    from convae.config import headless_env

    path = root / "solutions" / chapter / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4)
    progress = ChapterProgress(chapter, len(nb.cells), every=progress_every, last_seconds=last_seconds)
    client = NotebookClient(nb, timeout=None, kernel_name="python3", on_cell_start=progress.cell_started,
                            resources={"metadata": {"path": str(path.parent)}})
    metrics_file.unlink(missing_ok=True)
    os.environ[METRICS_ENV] = str(metrics_file)
    start = time.perf_counter()
    with client.setup_kernel(env=headless_env()), progress.ticking():
        kernel_python = psutil.Process(client.km.provisioner.process.pid).cmdline()[0]
        with PeakMemory(client.km.provisioner.process.pid, limit=memory_limit) as memory:
            for index, cell in enumerate(nb.cells):
                try:
                    client.execute_cell(cell, index)
                except Exception as err:
                    if memory.exceeded is None:
                        raise
                    first_line = (cell.source.strip().splitlines() or [""])[0]
                    raise MemoryLimitExceeded(
                        f"{chapter}: the kernel reached {memory.exceeded / 2**20:,.0f} MB in cell {index + 1} "
                        f"of {len(nb.cells)} ({first_line[:60]!r}), over the limit of "
                        f"{memory_limit / 2**20:,.0f} MB, and was killed") from err
    seconds = time.perf_counter() - start
    print(progress.total(), flush=True)
    # The executed notebook, for the author who words the chapter after the full run's figures.
    executed = metrics_file.parent / "executed"
    executed.mkdir(exist_ok=True)
    nbformat.write(nb, executed / f"{chapter}.ipynb")
    metrics = {}
    if metrics_file.exists():
        for line in metrics_file.read_text().splitlines():
            metrics.update(json.loads(line))
        metrics_file.unlink()
    return {"seconds": round(seconds, 1), "peak_mb": round(memory.peak / 2**20, 1), "metrics": metrics,
            "kernel_python": kernel_python}


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


def anchor_figures(name: str, result: dict) -> dict:
    """An anchor's figures as chapter metrics: ``{"anchor_<name>_<figure>": value}`` (not its epochs or backend)."""
    return {f"anchor_{name}_{key}": value for key, value in result.items() if key not in ("epochs", "backend")}


def figures_of(result: dict) -> dict:
    """What targets may name: the chapter's metrics (anchors' included), ``seconds`` and ``peak_mb``."""
    return {**result.get("metrics", {}), "seconds": result.get("seconds"), "peak_mb": result.get("peak_mb")}


def compare(figures: dict, targets) -> list[dict]:
    """Judge every target on the figures of one run: a row each, with a verdict in plain words."""
    return [target.judge(figures) for target in targets]


def targets_table(targets, figures: dict) -> str:
    """The targets judged on ``figures`` (:func:`compare`), one line each; a missing figure shows as ``-``.

    ``reference`` is the figure a relative bound is computed from, ``ratio`` = measured / reference
    (for a train-time target, the time ratio), ``margin`` the room to spare (negative: missed).
    """
    def shown(value, spec):
        return "-" if value is None else format(value, spec)

    rows = compare(figures, targets)
    width = max([len("target")] + [len(row["target"]) for row in rows])
    met = sum(row["met"] for row in rows)
    lines = [f"targets met: {met} of {len(rows)}",
             f"{'target':<{width}}{'measured':>11}{'reference':>11}{'bound':>11}{'margin':>11}{'ratio':>7}  verdict"]
    for row, target in zip(rows, targets):
        figures = (shown(row[key], target.spec) for key in ("value", "reference", "bound", "margin"))
        lines.append(f"{row['target']:<{width}}" + "".join(f"{text:>11}" for text in figures)
                     + f"{shown(row['ratio'], '.2f'):>7}  {row['verdict']}")
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
        last_seconds = results.get(chapter, {}).get("seconds")  # what the last run took, to plan by
        result = results[chapter] = run_chapter(chapter, root, out.parent / f".{chapter}.metrics.jsonl",
                                                last_seconds=last_seconds)
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
            result["metrics"].update(anchor_figures(name, anchor))
            save()
        if chapter in TARGETS:
            result["targets"] = compare(figures_of(result), TARGETS[chapter])
            save()
    print(f"\n{'chapter':<18}{'seconds':>10}{'peak MB':>10}  metrics")
    for chapter in selected:
        r = results[chapter]
        shown = ", ".join(f"{k}={v:.4g}" for k, v in r["metrics"].items()) or "-"
        print(f"{chapter:<18}{r['seconds']:>10.1f}{r['peak_mb']:>10.0f}  {shown}")
    for chapter in selected:
        if chapter in TARGETS:
            print(f"\n{chapter}: targets (anchors from convae.anchors, run in the same bench)")
            print(targets_table(TARGETS[chapter], figures_of(results[chapter])))
    print(f"\nwritten: {out}")
    if failures:
        print(f"[bench] failed, chapter results kept (the error is above and under anchor_failures in "
              f"{out.name}): {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
