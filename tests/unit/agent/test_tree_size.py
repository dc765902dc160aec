"""fsutil.tree_size: the one walker behind SizeRw, SpaceReclaimed, system df and history."""

from __future__ import annotations

import os
from pathlib import Path

from labagent import fsutil


def test_regular_files_once_links_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"o" * 4096)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"a" * 10)
    (root / "sub" / "b").write_bytes(b"b" * 20)
    os.link(root / "a", root / "sub" / "a-again")  # a hard link is counted once
    (root / "to-file").symlink_to(outside / "big")
    (root / "to-dir").symlink_to(outside)
    assert fsutil.tree_size(root) == 30
    assert fsutil.tree_size(tmp_path / "absent") == 0
