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

    return resume_run(args.run_dir, args.overrides)[1]


def _one_line(recipe) -> str:
    r = recipe.resources
    return (f"{recipe.name}: {recipe.objective}, {recipe.method.type}, {recipe.parallel.strategy}, "
            f"{r.nodes}x{r.procs_per_node} procs, {recipe.train.max_steps} steps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llaunch", description="Train LLMs from one recipe, laptop to cluster.")
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
    resume.set_defaults(func=_cmd_resume)
    plan = with_recipe("plan", _cmd_plan, "show the resolved recipe and the exact commands, run nothing")
    plan.add_argument("--json", action="store_true", help="print the LaunchPlan as JSON")
    with_recipe("validate", _cmd_validate, "check a recipe (exit 2 with one line if it is wrong)")
    with_recipe("prepare", _cmd_prepare, "tokenize and pack the data into the cache, nothing else")
    schema = sub.add_parser("schema", help="print the recipe JSON Schema (for editors)")
    schema.add_argument("--markdown", action="store_true", help="print the recipe reference table instead")
    schema.set_defaults(func=_cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
