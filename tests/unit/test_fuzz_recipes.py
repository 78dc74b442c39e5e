"""Thousands of generated recipes: `validate` and `plan` never raise a traceback. Every rejection is
one line naming the file or override and the key (exit 2); every acceptance yields a plan that renders.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.cli import main
from tests.conftest import QUICKSTART

pytestmark = pytest.mark.unit

BASE = yaml.safe_load(QUICKSTART.read_text())
# absolute data paths: the generated recipes live in a scratch dir, and `validate` checks the files exist
BASE["data"] = {**BASE["data"], **{split: str(QUICKSTART.parent / BASE["data"][split]) for split in ("train", "eval")}}
SECTIONS = list(BASE) + ["parallel", "method", "eval", "checkpoint", "logging", "output", "slurm", "bogus"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e999", "nan", "ddp", "zero3", "../../etc/passwd", "$(reboot)", "日本語"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)
keys = st.one_of(st.sampled_from(["max_steps", "lr", "procs_per_node", "nodes", "seq_len", "train", "type", "path",
                                  "strategy", "every", "name", "config", "micro_batch_size", "launcher"]),
                 st.text(min_size=1, max_size=12))


@st.composite
def recipes(draw) -> dict:
    recipe = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(SECTIONS))
        if draw(st.booleans()) and isinstance(recipe.get(section), dict):
            recipe[section][draw(keys)] = draw(values)
        else:
            recipe[section] = draw(values)
    return recipe


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own exit for a malformed command line
            code = exc.code
    return code, err.getvalue()


def check_outcome(code: int, stderr: str) -> None:
    assert code in (0, 2), stderr
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "recipe.yaml"


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(recipe=recipes())
def test_generated_recipes_are_accepted_or_rejected_in_one_line(scratch, recipe):
    path = scratch
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    code, stderr = run_cli("validate", str(path))
    check_outcome(code, stderr)
    if code == 0:
        code, stderr = run_cli("plan", str(path))
        check_outcome(code, stderr)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_files_never_crash(scratch, text):
    path = scratch
    path.write_bytes(text.encode("utf-8", errors="surrogateescape") if text else b"")
    code, stderr = run_cli("validate", str(path))
    check_outcome(code, stderr)
    assert code == 2 or text.strip()


@settings(max_examples=250, deadline=None)
@given(key=st.text(max_size=20), value=st.text(max_size=20))
def test_arbitrary_overrides_never_crash(key, value):
    code, stderr = run_cli("validate", str(QUICKSTART), f"{key}={value}")
    check_outcome(code, stderr)


def test_huge_numbers_are_rejected_cleanly():
    code, stderr = run_cli("validate", str(QUICKSTART), f"train.max_steps={10**30}")
    assert code == 2 and "train.max_steps" in stderr
    code, stderr = run_cli("validate", str(QUICKSTART), "train.lr=.nan")
    assert code == 2 and "train.lr" in stderr
