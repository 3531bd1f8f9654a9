"""Child processes that end with their parent: the ``social311-dbt`` launcher.

dagster-dbt starts ``dbt build`` with a plain ``subprocess.Popen``. When the run's process is
SIGKILLed (OOM killer, ``kill -9``, a container stop), nothing in it runs any more, and dbt
went on alone, holding the DuckDB lock for ~26 s and failing the next run. On Linux a process
can ask the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); the setting
survives ``exec``. ``social311-dbt`` asks for SIGKILL, then becomes dbt (same arguments, same
environment, same PID), so dbt dies with the run and its lock is freed at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent ends. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def exec_bound(argv: list[str], parent_pid: int) -> None:
    """Become ``argv`` (by exec) bound to ``parent_pid``: killed when it ends. Never returns."""
    die_with_parent()
    # The parent may have died between fork and prctl: then nothing would signal us.
    if os.getppid() != parent_pid:
        os._exit(137)
    os.execv(argv[0], argv)


def main() -> None:
    """``social311-dbt ARGS``: dbt of this environment with ARGS, ended with its parent."""
    dbt = Path(sys.executable).with_name("dbt")
    exec_bound([str(dbt) if dbt.exists() else "dbt", *sys.argv[1:]], os.getppid())
