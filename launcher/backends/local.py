"""Run a plan on this machine: the worker processes inherit the terminal so rank 0 can draw progress."""

from __future__ import annotations

import os
import signal
import subprocess

from launcher.plan.launch_plan import LaunchPlan


def execute(plan: LaunchPlan) -> int:
    """Start the plan's command, wait for it, and return its exit code.

    Ctrl-C is forwarded to the process group once (workers then checkpoint and exit); the
    workers write their own logs under the run dir.
    """
    env = {**os.environ, **plan.env}
    proc = subprocess.Popen(plan.commands[0].argv, env=env, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.wait()
