"""Hostile images, builds and container options, through the real docker CLI, leave the node untouched.

The unit corpus (tests/unit/agent/test_hostile_*.py) proves each refusal against the real unpacker,
loader and builder on the host; here the same attacks travel the whole way: docker CLI, SSH, the
engine API, the node's own kernel and filesystem.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from .conftest import Lab
from .test_docker import docker

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    subprocess.run(["which", "docker"], capture_output=True).returncode != 0, reason="no docker CLI on the host")]

# What the attacks aim at, read in one SSH round trip before and after.
NODE_FACTS = ("stat -c '%n %a %u:%g %h %Y' / /etc /etc/shadow /etc/cron.d /var/lib/lab-agent; "
              "ls -a /etc/cron.d /; test -e /tmp/lab-pwned && echo PWNED; echo LAYERS; "
              "ls /var/lib/lab-agent/layers")


def node_facts(lab: Lab) -> tuple[str, set[str]]:
    """The node's files the attacks aim at, and the store's unpacked layers."""
    out = lab("exec", "two-node", "node1", "--", f"sudo sh -c {json.dumps(NODE_FACTS)}").stdout
    files, _, layers = out.partition("LAYERS\n")
    return files, set(layers.split())


def assert_untouched(before: tuple[str, set[str]], after: tuple[str, set[str]]) -> None:
    assert after[0] == before[0]
    assert before[1] <= after[1], f"layers removed: {before[1] - after[1]}"


def _member(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
            linkname: str = "", mode: int = 0o644, uid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.size = kind, linkname, mode, uid, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def docker_save(path: Path, tag: str, layer: bytes) -> Path:
    """A docker-save tarball with one layer whose digests are right: only its content is hostile."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("layer.tar", layer), ("config.json", config), ("manifest.json", manifest)):
            _member(tar, name, data=data)
    return path


def layer(*members: tuple[str, bytes, str, int]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, linkname, mode in members:
            _member(tar, name, kind, b"x" if kind == tarfile.REGTYPE else b"", linkname, mode, uid=4242)
    return buf.getvalue()


HOSTILE_LAYERS = {
    # a directory, then a symlink in its place: the deferred metadata replay used to chmod /etc
    "replay": layer(("x", tarfile.DIRTYPE, "", 0o777), ("x", tarfile.SYMTYPE, "/etc", 0o777)),
    # a hard link through a symlinked parent used to pull the node's /etc/shadow into the image
    "hardlink": layer(("l", tarfile.SYMTYPE, "/etc", 0o777), ("stolen", tarfile.LNKTYPE, "l/shadow", 0o644)),
    # a whiteout of `..` used to remove every unpacked layer of the store
    "whiteout": layer(("a", tarfile.DIRTYPE, "", 0o755), ("a/.wh...", tarfile.REGTYPE, "", 0o644)),
    # a file written through a symlink the same layer planted
    "through": layer(("cron", tarfile.SYMTYPE, "/etc/cron.d", 0o777), ("cron/labpwn", tarfile.REGTYPE, "", 0o644)),
}


def test_hostile_docker_load_leaves_the_node_untouched(lab: Lab, two_node: str, tmp_path: Path) -> None:
    before = node_facts(lab)
    for name, content in HOSTILE_LAYERS.items():
        archive = docker_save(tmp_path / f"{name}.tar", f"evil-{name}:1", content)
        docker(lab, "load", "-i", str(archive), check=False)
    assert_untouched(before, node_facts(lab))
    assert "labpwn" not in before[0]
    survivors = docker(lab, "run", "--rm", "busybox", "echo", "store intact").stdout
    assert survivors.strip() == "store intact"


def test_hostile_docker_build_stays_in_the_image(lab: Lab, two_node: str, tmp_path: Path) -> None:
    before = node_facts(lab)
    context = tmp_path / "climb"
    context.mkdir()
    (context / "payload").write_text("* * * * * root touch /tmp/lab-pwned\n")
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY payload /../../../../../etc/cron.d/labpwn\n"
        "WORKDIR ../../../../../../tmp/wd\n"
        "COPY payload ../../../../escaped\n"
        'CMD ["sh", "-c", "cat /etc/cron.d/labpwn /escaped; pwd"]\n')
    docker(lab, "build", "-t", "climb", str(context), DOCKER_BUILDKIT="0")
    inside = docker(lab, "run", "--rm", "climb").stdout.splitlines()
    assert inside == ["* * * * * root touch /tmp/lab-pwned"] * 2 + ["/tmp/wd"]

    whiteout = tmp_path / "whiteout"
    whiteout.mkdir()
    (whiteout / "Dockerfile").write_text("FROM busybox\nRUN touch /.wh... /tmp/.wh.etc\n")
    refused = docker(lab, "build", str(whiteout), check=False, DOCKER_BUILDKIT="0")
    assert refused.returncode != 0 and ".wh." in refused.stdout + refused.stderr
    if os.geteuid() == 0:  # a device node in the context is refused, never read
        device = tmp_path / "device"
        device.mkdir()
        os.mknod(device / "disk", 0o600 | 0o060000, os.makedev(254, 0))  # a block device: the node's vda
        (device / "Dockerfile").write_text("FROM busybox\nCOPY disk /disk\n")
        refused = docker(lab, "build", str(device), check=False, DOCKER_BUILDKIT="0")
        assert refused.returncode != 0 and "disk" in refused.stdout + refused.stderr
    assert_untouched(before, node_facts(lab))
    docker(lab, "rmi", "climb", check=False)


def test_privilege_reducing_options_take_effect(lab: Lab, two_node: str) -> None:
    probe = "id -u; id -g; grep CapEff /proc/self/status"
    out = docker(lab, "run", "--rm", "--user", "1000:1000", "--cap-drop", "ALL", "busybox", "sh", "-c", probe)
    assert out.stdout.split() == ["1000", "1000", "CapEff:", "0000000000000000"]
    read_only = docker(lab, "run", "--rm", "--read-only", "busybox", "sh", "-c",
                       "cat /etc/hostname >/dev/null && touch /written", check=False)
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stdout + read_only.stderr
    defaults = docker(lab, "run", "--rm", "--user", "nobody", "busybox", "sh", "-c",
                      "id -u; cat /proc/self/oom_score_adj").stdout.split()
    assert defaults == ["65534", "0"]  # named users resolve in the image; containers do not inherit -500
    unknown = docker(lab, "run", "--rm", "--user", "nosuch", "busybox", "true", check=False)
    assert unknown.returncode != 0 and "unable to find user nosuch" in unknown.stderr
    root_caps = docker(lab, "run", "--rm", "--cap-drop", "NET_RAW", "busybox", "grep", "CapEff",
                       "/proc/self/status").stdout.split()[1]
    assert int(root_caps, 16) & (1 << 13) == 0 and int(root_caps, 16) & 1  # NET_RAW gone, CHOWN kept


@pytest.mark.parametrize("option, field", [
    (["--cap-add", "SYS_ADMIN"], "CapAdd"),
    (["--init"], "Init"),  # the node has no init binary (the CLI itself refuses a sysctl dockerd would)
    (["--device", "/dev/vda"], "Devices"),
    (["--ipc", "host"], "IpcMode"),
    (["--security-opt", "seccomp=unconfined"], "SecurityOpt"),
])
def test_an_unsupported_option_is_refused_by_name(lab: Lab, two_node: str, option: list[str], field: str) -> None:
    refused = docker(lab, "run", "--rm", *option, "busybox", "true", check=False)
    assert refused.returncode != 0 and field in refused.stderr, refused.stderr


def test_a_container_cannot_create_namespaces(lab: Lab, two_node: str) -> None:
    probe = "unshare -U true 2>&1; echo rc=$?; unshare -n true 2>&1; echo rc=$?"
    out = docker(lab, "run", "--rm", "busybox", "sh", "-c", probe).stdout
    assert "rc=0" not in out and "not permitted" in out, out
