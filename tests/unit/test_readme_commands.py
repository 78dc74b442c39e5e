"""Every `llaunch` command in the README's code blocks runs, so the README cannot drift from the CLI.

Light commands run for real (in this process, through `launcher.cli.main`). Commands that would train,
submit, prepare data or read checkpoints run as far as they can here: their command line is parsed by
the real parser, and `run`/`submit`/`prepare`/`resume` are checked by `validate` and `plan` with the same
recipe and arguments. Commands shown with their output (`$ llaunch ...` followed by `error: ...`) must
fail with that output. Python snippets compile. The job script the README shows is the one `plan` renders.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.cli import build_parser, main
from launcher.recipe import load_recipe
from launcher.rundir import RunDir
from tests.conftest import QUICKSTART, ROOT

pytestmark = pytest.mark.unit

README = ROOT / "README.md"
RUN = "runs/quickstart-20261123-180850"  # the made-up run dir: the name the README's examples print
# the README's placeholders, as arguments a command can take
PLACEHOLDERS = {"RUN_DIR": RUN, "runs/quickstart-...": RUN, "N": "200", "DIR": "exported"}
LIGHT = {"validate", "plan", "estimate", "schema", "status", "ls", "logs", "cancel", "checkpoints", "init"}
# my.yaml of the README's bad-input example: a recipe of one's own with `lr` misspelt on line 12
MY_YAML = """\
extends: recipes/quickstart.yaml
name: my-run
description: the quickstart, trained longer

data:
  seq_len: 128

train:
  max_steps: 1000
  warmup_steps: 100
  schedule: cosine
  lrr: 1.0e-3
"""


@dataclass(frozen=True)
class Command:
    line: int  # in README.md
    text: str  # as written there
    argv: tuple[str, ...]  # after `llaunch`, placeholders filled in
    expected: str  # the output shown after a `$ llaunch ...` line, else ""

    def __str__(self) -> str:
        return f"README.md:{self.line}: `{self.text}`"


def code_blocks() -> list[tuple[str, int, list[str]]]:
    """(language, line number of the first line inside, lines) of every fenced block."""
    blocks, current = [], None
    for number, line in enumerate(README.read_text().splitlines(), 1):
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if fence and current is None:
            current = (fence.group(1), number + 1, [])
        elif line.strip() == "```" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"README.md:{current[1] - 1}: code block never closed"
    return blocks


def _filled(token: str) -> str:
    if "=" not in token:  # a synopsis: `[--step N]`, `--dtype fp32|bf16|fp16`
        token = PLACEHOLDERS.get(token.strip("[]"), token.strip("[]"))
        token = token.split("|")[0]
    return token


def readme_commands() -> list[Command]:
    commands = []
    for language, first, lines in code_blocks():
        if language not in ("", "bash", "console", "sh"):
            continue
        for offset, line in enumerate(lines):
            prompt = line.startswith("$ ")
            if language == "" and not prompt:
                continue  # an unlabelled block is output, or a console session with `$ ` prompts
            text = line[2:] if prompt else line
            if not re.match(r"(\S*/)?llaunch\s|.*&&\s*(\S*/)?llaunch\s", text):
                continue
            expected = []
            for after in lines[offset + 1:] if prompt else ():
                if after.startswith("$ "):
                    break
                expected.append(after)
            segment: list[str] = []
            for token in [*shlex.split(text, comments=True), "&&"]:  # `pip install ... && .venv/bin/llaunch run`
                if token != "&&":
                    segment.append(token)
                    continue
                head, *args = segment
                segment = []
                if Path(head).name == "llaunch":
                    commands.append(Command(first + offset, text.split("  #")[0].strip(),
                                            tuple(_filled(a) for a in args), "\n".join(expected)))
    return commands


COMMANDS = readme_commands()


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The repository as the README's commands see it: recipes/, a run dir under runs/, my.yaml."""
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    (tmp_path / "my.yaml").write_text(MY_YAML)
    run = RunDir.create(load_recipe(QUICKSTART, [f"output.dir={tmp_path / 'runs'}"]))
    run.path.rename(tmp_path / RUN)
    finished = RunDir.open(tmp_path / RUN)
    (finished.logs / "rank-0.log").write_text("step 10/200  loss 5.3902\n")
    finished.result_file.write_text('{"status": "completed", "step": 200}')  # `logs -f` returns at once
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a command line it refuses
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def parsed(command: Command):
    """The command line as `llaunch` parses it (overrides may follow options, as in main)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args, extra = build_parser().parse_known_args(list(command.argv))
        except SystemExit:
            pytest.fail(f"{command}: the command line is refused: {err.getvalue().strip()}")
    if hasattr(args, "overrides"):
        args.overrides += extra
    else:
        assert not extra, f"{command}: unrecognized arguments {extra}"
    return args


def stand_ins(command: Command) -> list[list[str]]:
    """What runs here for the command: itself if light, else validate/plan with the same arguments."""
    name, rest = command.argv[0], list(command.argv[1:])
    if name in LIGHT or name.startswith("-"):
        return [list(command.argv)]
    args = parsed(command)
    if name in ("run", "submit"):
        plan = ["plan", *(a for a in rest if a != "--no-prepare"), *(["--on", "slurm"] if name == "submit" else [])]
        return [["validate", args.recipe, *args.overrides], plan]
    if name == "prepare":
        return [["validate", args.recipe, *args.overrides]]
    if name == "resume":
        recipe = str(RunDir.open(args.run_dir).recipe_file)
        return [["validate", recipe, *args.overrides], ["plan", recipe, *args.overrides]]
    if name in ("export", "eval", "report"):
        return []  # they read checkpoints and import torch: the parse above is the check
    pytest.fail(f"{command}: `llaunch {name}` is new to this test: say how to check it here (LIGHT, or a stand-in)")


def test_the_readme_shows_the_commands_this_test_checks():
    shown = {command.argv[0] for command in COMMANDS}
    assert {"run", "submit", "plan", "validate", "status", "logs", "cancel", "ls", "resume", "checkpoints",
            "export"} <= shown, shown


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"README.md:{c.line}:{c.argv[0]}")
def test_readme_command_runs(workdir, command):
    expected_error = command.expected.startswith("error: ")
    for argv in stand_ins(command):
        code, out, err = cli(argv)
        if expected_error:
            shown = command.expected.split("...")[0]
            assert code == 2 and err.startswith(shown) and err.count("\n") == 1, (
                f"{command} should fail as the README shows ({shown!r}); `llaunch {shlex.join(argv)}` gave exit "
                f"code {code}: {err.strip()}")
            return  # the first stand-in already failed as shown
        assert code == 0, f"{command} fails: `llaunch {shlex.join(argv)}` exit code {code}: {(err or out).strip()}"


def test_readme_python_snippets_compile():
    snippets = [(first, "\n".join(lines)) for language, first, lines in code_blocks() if language == "python"]
    assert snippets
    for first, source in snippets:
        compile(source, f"README.md:{first}", "exec")


def test_the_job_script_shown_is_the_one_plan_renders(workdir):
    """The README prints the job script of its SLURM plan command, written for a checkout in /scratch/you/llaunch."""
    [script] = [(first, lines) for language, first, lines in code_blocks() if lines[:1] == ["#!/bin/bash"]]
    [command] = [c for c in COMMANDS if c.argv[0] == "plan" and "slurm" in c.argv]
    code, out, err = cli([*command.argv, "--json"])
    assert code == 0, f"{command} fails: {err.strip()}"
    rendered = json.loads(out)["files"]["job.sbatch"]
    rendered = rendered.replace(sys.executable, "/scratch/you/llaunch/.venv/bin/python3")
    rendered = rendered.replace(str(workdir), "/scratch/you/llaunch").rstrip("\n").splitlines()
    first, shown = script
    diff = "\n".join(difflib.unified_diff(shown, rendered, "README.md", "llaunch plan", lineterm=""))
    assert shown == rendered, f"README.md:{first}: the job script differs from what {command} renders:\n{diff}"
