"""Checkpoint checksums: new markers record xxh3-64, and a marker written before (crc32, no "hash" key)
still verifies, so upgrading llaunch never makes an intact checkpoint look damaged."""

from __future__ import annotations

import json
import zlib

import pytest

from launcher.checkpoints import MARKER
from launcher.checksums import check, hash_files, marker_text

pytestmark = pytest.mark.unit


def test_new_markers_verify_and_name_a_flipped_byte(tmp_path):
    (tmp_path / "__0_0.distcp").write_bytes(b"weights" * 1000)
    (tmp_path / MARKER).write_text(marker_text(5, hash_files(tmp_path, ["__0_0.distcp"])))
    assert json.loads((tmp_path / MARKER).read_text())["hash"] == "xxh3_64"
    assert check(tmp_path) is None
    data = bytearray((tmp_path / "__0_0.distcp").read_bytes())
    data[100] ^= 1
    (tmp_path / "__0_0.distcp").write_bytes(bytes(data))
    assert check(tmp_path).startswith("__0_0.distcp reads back with xxh3_64 ")


def test_a_marker_of_crc32s_from_an_older_llaunch_still_verifies(tmp_path):
    content = b"optimizer" * 1000
    (tmp_path / "__0_0.distcp").write_bytes(content)
    files = {"__0_0.distcp": [len(content), zlib.crc32(content)]}
    (tmp_path / MARKER).write_text(json.dumps({"step": 5, "files": files}))
    assert check(tmp_path) is None
    (tmp_path / "__0_0.distcp").write_bytes(content[:-1] + b"X")
    assert check(tmp_path).startswith("__0_0.distcp reads back with crc32 ")
