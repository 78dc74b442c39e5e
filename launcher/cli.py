"""The `llaunch` command: parse, call one function, print. Light commands import no torch."""

from __future__ import annotations

import argparse
import json
import sys

from launcher.errors import UserError


def _cmd_validate(args) -> int:
    from launcher.preflight import preflight
    from launcher.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    preflight(recipe)  # data files and model dirs exist here (`plan` does not ask: a cluster's disks may hold them)
    print(f"ok: {args.recipe} ({_one_line(recipe)})")
    return 0


def _cmd_plan(args) -> int:
    from pathlib import Path

    from launcher.backends.base import backend_for
    from launcher.plan.describe import describe
    from launcher.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides + _where(args))
    plan = backend_for(recipe).dryrun(recipe, str(Path(recipe.output.dir).resolve() / f"{recipe.name}-<stamp>"))
    print(plan.to_json() if args.json else describe(args.recipe, recipe, plan))
    return 0


def _where(args) -> list[str]:
    """--on / --nodes / --gpus-per-node as overrides (they win over key=value ones)."""
    where = [f"resources.launcher={args.on}"] if getattr(args, "on", None) else []
    if args.nodes is not None:
        where.append(f"resources.nodes={args.nodes}")
    if args.gpus_per_node is not None:
        where += [f"resources.procs_per_node={args.gpus_per_node}", f"slurm.gpus_per_node={args.gpus_per_node}"]
    return where


def _cmd_estimate(args) -> int:
    from launcher.estimate import parse_size, report
    from launcher.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    nodes = args.nodes or recipe.resources.nodes
    per_node = args.gpus_per_node or recipe.resources.procs_per_node
    print(report(recipe, parse_size(args.gpu_memory), nodes, per_node))
    return 0


def _cmd_schema(args) -> int:
    if args.markdown:
        from launcher.recipe.reference import markdown_reference

        print(markdown_reference(), end="")
        return 0
    from launcher.recipe import Recipe

    print(json.dumps(Recipe.model_json_schema(by_alias=True), indent=2))
    return 0


def _cmd_prepare(args) -> int:
    from launcher.lifecycle import prepare_data
    from launcher.preflight import preflight
    from launcher.recipe import load_recipe

    workers = [f"data.num_proc={args.workers}"] if args.workers else []
    recipe = load_recipe(args.recipe, args.overrides + workers)
    preflight(recipe)
    if args.tasks is None and args.task is None:
        prepare_data(recipe)
        return 0
    if args.tasks is None or args.task is None or not 0 <= args.task < args.tasks:
        raise UserError("--task I --tasks N go together, with 0 <= I < N (an array task's share of the shards)")
    from launcher.data.prepare import prepare_slice

    prepare_slice(recipe, args.task, args.tasks)
    return 0


def _cmd_run(args) -> int:
    from launcher.lifecycle import start_run

    return start_run(args.recipe, args.overrides + _where(args))[1]


def _cmd_submit(args) -> int:
    from launcher.lifecycle import submit_run

    submit_run(args.recipe, args.overrides + _where(args), prepare=not args.no_prepare)
    return 0


def _cmd_status(args) -> int:
    from launcher.backends.status import run_status, table
    from launcher.rundir import RunDir

    runs = [RunDir.open(path) for path in args.run_dirs] or RunDir.find(args.dir)
    rows = [run_status(run) for run in runs]
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


def _cmd_ls(args) -> int:
    from launcher.backends.status import run_status, table
    from launcher.rundir import RunDir

    print(table([run_status(run, ask_scheduler=False) for run in RunDir.find(args.dir)]))
    return 0


def _cmd_logs(args) -> int:
    from launcher.backends.logs import show
    from launcher.rundir import RunDir

    show(RunDir.open(args.run_dir), follow=args.follow)
    return 0


def _cmd_cancel(args) -> int:
    from launcher.backends.base import backend_for
    from launcher.rundir import RunDir

    run = RunDir.open(args.run_dir)
    print(backend_for(run).cancel(run))
    return 0


def _cmd_resume(args) -> int:
    from launcher.lifecycle import resume_run

    return resume_run(args.run_dir, args.overrides, force=args.force)[1]


def _cmd_export(args) -> int:
    from pathlib import Path

    from launcher.rundir import RunDir
    from launcher.train.quiet import quiet_libraries

    quiet_libraries(cpu=True)
    from launcher.train.export import export_checkpoint

    out = export_checkpoint(RunDir.open(args.run_dir), args.step, Path(args.out) if args.out else None, args.dtype,
                            best=args.best, merge_lora=args.merge_lora)
    print(f"exported: {out} (transformers from_pretrained)")
    return 0


def _cmd_eval(args) -> int:
    # checked here, not by the parser's choices: importing the names loads the recipe layer (0.2 s per command)
    from launcher.recipe.objectives import OBJECTIVE_NAMES
    from launcher.train.quiet import quiet_libraries

    if args.objective is not None and args.objective not in OBJECTIVE_NAMES:
        raise UserError(f"--objective {args.objective}: not an objective; one of {', '.join(OBJECTIVE_NAMES)}")

    quiet_libraries(cpu=True)
    from launcher.train.evaluation.offline import evaluate_target

    report = evaluate_target(args.target, args.data or [], args.split, args.step, args.best, args.objective,
                             args.batch_size, args.max_batches)
    print(json.dumps({"source": report.source, "files": report.files, "examples": report.examples,
                      "metrics": report.metrics}, indent=1) if args.json else report.table())
    return 0


def _cmd_checkpoints(args) -> int:
    from launcher.checkpoints import describe
    from launcher.rundir import RunDir

    run = RunDir.open(args.run_dir)
    rows = describe(run.checkpoints, verify=args.verify)
    damaged = [row for row in rows if row.get("damaged")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 1 if damaged else 0
    if not rows:
        print(f"no checkpoints in {run.checkpoints}")
        return 0
    print(f"{'step':>8}  {'size':>10}  {'state':<10}  path")
    for row in rows:
        state = "DAMAGED" if row.get("damaged") else "complete" if row["complete"] else "INCOMPLETE"
        mark = "  <- resume uses this" if row["resume"] else ""
        mark += "  <- BEST" if row.get("best") else ""
        mark += f"  <- {row['damaged']}" if row.get("damaged") else ""
        print(f"{row['step']:>8}  {row['bytes'] / 2**20:>8.1f}MB  {state:<10}  {row['path']}{mark}")
    if args.verify:
        checked = sum(row["complete"] for row in rows)
        print(f"verified {checked} complete checkpoint(s): " + (f"{len(damaged)} damaged" if damaged else "all intact"))
    return 1 if damaged else 0


def _cmd_report(args) -> int:
    from pathlib import Path

    from launcher.report import render, summary
    from launcher.rundir import RunDir

    run = RunDir.open(args.run_dir)
    print(summary(run))
    print(f"plot       {render(run, Path(args.out) if args.out else run.path / 'report.png')}")
    return 0


def _cmd_init(args) -> int:
    from launcher.shipped import copy_recipe, list_recipes

    if not args.name:
        for name, description in list_recipes():
            print(f"{name:<32} {description}")
        print("\ncopy one to start from: llaunch init NAME [--to FILE]")
        return 0
    print(f"wrote {copy_recipe(args.name, args.to)}")
    return 0


def _one_line(recipe) -> str:
    r = recipe.resources
    return (f"{recipe.name}: {recipe.objective}, {recipe.method.type}, {recipe.parallel.strategy}, "
            f"{r.nodes}x{r.procs_per_node} procs, {recipe.train.max_steps} steps")


class _OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes get one line too, like recipe mistakes (argparse adds the usage)."""

    def error(self, message: str):
        message = " ".join(message.splitlines())
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="llaunch", description="Train LLMs from one recipe, laptop to cluster.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_recipe(name: str, func, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("recipe", help="recipe .yaml file")
        cmd.add_argument("overrides", nargs="*", help="key.sub=value overrides (~key.sub deletes)")
        cmd.set_defaults(func=func)
        return cmd

    def with_where(cmd: argparse.ArgumentParser, on: bool = True) -> argparse.ArgumentParser:
        if on:
            cmd.add_argument("--on", choices=["local", "torchrun", "deepspeed", "slurm"],
                             help="launcher (resources.launcher)")
        cmd.add_argument("--nodes", type=int, metavar="N", help="nodes (resources.nodes)")
        cmd.add_argument("--gpus-per-node", type=int, metavar="G",
                         help="workers per node, one per GPU (resources.procs_per_node; on SLURM also "
                         "slurm.gpus_per_node)")
        return cmd

    with_where(with_recipe("run", _cmd_run, "create a run dir and train on this machine (or one node of several)"))
    submit = with_where(with_recipe("submit", _cmd_submit, "prepare the data, create a run dir, sbatch its job "
                                    "(resources.launcher=slurm)"), on=False)
    submit.add_argument("--no-prepare", action="store_true", help="prepare the data neither here nor in an array "
                        "job: the workers prepare it")
    status = sub.add_parser("status", help="state, step, loss, checkpoint and restarts of runs (asks SLURM)")
    status.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="default: every run under --dir")
    status.add_argument("--dir", default="runs", help="where runs are (output.dir), default runs")
    status.add_argument("--json", action="store_true", help="one JSON object per run, for scripts")
    status.set_defaults(func=_cmd_status)
    ls = sub.add_parser("ls", help="list the runs under a directory (reads run dirs only, asks nobody)")
    ls.add_argument("dir", nargs="?", default="runs", help="output.dir, default runs")
    ls.set_defaults(func=_cmd_ls)
    logs = sub.add_parser("logs", help="print a run's logs (SLURM job output, or the rank logs)")
    logs.add_argument("run_dir")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run has ended")
    logs.set_defaults(func=_cmd_logs)
    cancel = sub.add_parser("cancel", help="cancel a run's SLURM job (scancel), or stop a local run at the next step")
    cancel.add_argument("run_dir")
    cancel.set_defaults(func=_cmd_cancel)
    resume = sub.add_parser("resume", help="continue a run from its newest complete checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. resources.procs_per_node=1")
    resume.add_argument("--force", action="store_true", help="resume even if the change alters the training")
    resume.set_defaults(func=_cmd_resume)
    export = sub.add_parser("export", help="consolidate a checkpoint into a Hugging Face model directory")
    export.add_argument("run_dir")
    export.add_argument("--step", type=int, help="checkpoint step (default: the newest complete one)")
    export.add_argument("--out", help="output directory (default: RUN_DIR/exports/step-NNNNNN)")
    export.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    export.add_argument("--best", action="store_true", help="the checkpoint marked BEST (by eval.metric)")
    export.add_argument("--merge-lora", action="store_true",
                        help="LoRA/QLoRA runs: write the base with the adapter merged in (default: the adapter alone)")
    export.set_defaults(func=_cmd_export)
    evaluate = sub.add_parser("eval", help="score a run's checkpoint or an exported model on a data file and "
                              "print the metrics table")
    evaluate.add_argument("target", metavar="RUN_DIR|MODEL_DIR")
    evaluate.add_argument("--data", nargs="+", metavar="FILE", help="data files (default: the run's data.eval)")
    evaluate.add_argument("--split", choices=["train", "eval"], default="eval",
                          help="without --data: which of the run's splits (default eval)")
    evaluate.add_argument("--step", type=int, help="a run's checkpoint step (default: the newest complete one)")
    evaluate.add_argument("--best", action="store_true", help="a run's checkpoint marked BEST")
    evaluate.add_argument("--objective", help="for a model directory without objective.json: its objective "
                          "(clm, sft, seq_cls, ...)")
    evaluate.add_argument("--batch-size", type=int, default=16, metavar="N", help="examples per forward (16)")
    evaluate.add_argument("--max-batches", type=int, metavar="N", help="stop after N batches")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(func=_cmd_eval)
    checkpoints = sub.add_parser("checkpoints", help="list a run's checkpoints and which one resume uses")
    checkpoints.add_argument("run_dir")
    checkpoints.add_argument("--json", action="store_true")
    checkpoints.add_argument("--verify", action="store_true",
                             help="read every file back and compare it with the checksums recorded at save")
    checkpoints.set_defaults(func=_cmd_checkpoints)
    plan = with_where(with_recipe("plan", _cmd_plan, "show the resolved recipe and the exact commands (or job "
                                  "script), run nothing"))
    plan.add_argument("--json", action="store_true", help="print the LaunchPlan as JSON")
    with_recipe("validate", _cmd_validate, "check a recipe (exit 2 with one line if it is wrong)")
    prepare = with_recipe("prepare", _cmd_prepare, "tokenize and pack the data into the cache, nothing else")
    prepare.add_argument("--workers", type=int, metavar="N", help="processes, one shard each at a time (data.num_proc)")
    prepare.add_argument("--task", type=int, metavar="I", help="array task I of --tasks N: prepare only the shards "
                         "whose index %% N == I; a later plain prepare assembles them")
    prepare.add_argument("--tasks", type=int, metavar="N", help="tasks in the array")
    estimate = with_recipe("estimate", _cmd_estimate,
                           "memory per GPU for every engine x method, from the model's config (loads no weights)")
    estimate.add_argument("--gpu-memory", default="80GiB", help="memory of one GPU (default 80GiB)")
    estimate.add_argument("--nodes", type=int, default=None, help="default: resources.nodes")
    estimate.add_argument("--gpus-per-node", type=int, default=None, help="default: resources.procs_per_node")
    report = sub.add_parser("report", help="plot a run's curves to a PNG and print its summary")
    report.add_argument("run_dir")
    report.add_argument("--out", help="PNG path (default: RUN_DIR/report.png)")
    report.set_defaults(func=_cmd_report)
    init = sub.add_parser("init", help="list the shipped recipes, or copy one to start from")
    init.add_argument("name", nargs="?", help="shipped recipe name (see: llaunch init)")
    init.add_argument("--to", help="destination file (default: ./NAME.yaml)")
    init.set_defaults(func=_cmd_init)
    schema = sub.add_parser("schema", help="print the recipe JSON Schema (for editors)")
    schema.add_argument("--markdown", action="store_true", help="print the recipe reference table instead")
    schema.set_defaults(func=_cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may follow options (`plan r.yaml --nodes 2 train.lr=1e-4`), which argparse leaves over
    if extra and hasattr(args, "overrides") and all(not a.startswith("-") for a in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except UserError as exc:
        print("error: " + " ".join(str(exc).splitlines()), file=sys.stderr)  # one line, always
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
