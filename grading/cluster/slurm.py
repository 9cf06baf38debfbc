"""A real single-node Slurm cluster (Debian's ``slurm-wlm`` and ``munge``) in a folder of its own.

``python grading/cluster/slurm.py up STATE`` installs the packages when missing (apt-get; root),
writes a munge key and a ``slurm.conf`` for this one machine under STATE, and starts ``munged``,
``slurmctld`` and ``slurmd`` on ports and sockets of their own (nothing in /etc is changed);
``down STATE`` stops them. Commands reach this cluster with ``SLURM_CONF=STATE/slurm.conf``.
tests/cluster/test_slurm.py grades a class through it (grading/README.md, "Grading on Slurm").
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("slurmctld", "slurmd", "munged")


def install() -> None:
    """apt-get install slurm-wlm munge, when their commands are missing (apt-get update only if that fails)."""
    if all(shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def env(state: Path) -> dict:
    """The environment in which sbatch, squeue, scancel and sacct talk to this cluster."""
    return dict(os.environ, SLURM_CONF=str(state / "slurm.conf"))


def config(state: Path, cpus: int, real_memory: int) -> str:
    return f"""\
# a single-node cluster for make test-cluster (grading/cluster/slurm.py); nothing outside {state}
ClusterName=convae
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={state}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
# no cgroups here: processes are tracked by their parent, tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# one core and its share of memory per grading task
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=600
MaxArraySize=10001
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory} State=UNKNOWN
PartitionName=grading Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


def run(cmd, state: Path, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(state), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n"
                           + log_tail(state))
    return proc


def log_tail(state: Path, chars=2000) -> str:
    return "".join(f"--- {name}:\n{(state / name).read_text(errors='replace')[-chars:]}\n"
                   for name in ("slurmctld.log", "slurmd.log", "munge/munged.log") if (state / name).exists())


def up(state: Path, cpus: int | None = None) -> Path:
    """Start munged, slurmctld and slurmd for this machine; returns the slurm.conf path."""
    assert os.geteuid() == 0, "slurmd and munged run as root here: run as root (CI does)"
    install()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    for sub in ("munge", "ctld", "slurmd"):
        (state / sub).mkdir(exist_ok=True)
    munge = state / "munge"
    munge.chmod(0o755)  # the socket must be reachable by every user who submits
    key = munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={munge}/munge.socket",
                    f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                    f"--seed-file={munge}/munged.seed"], check=True, capture_output=True, text=True)
    cpus = cpus or os.cpu_count() or 1
    conf = state / "slurm.conf"
    conf.write_text(config(state, cpus, int(memory_mb() * 0.9)))
    conf.chmod(0o644)
    run(["slurmctld", "-f", str(conf)], state)
    run(["slurmd", "-f", str(conf), "-N", "localhost"], state)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env(state), capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() in ("idle", "mixed", "allocated"):
            return conf
        time.sleep(1)
    raise RuntimeError(f"the node did not become idle in 60 s: {proc.stdout}{proc.stderr}\n{log_tail(state)}")


def down(state: Path) -> None:
    """Stop slurmd, slurmctld and munged by the pids they wrote (SIGTERM, then SIGKILL)."""
    for pid_file in (state / "slurmd.pid", state / "slurmctld.pid", state / "munge" / "munged.pid"):
        if not pid_file.exists():
            continue
        try:
            pid = int(pid_file.read_text().split()[0])
        except (ValueError, IndexError):
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            for _ in range(40):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.25)
            else:
                continue
            break


def sbatch_array(state: Path, jobs_txt: Path, indices: str, mem: str = "3G", log_dir: Path | None = None) -> str:
    """One task per line of ``jobs_txt`` (``indices``: e.g. '1-100' or '2'), the worker command of
    grading/README.md; returns the job id."""
    log_dir = log_dir or jobs_txt.parent / "slurm-logs"
    log_dir.mkdir(exist_ok=True)
    python = ROOT / ".venv" / "bin" / "python"
    wrap = f'{python} -m convae.grading.worker "$(sed -n "${{SLURM_ARRAY_TASK_ID}}p" {jobs_txt})"'
    proc = run(["sbatch", "--parsable", f"--array={indices}", "--cpus-per-task=1", f"--mem={mem}",
                f"--chdir={ROOT}", f"--output={log_dir}/%A_%a.out", "--job-name=convae-grade",
                "--export=ALL,CONVAE_FAST=1,TF_CPP_MIN_LOG_LEVEL=3", f"--wrap={wrap}"], state)
    return proc.stdout.strip().split(";")[0]


def states(state: Path, job_id: str) -> dict[str, str]:
    """{array index: state} of a job's tasks still known to slurmctld (MinJobAge keeps finished ones)."""
    proc = run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%K %T"], state)
    return dict(line.split() for line in proc.stdout.splitlines() if line.strip())


def wait(state: Path, job_id: str, timeout: float = 900) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = states(state, job_id)
        if now and all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for s in now.values()):
            return now
        time.sleep(2)
    raise RuntimeError(f"job {job_id} not finished in {timeout} s: {states(state, job_id)}\n{log_tail(state)}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: slurm.py up|down STATE_DIR", file=sys.stderr)
        return 2
    state = Path(argv[1]).resolve()
    if argv[0] == "up":
        conf = up(state)
        print(f"Slurm is up: export SLURM_CONF={conf}; stop: slurm.py down {state}")
    else:
        down(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
