"""Recipe loading: extends, overrides, and every kind of bad input as one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher.errors import UserError
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, llaunch, run_dirs

pytestmark = pytest.mark.unit

BASE = """\
name: base
model:
  config: {type: llama, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}
tokenizer:
  train: {vocab_size: 200}
data:
  train: data/train.txt
train:
  max_steps: 10
  lr: 1.0e-3
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_quickstart_is_valid():
    recipe = load_recipe(QUICKSTART)
    assert recipe.world_size == 2
    assert recipe.global_batch_size == 16
    assert Path(recipe.data.train[0]).is_file()  # resolved against the recipe's folder


def test_extends_merges_sections_and_resolves_paths_per_file(tmp_path):
    write(tmp_path / "base" / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "extends: base/base.yaml\nname: child\ntrain:\n  lr: 5.0e-4\n")
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.train.lr == 5e-4
    assert recipe.train.max_steps == 10  # kept from the base: sections merge key by key
    assert recipe.data.train == [str(tmp_path / "base" / "data" / "train.txt")]


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(UserError, match="extends cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_overrides_are_typed_and_can_delete(tmp_path):
    path = write(tmp_path / "r.yaml", BASE)
    recipe = load_recipe(path, ["train.max_steps=7", "train.lr=2e-4", "logging.tensorboard=false",
                                "train.betas=[0.8, 0.9]", "~train.lr"])
    assert recipe.train.max_steps == 7
    assert recipe.train.lr == 3e-4  # deleted again: back to the default
    assert recipe.logging.tensorboard is False
    assert recipe.train.betas == (0.8, 0.9)


def test_global_batch_derives_grad_accum(tmp_path):
    path = write(tmp_path / "r.yaml", BASE)
    recipe = load_recipe(path, ["train.global_batch_size=32", "train.micro_batch_size=4",
                                "resources.procs_per_node=2"])
    assert recipe.grad_accum == 4
    with pytest.raises(UserError, match=r"global_batch_size=30 is not micro_batch_size"):
        load_recipe(path, ["train.global_batch_size=30", "train.micro_batch_size=4"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("  lr:", "  lrr:"), r"r.yaml:10: train.lrr: unknown key; did you mean 'lr'\?"),
        (BASE.replace("max_steps: 10", "max_steps: ten"), r"r.yaml:9: train.max_steps: Input should be a valid integer"),
        (BASE.replace("name: base", "nmae: base"), r"r.yaml:1: nmae: unknown key; did you mean 'name'\?"),
        (BASE + "objective: clmm\n", r"objective: Input should be 'clm'"),
        (BASE.replace("train:\n  max", "train:\n max"), r"r.yaml:\d+: invalid YAML"),
        ("", r"recipe is empty"),
        ("- a\n- b\n", r"a recipe is a mapping"),
    ],
)
def test_bad_recipes_name_file_line_and_key(tmp_path, text, expected):
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(UserError, match=expected):
        load_recipe(path)


def test_unknown_override_key_is_named():
    with pytest.raises(UserError, match=r"override 'train.stpes=3': train.stpes: unknown key; did you mean"):
        load_recipe(QUICKSTART, ["train.stpes=3"])


BAD_INPUTS = {
    "missing recipe": (["validate", "nope.yaml"], "nope.yaml: recipe file not found"),
    "bad yaml": (["run", "{dir}/bad.yaml"], "bad.yaml:3: invalid YAML: expected ',' or ']'"),
    "unknown key": (["run", str(QUICKSTART), "train.max_step=3"], "did you mean 'max_steps'"),
    "wrong type": (["run", str(QUICKSTART), "train.lr=fast"], "train.lr: Input should be a valid number"),
    "missing data": (["run", str(QUICKSTART), "data.train=/nonexistent/train.txt"], "data.train: file /nonexistent/train.txt not found"),
    "not a model": (["run", str(QUICKSTART), "~model.config", "model.path={dir}"], "not a model directory (no config.json)"),
    "data dir without shards": (["run", str(QUICKSTART), "data.train={dir}/nodata"], "nodata holds no shards"),
    "glob matching nothing": (["run", str(QUICKSTART), "data.train={dir}/web/*.jsonl.zst"], "web/*.jsonl.zst matches no file"),
    "empty data file": (["run", str(QUICKSTART), "data.train={dir}/empty.txt"], "empty.txt is empty (0 bytes)"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_cli_bad_input_is_one_line_exit_2_and_no_run_dir(tmp_path, out_dir, case):
    args, expected = BAD_INPUTS[case]
    write(tmp_path / "bad.yaml", "name: x\nmodel: [unclosed\n")
    write(tmp_path / "empty.txt", "")
    (tmp_path / "nodata").mkdir()
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = llaunch(*args, f"output.dir={out_dir}" if args[0] == "run" else "output.dir=x")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert run_dirs(out_dir) == []


def test_validate_checks_that_data_files_exist_and_plan_does_not(tmp_path):
    missing = tmp_path / "missing.txt"
    for key in ("data.train", "data.eval"):
        result = llaunch("validate", str(QUICKSTART), f"{key}={missing}")
        assert (result.returncode, result.stderr) == (2, f"error: {key}: file {missing} not found\n")
    result = llaunch("plan", str(QUICKSTART), f"data.train={missing}")  # a cluster's disks may hold it
    assert result.returncode == 0, result.stderr


def test_schema_command_prints_json_schema():
    result = llaunch("schema")
    schema = json.loads(result.stdout)
    assert "train" in schema["properties"]
    assert schema["additionalProperties"] is False
