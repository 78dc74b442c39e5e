"""The DeepSpeed launcher: `deepspeed --num_gpus N` on one node; with a hostfile (pdsh over ssh) on several.

The workers get RANK/LOCAL_RANK/WORLD_SIZE from the environment (--no_local_rank: no extra argument),
exactly as under torchrun. On SLURM llaunch does not use this launcher: srun starts torchrun per node,
which runs the DeepSpeed engines (parallel.strategy zero1/2/3) just the same.
"""

from __future__ import annotations

from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan, NodeCommand, launch_script
from launcher.plan.local import WORKER, worker_env
from launcher.plan.torchrun import default_port
from launcher.recipe.schema import Recipe

HOSTFILE = "hostfile"
ENV_FILE = "deepspeed_env"  # what the DeepSpeed launcher exports on the other nodes (DS_ENV_FILE)


def plan_deepspeed(recipe: Recipe, run_dir: str, python: str, cores: int) -> LaunchPlan:
    r = recipe.resources
    if r.min_nodes is not None or r.max_restarts:
        raise UserError("resources.min_nodes / resources.max_restarts are torchrun options; "
                        "use resources.launcher=torchrun for elastic runs or restarts")
    host, _, port = (r.rdzv_endpoint or "").partition(":")
    port = port or str(default_port(run_dir))
    args = ["--num_nodes", str(r.nodes), "--num_gpus", str(r.procs_per_node)]
    env = worker_env(recipe, cores)
    files: dict[str, str] = {}
    node = "localhost"
    if r.nodes > 1:
        if len(r.hosts) != r.nodes:
            raise UserError(f"resources.hosts: the deepspeed launcher on {r.nodes} nodes needs their {r.nodes} host "
                            f"names (got {len(r.hosts)}), e.g. resources.hosts=[gpu-001,gpu-002]")
        files[HOSTFILE] = "".join(f"{h} slots={r.procs_per_node}\n" for h in r.hosts)
        files[ENV_FILE] = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
        env = {**env, "DS_ENV_FILE": f"{run_dir}/{ENV_FILE}"}
        args = ["--hostfile", f"{run_dir}/{HOSTFILE}", *args, "--master_addr", host or r.hosts[0], "--launcher", "pdsh"]
        node = f"{r.hosts[0]} (starts the others over ssh)"
    argv = (python, "-m", "deepspeed.launcher.runner", *args, "--master_port", port,
            "--no_local_rank", "--module", WORKER[1], run_dir)
    command = NodeCommand(node, argv)
    files["launch.sh"] = launch_script(env, command)
    return LaunchPlan("deepspeed", run_dir, r.nodes, r.procs_per_node, (command,), env, files)
