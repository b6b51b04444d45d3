"""A one-node Slurm cluster on localhost for the launcher tests: Debian's slurm-wlm and munge (``.ci/run`` installs
them when it can), started here as root with a configuration of our own and stopped afterwards. ``start()``
returns None, with the reason, where that cannot be done (not installed, not root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd")


def why_not() -> str | None:
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "srun") if not shutil.which(b)]
    if missing:
        return f"no Slurm on this machine ({', '.join(missing)} missing; Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmctld and slurmd here needs root"
    return None


def _conf(folder: Path) -> str:
    host = socket.gethostname()
    mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    return f"""ClusterName=scsamtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={os.cpu_count()} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _stop_running() -> None:
    """SIGTERM, then SIGKILL for a daemon still up after 10 s (a slurmd outlived a test session once)."""
    for signal in ("TERM", "KILL"):
        for name in DAEMONS:
            subprocess.run(["pkill", f"-{signal}", "-x", name], check=False)
        for _ in range(50):
            if not any(subprocess.run(["pgrep", "-x", n], capture_output=True).stdout for n in DAEMONS):
                return
            time.sleep(0.2)


def start(folder: Path) -> str | None:
    """Start munged (if needed), slurmctld and slurmd with a fresh state under ``folder``; sets ``SLURM_CONF``.
    Returns None on success, else why not."""
    reason = why_not()
    if reason:
        return reason
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(_conf(folder))
    os.environ["SLURM_CONF"] = str(conf)
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["munged", "--force"], check=False, capture_output=True)
    _stop_running()  # another test session's cluster would hold the ports
    for daemon in DAEMONS:
        subprocess.run([daemon, "-f", str(conf)], check=False, capture_output=True)
    for _ in range(100):
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if out in ("idle", "mixed", "allocated"):
            return None
        time.sleep(0.2)
    return f"Slurm did not come up: see {folder}/slurmctld.log and slurmd.log"


def stop() -> None:
    subprocess.run(["scancel", "--user", "root"], check=False, capture_output=True)
    _stop_running()
    os.environ.pop("SLURM_CONF", None)
