"""Run a plan on this machine: the worker processes inherit the terminal so rank 0 can draw progress."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from launcher.plan.launch_plan import LaunchPlan


def execute(plan: LaunchPlan) -> int:
    """Start the plan's command, wait for it, and return its exit code.

    The workers run in their own session, so a signal to llaunch reaches them only through here:
    Ctrl-C is forwarded as SIGINT, and SIGTERM/SIGHUP (a process manager stopping llaunch, a closed
    terminal) as SIGTERM; either way the workers checkpoint at the next step boundary and exit, and
    llaunch waits for them instead of leaving them orphaned.
    """
    env = {**os.environ, **plan.env}
    proc = subprocess.Popen(plan.commands[0].argv, env=env, start_new_session=True)

    def forward(signum: int, _frame=None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            forward(signal.SIGINT)
