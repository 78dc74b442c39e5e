"""The committed quickstart corpus is exactly what the generator in the repo makes."""

from __future__ import annotations

import pytest

from launcher.synthetic import write_quickstart
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_committed_corpus_matches_generator(tmp_path):
    write_quickstart(tmp_path)
    for name in ("train.txt", "eval.txt"):
        assert (tmp_path / name).read_text() == (ROOT / "recipes/data/quickstart" / name).read_text()
