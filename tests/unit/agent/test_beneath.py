"""beneath: lookups under a directory fd never lead out of the tree, with openat2 and without."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent import beneath
from labagent.errors import BadParameter


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs with the kernel's openat2 and with the O_NOFOLLOW walk that stands in for it."""
    monkeypatch.setattr(beneath, "_openat2_works", None if request.param == "openat2" else False)
    yield request.param


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A root with an outside sibling and links that point out of it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "escape").symlink_to(outside)
    (root / "abs").symlink_to("/etc")
    (root / "climb").symlink_to("../../../../etc")
    (root / "bin").symlink_to("usr/bin")
    with beneath.open_tree(root) as fd:
        yield root, fd


def read(fd: int) -> str:
    with os.fdopen(fd) as handle:
        return handle.read()


def test_beneath_refuses_every_symlink_and_climb(tree: tuple[Path, int], resolution: str) -> None:
    _, fd = tree
    for path in ("escape/secret", "abs/passwd", "bin"):
        with pytest.raises(OSError) as caught:
            beneath.open_beneath(fd, path, os.O_RDONLY)
        assert beneath.is_beneath_error(caught.value)
    with pytest.raises(BadParameter, match="escapes"):
        beneath.open_beneath(fd, "etc/../../outside/secret", os.O_RDONLY)
    assert read(beneath.open_beneath(fd, "/etc/passwd", os.O_RDONLY)).startswith("root:")


def test_in_root_follows_links_inside_the_root_only(tree: tuple[Path, int], resolution: str) -> None:
    root, fd = tree
    assert read(beneath.open_in_root(fd, "/abs/passwd", os.O_RDONLY)).startswith("root:")
    assert read(beneath.open_in_root(fd, "climb/passwd", os.O_RDONLY)).startswith("root:")
    assert read(beneath.open_in_root(fd, "/../../etc/passwd", os.O_RDONLY)).startswith("root:")
    with pytest.raises(FileNotFoundError):  # /escape points at an absolute host path: inside, it is missing
        beneath.open_in_root(fd, "escape/secret", os.O_RDONLY)
    (root / "loop").symlink_to("loop")
    with pytest.raises(OSError):
        beneath.open_in_root(fd, "loop", os.O_RDONLY)


def test_makedirs_in_root_creates_through_inside_links_and_not_outside(
        tree: tuple[Path, int], resolution: str, tmp_path: Path) -> None:
    root, fd = tree
    with beneath.opened(beneath.makedirs_in_root(fd, "/bin/tools/x")):
        pass
    assert (root / "usr" / "bin" / "tools" / "x").is_dir()
    with beneath.opened(beneath.makedirs_in_root(fd, "/../../../../outside/planted")):
        pass
    assert (root / "outside" / "planted").is_dir()
    assert not (tmp_path / "outside" / "planted").exists()
    (root / "hostabs").symlink_to(tmp_path / "outside")
    with pytest.raises(FileNotFoundError):  # read in the root, the link dangles: nothing is made outside
        beneath.makedirs_in_root(fd, "hostabs/sub")
    assert not (tmp_path / "outside" / "sub").exists()


def test_makedirs_beneath_refuses_a_symlinked_parent(tree: tuple[Path, int], resolution: str,
                                                     tmp_path: Path) -> None:
    root, fd = tree
    with beneath.opened(beneath.makedirs_beneath(fd, "a/b/c")):
        pass
    assert (root / "a" / "b" / "c").is_dir()
    with pytest.raises(OSError):
        beneath.makedirs_beneath(fd, "escape/new")
    assert not (tmp_path / "outside" / "new").exists()


def test_create_beneath_does_not_write_through_a_final_symlink(tree: tuple[Path, int], resolution: str,
                                                               tmp_path: Path) -> None:
    root, fd = tree
    (root / "etc" / "shadow").symlink_to(tmp_path / "outside" / "secret")
    with pytest.raises(OSError):
        beneath.open_beneath(fd, "etc/shadow", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert (tmp_path / "outside" / "secret").read_text() == "host secret"
