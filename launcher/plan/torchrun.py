"""torchrun plans: one node (--standalone), or several nodes joined by a c10d rendezvous.

With c10d every node runs the same command: torchrun assigns node ranks at the rendezvous, so no
node rank is ever computed (or expanded too early) by us. The agent on the endpoint's host serves
the rendezvous store; a run-unique --rdzv-id keeps runs that share an endpoint apart.
"""

from __future__ import annotations

import zlib
from pathlib import PurePath

from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan, NodeCommand, launch_script
from launcher.plan.local import WORKER, worker_env
from launcher.recipe.schema import Recipe


def default_port(run_dir: str) -> int:
    """A port in 20000-29999 derived from the run's name: stable across restarts, apart between runs."""
    return 20000 + zlib.crc32(PurePath(run_dir).name.encode()) % 10000


def rdzv_id(run_dir: str) -> str:
    return PurePath(run_dir).name


def torchrun_args(recipe: Recipe, endpoint: str, run_id: str) -> list[str]:
    """torchrun's options; `endpoint` and `run_id` may be shell text in a batch script."""
    r = recipe.resources
    if r.nodes == 1 and r.min_nodes is None:
        args = ["--standalone", "--nnodes", "1", "--nproc-per-node", str(r.procs_per_node)]
    else:
        nnodes = f"{r.min_nodes}:{r.nodes}" if r.min_nodes is not None else str(r.nodes)
        args = ["--nnodes", nnodes, "--nproc-per-node", str(r.procs_per_node),
                "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id]
    if r.max_restarts:
        args += ["--max-restarts", str(r.max_restarts)]
    return args


def plan_torchrun(recipe: Recipe, run_dir: str, python: str, cores: int) -> LaunchPlan:
    r = recipe.resources
    endpoint = ""
    node = "localhost"
    if r.nodes > 1 or r.min_nodes is not None:
        if not r.rdzv_endpoint:
            raise UserError(f"resources.nodes={r.nodes}: torchrun on several nodes needs the first node's address, "
                            "e.g. resources.rdzv_endpoint=gpu-001:29400 (or submit it to SLURM: llaunch submit)")
        host, _, port = r.rdzv_endpoint.partition(":")
        endpoint = f"{host}:{port or default_port(run_dir)}"
        node = f"each of {r.nodes} nodes"
    argv = (python, "-m", "torch.distributed.run", *torchrun_args(recipe, endpoint, rdzv_id(run_dir)), *WORKER, run_dir)
    command = NodeCommand(node, argv)
    env = worker_env(recipe, cores)
    note = f"Start the same script on each of the {r.nodes} nodes (c10d assigns the ranks)." if r.nodes > 1 else ""
    return LaunchPlan("torchrun", run_dir, r.nodes, r.procs_per_node, (command,), env,
                      {"launch.sh": launch_script(env, command, note)})
