"""User resolution against a container's own /etc/passwd and /etc/group, hostile files included."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from labagent.containers import users
from labagent.containers.model import CreateSpec
from labagent.engine import Engine
from labagent.errors import BadParameter, EngineError
from labagent.fsutil import read_json

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
app:x:1000:1000::/home/app:/bin/sh
broken:x:notanumber:0::/:/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:root
nogroup:x:65534:
app:x:1000:
staff:x:50:app,other
audio:x:29:app
"""


def rootfs(tmp_path: Path, passwd: str | None = PASSWD, group: str | None = GROUP) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    if passwd is not None:
        (root / "etc" / "passwd").write_text(passwd)
    if group is not None:
        (root / "etc" / "group").write_text(group)
    return root


@pytest.mark.parametrize("spec, uid, gid, groups", [
    ("", 0, 0, [0, 10]),  # root, with its supplementary groups, as Docker lists them
    ("root", 0, 0, [0, 10]),
    ("app", 1000, 1000, [1000, 50, 29]),
    ("1000", 1000, 1000, [1000, 50, 29]),  # a numeric user that has an entry gets its groups
    ("app:staff", 1000, 50, [50]),  # an explicit group: no supplementary groups (runc's rule)
    ("nobody:nogroup", 65534, 65534, [65534]),
    ("4242", 4242, 0, [0]),  # numbers need no entry
    ("4242:4343", 4242, 4343, [4343]),
    ("app:4343", 1000, 4343, [4343]),
])
def test_user_specs_resolve_like_docker(tmp_path: Path, spec: str, uid: int, gid: int, groups: list[int]) -> None:
    assert users.resolve(rootfs(tmp_path), spec) == {"uid": uid, "gid": gid, "additionalGids": groups}


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    ("app:nosuch", "unable to find group nosuch: no matching entries in group file"),
    ("broken", "unable to find user broken"),  # a line with a bad uid is not an entry
    ("2147483648", "must be in range"),
])
def test_unknown_names_are_docker_errors(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(BadParameter) as err:
        users.resolve(rootfs(tmp_path), spec)
    assert err.value.message == message or message in err.value.message


def test_missing_files_leave_root_and_numbers_working(tmp_path: Path) -> None:
    root = rootfs(tmp_path, passwd=None, group=None)
    assert users.resolve(root, "") == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert users.resolve(root, "1000:1000") == {"uid": 1000, "gid": 1000, "additionalGids": [1000]}
    with pytest.raises(BadParameter, match="unable to find user app: no matching entries in passwd file"):
        users.resolve(root, "app")


def test_a_symlinked_passwd_resolves_inside_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "node-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    root = rootfs(tmp_path, passwd=None)
    # absolute and climbing links both name a file of the node if followed naively
    (root / "etc" / "passwd").symlink_to(f"/../../../../../../{outside}")
    with pytest.raises(BadParameter, match="unable to find user evil"):
        users.resolve(root, "evil")
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to(f"../../{outside.name}")
    with pytest.raises(BadParameter, match="unable to find user evil"):
        users.resolve(root, "evil")
    # a link that stays inside is followed, as Docker does
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "real").write_text(PASSWD)
    (root / "etc" / "passwd").symlink_to("/etc/real")
    assert users.resolve(root, "app")["uid"] == 1000


def test_a_fifo_passwd_is_refused_without_blocking(tmp_path: Path) -> None:
    root = rootfs(tmp_path, passwd=None)
    os.mkfifo(root / "etc" / "passwd")
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            users.resolve(root, "app")
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading a FIFO passwd blocked"
    assert isinstance(result[0], BadParameter) and "not a regular file" in result[0].message


def test_a_device_passwd_is_refused(tmp_path: Path) -> None:
    root = rootfs(tmp_path, passwd=None)
    (root / "etc" / "passwd").symlink_to("/dev/zero")  # inside the root: rootfs/dev/zero
    (root / "dev").mkdir()
    try:
        os.mknod(root / "dev" / "zero", 0o600 | 0o020000, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    with pytest.raises(BadParameter, match="not a regular file"):
        users.resolve(root, "app")


def test_a_huge_passwd_is_refused(tmp_path: Path) -> None:
    root = rootfs(tmp_path, passwd=None)
    with open(root / "etc" / "passwd", "wb") as handle:
        handle.truncate(users.MAX_FILE + 1)
    with pytest.raises(BadParameter, match="larger than"):
        users.resolve(root, "app")


def test_garbage_lines_do_not_crash_the_parser(tmp_path: Path) -> None:
    junk = "\n".join(["", ":::", "x", "a:b", "app:x:1000", "\x00:x:1:1", "ok:x:7:7:" + "y" * 10000,
                      "app:x:1000:1000::/:/bin/sh"]) + "\n"
    root = rootfs(tmp_path, passwd=junk, group="::\nstaff:x:bad:app\nstaff:x:50:app,,\n")
    assert users.resolve(root, "app") == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50]}
    assert users.resolve(root, "ok")["uid"] == 7


# through the engine: resolved at start, in the container's rootfs ---------------------------
def prepare(engine: Engine, name: str, user: str) -> Path:
    c = engine.lifecycle.create(name, CreateSpec("busybox", "", cmd=["sleep", "30"], user=user))
    rootfs_dir = engine.containers.bundle(c.id) / "rootfs"  # what the overlay would show
    (rootfs_dir / "etc").mkdir()
    (rootfs_dir / "etc" / "passwd").write_text(PASSWD)
    (rootfs_dir / "etc" / "group").write_text(GROUP)
    return engine.containers.bundle(c.id)


def test_start_writes_the_resolved_user_into_config_json(engine: Engine) -> None:
    bundle = prepare(engine, "u", "app")
    try:
        engine.lifecycle.start("u")
        user = read_json(bundle / "config.json")["process"]["user"]
        assert user == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50, 29]}
    finally:
        engine.lifecycle.remove("u", force=True)


def test_an_unknown_user_fails_the_start_cleanly(engine: Engine) -> None:
    prepare(engine, "bad", "nosuch")
    with pytest.raises(EngineError) as err:
        engine.lifecycle.start("bad")
    assert err.value.status == 400
    assert err.value.message == "unable to find user nosuch: no matching entries in passwd file"
    c = engine.containers.get("bad")
    assert c.state.status == "created" and not engine.seams.mounter.mounted
    assert c.state.exit_code == 128 and "unable to find user" in c.state.error
    assert not (engine.seams.cgroups.base / c.id).exists()


def test_a_failed_start_removes_an_auto_remove_container(engine: Engine) -> None:
    """`docker run --rm --user nosuch` waits for the removal after the failed start: it must come."""
    c = engine.lifecycle.create("gone", CreateSpec("busybox", "", cmd=["true"], user="nosuch",
                                                      auto_remove=True))
    with pytest.raises(EngineError, match="unable to find user nosuch"):
        engine.lifecycle.start("gone")
    deadline = time.monotonic() + 10
    engine.lifecycle.wait(c, "removed", gone=lambda: time.monotonic() > deadline)
    assert not engine.containers.exists(c.id)


@pytest.mark.parametrize("spec", ["a\nb", "a:b:c", " root"])
def test_a_malformed_image_user_is_refused_before_reading(tmp_path: Path, spec: str) -> None:
    with pytest.raises(BadParameter, match="is not valid"):
        users.resolve(rootfs(tmp_path), spec)
