"""The `llaunch` command: parse, call one function, print. Light commands import no torch."""

from __future__ import annotations

import argparse
import json
import sys

from launcher.errors import UserError


def _cmd_validate(args) -> int:
    from launcher.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(f"ok: {args.recipe} ({_one_line(recipe)})")
    return 0


def _cmd_plan(args) -> int:
    from launcher.plan import make_plan
    from launcher.plan.describe import describe
    from launcher.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    plan = make_plan(recipe, f"{recipe.output.dir}/{recipe.name}-<stamp>")
    print(plan.to_json() if args.json else describe(args.recipe, recipe, plan))
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

    recipe = load_recipe(args.recipe, args.overrides)
    preflight(recipe)
    prepare_data(recipe)
    return 0


def _cmd_run(args) -> int:
    from launcher.lifecycle import start_run

    return start_run(args.recipe, args.overrides)[1]


def _cmd_resume(args) -> int:
    from launcher.lifecycle import resume_run

    return resume_run(args.run_dir, args.overrides, force=args.force)[1]


def _cmd_export(args) -> int:
    from pathlib import Path

    from launcher.rundir import RunDir
    from launcher.train.quiet import quiet_libraries

    quiet_libraries(cpu=True)
    from launcher.train.export import export_checkpoint

    out = export_checkpoint(RunDir.open(args.run_dir), args.step, Path(args.out) if args.out else None, args.dtype)
    print(f"exported: {out} (AutoModelForCausalLM.from_pretrained)")
    return 0


def _cmd_checkpoints(args) -> int:
    from launcher.checkpoints import describe
    from launcher.rundir import RunDir

    run = RunDir.open(args.run_dir)
    rows = describe(run.checkpoints)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no checkpoints in {run.checkpoints}")
        return 0
    print(f"{'step':>8}  {'size':>10}  {'state':<10}  path")
    for row in rows:
        state = "complete" if row["complete"] else "INCOMPLETE"
        mark = "  <- resume uses this" if row["resume"] else ""
        print(f"{row['step']:>8}  {row['bytes'] / 2**20:>8.1f}MB  {state:<10}  {row['path']}{mark}")
    return 0


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

    with_recipe("run", _cmd_run, "create a run dir and train on this machine")
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
    export.set_defaults(func=_cmd_export)
    checkpoints = sub.add_parser("checkpoints", help="list a run's checkpoints and which one resume uses")
    checkpoints.add_argument("run_dir")
    checkpoints.add_argument("--json", action="store_true")
    checkpoints.set_defaults(func=_cmd_checkpoints)
    plan = with_recipe("plan", _cmd_plan, "show the resolved recipe and the exact commands, run nothing")
    plan.add_argument("--json", action="store_true", help="print the LaunchPlan as JSON")
    with_recipe("validate", _cmd_validate, "check a recipe (exit 2 with one line if it is wrong)")
    with_recipe("prepare", _cmd_prepare, "tokenize and pack the data into the cache, nothing else")
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print("error: " + " ".join(str(exc).splitlines()), file=sys.stderr)  # one line, always
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
