"""``make binder``: every chapter as Binder runs it, in full mode, in Binder's environment and memory.

Binder (repo2docker) builds ``binder/environment.yml`` with conda-forge and then runs
``binder/postBuild``; its pod has 2 GB for the Jupyter server and the kernels together, and the
kernel of a notebook that goes over is killed. conda-forge cannot be reached from every machine the
course is checked on, so this check builds the nearest thing it can: a **fresh** virtual environment
(``.binder-venv``) with exactly the pip pins of ``binder/environment.yml`` and nothing else, then
``binder/postBuild`` run in it, as Binder runs it. The environment is rebuilt from nothing whenever
``binder/``'s files or ``pyproject.toml`` change (``--rebuild`` forces it).

Then, inside that environment, each chapter's solution notebook runs top to bottom in full mode
(``convae.bench.run_chapter``) with its kernel's resident memory capped: the first sample above the
cap kills the kernel, as Binder's out-of-memory killer would, and the check names the cell. The cap
is ``--limit-mb`` (default 1,907 MiB: "2 GB" read the strict way, 2 x 10^9 bytes, since the pod's
limit also has to hold the Jupyter server). A cap on resident memory, not ``ulimit -v``: a tiny Keras
fit already reserves 2 GB of address space while using 0.6 GB.

Results go to ``bench/binder.json``: per chapter the seconds, the peak MB and a verdict. The exit
status is 1 if any chapter was killed or failed. The hidden checks' judge that a solution starts is
not counted (a student's release has no hidden checks), as in ``make bench``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

VENV_NAME = ".binder-venv"
STAMP_NAME = ".binder-stamp"
#: "2 GB" read the strict way (2 x 10^9 bytes = 1,907 MiB): the pod's limit holds the server too.
DEFAULT_LIMIT_MB = 2_000_000_000 / 2**20
#: what the environment is built from: a change to any of them rebuilds it
SOURCES = ("binder/environment.yml", "binder/postBuild", "pyproject.toml")


def binder_pins(environment_yml: Path) -> list[str]:
    """The pip requirements of a conda environment file (the ``- pip:`` list), in order."""
    import yaml

    spec = yaml.safe_load(environment_yml.read_text())
    lists = [entry["pip"] for entry in spec.get("dependencies", []) if isinstance(entry, dict) and "pip" in entry]
    if not lists:
        raise ValueError(f"{environment_yml}: no '- pip:' list under dependencies")
    return [str(requirement) for requirement in lists[0]]


def conda_python(environment_yml: Path) -> str | None:
    """The Python version the conda file asks for (``python=3.11`` -> ``"3.11"``), if any."""
    import yaml

    for entry in yaml.safe_load(environment_yml.read_text()).get("dependencies", []):
        if isinstance(entry, str) and entry.replace(" ", "").startswith("python="):
            return entry.split("=", 1)[1].strip()
    return None


def sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def build_environment(root: Path, venv: Path, python: str, *, rebuild: bool = False) -> None:
    """Make ``venv`` from nothing with ``binder/``'s pins, then run ``binder/postBuild`` in it."""
    stamp = venv / STAMP_NAME
    digest = sources_digest(root)
    if not rebuild and stamp.exists() and stamp.read_text().strip() == digest:
        print(f"[binder] {venv.name}: built from the current {', '.join(SOURCES)}; reusing it "
              f"(--rebuild to start from nothing)", flush=True)
        return
    environment = root / "binder" / "environment.yml"
    pins = binder_pins(environment)
    wanted = conda_python(environment)
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if wanted and version != wanted:
        raise SystemExit(f"[binder] binder/environment.yml asks for Python {wanted}; {python} is {version}. "
                         f"Run: make binder PYTHON=/path/to/python{wanted}")
    start = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    print(f"[binder] {venv.name}: a fresh environment, Python {version}, {len(pins)} pins from "
          f"binder/environment.yml ...", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *pins], check=True)
    # postBuild as repo2docker runs it: from the repository, the environment's python first on PATH.
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    subprocess.run(["bash", "binder/postBuild"], cwd=root, env=env, check=True)
    stamp.write_text(digest + "\n")
    print(f"[binder] {venv.name}: built in {time.perf_counter() - start:.0f} s", flush=True)


def run_chapters(root: Path, chapters: list[str], limit_mb: float, out: Path) -> int:
    """Inside the Binder environment: each chapter in full mode with the kernel's memory capped."""
    from convae.bench import MemoryLimitExceeded, run_chapter

    results = json.loads(out.read_text()) if out.exists() else {}
    limit = int(limit_mb * 2**20)
    failed = []
    for chapter in chapters:
        print(f"[binder] {chapter}: full mode, kernel capped at {limit_mb:,.0f} MB ...", flush=True)
        row = {"limit_mb": round(limit_mb, 1), "python": sys.executable,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"}
        metrics_file = out.parent / f".binder-{chapter}.metrics.jsonl"  # the chapter's record() calls
        try:
            result = run_chapter(chapter, root, metrics_file, memory_limit=limit)
            row.update(seconds=result["seconds"], peak_mb=result["peak_mb"],
                       verdict=f"ran to the end, peak {result['peak_mb']:,.0f} MB")
        except MemoryLimitExceeded as err:
            row.update(verdict=f"killed: {err}")
            failed.append(chapter)
        except Exception as err:  # a cell's error: the chapter does not run on Binder either
            row.update(verdict=f"failed: {type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}")
            failed.append(chapter)
        finally:
            metrics_file.unlink(missing_ok=True)  # a killed run leaves it behind; its figures are not kept
        results[chapter] = row
        out.write_text(json.dumps(results, indent=2) + "\n")  # after each chapter: nothing measured is lost
        print(f"[binder] {chapter}: {row['verdict']}", flush=True)
    print(f"\n{'chapter':<18}{'seconds':>10}{'peak MB':>10}  verdict (kernel capped at {limit_mb:,.0f} MB)")
    for chapter in chapters:
        row = results[chapter]
        seconds = f"{row['seconds']:.0f}" if "seconds" in row else "-"
        peak = f"{row['peak_mb']:,.0f}" if "peak_mb" in row else "-"
        print(f"{chapter:<18}{seconds:>10}{peak:>10}  {row['verdict']}")
    print(f"\nwritten: {out}")
    return 1 if failed else 0


def main(argv=None) -> int:
    from convae import config
    from convae.book import chapters as course_chapters
    from convae.judge import course_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: all)")
    parser.add_argument("--limit-mb", type=float, default=DEFAULT_LIMIT_MB,
                        help=f"the kernel's memory cap in MiB (default {DEFAULT_LIMIT_MB:,.0f})")
    parser.add_argument("--python", default="python3.11", help="the interpreter the environment is made from")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the environment from nothing")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # run by the step below
    ns = parser.parse_args(argv)
    if config.FAST:
        print(f"make binder runs full mode, as Binder does; unset {config.ENV_VAR} and run again.", file=sys.stderr)
        return 2
    root = course_root()
    selected = ns.chapters or course_chapters(root)
    out = root / "bench" / "binder.json"
    if ns.inside:
        return run_chapters(root, selected, ns.limit_mb, out)
    venv = root / VENV_NAME
    build_environment(root, venv, ns.python, rebuild=ns.rebuild)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The chapters run from the new environment's own python, so the kernels are its ipykernel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    command = [str(venv_python(venv)), "-m", "convae.binder", "--inside", "--limit-mb", str(ns.limit_mb), *selected]
    return subprocess.run(command, cwd=root, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
