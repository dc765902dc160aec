"""docker cp, export and diff with docker-py and the docker CLI against the real server.

The engine runs with a fake mount that copies the image layers and the upper dir into the rootfs
(fakes.MergingMounter), so what the API reads and writes goes through a merged view as with
overlayfs, and what it writes reaches the upper dir when the rootfs is unmounted.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent.containers import archive
from labagent.containers.changes import changes

from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_FAKE_MERGED_ROOTFS", "1")
        engine = start_engine(tmp_path_factory.mktemp("archive"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess) -> Iterator[docker.DockerClient]:
    yield from docker_client(eng)


def tar_with(files: dict[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
            else:
                info.size, info.mode, info.uid, info.gid = len(data), 0o640, 1234, 4321
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def members(stream: Iterator[bytes]) -> dict[str, tarfile.TarInfo | bytes]:
    """A tar's members: file contents for regular files, the TarInfo for the rest."""
    found: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for info in tar:
            handle = tar.extractfile(info) if info.isfile() else None
            found[info.name] = handle.read() if handle else info
    return found


def bundle(eng: EngineProcess, cid: str) -> Path:
    return eng.base / "root" / "containers" / cid


# docker-py ------------------------------------------------------------------------------------
def test_put_then_get_archive_on_a_created_container(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    assert ctr.put_archive("/tmp", tar_with({"d": None, "d/a.txt": b"alpha\n", "b.txt": b"beta"}))
    stream, st = ctr.get_archive("/tmp/b.txt")
    assert members(stream) == {"b.txt": b"beta"}
    assert (st["name"], st["size"], st["mode"], st["linkTarget"]) == ("b.txt", 4, 0o640, "")
    stream, st = ctr.get_archive("/tmp/d")
    got = members(stream)
    assert got["d/a.txt"] == b"alpha\n" and isinstance(got["d"], tarfile.TarInfo) and got["d"].isdir()
    assert st["name"] == "d" and st["mode"] == archive.GO_DIR | 0o750
    # written to the upper dir (the rootfs was mounted for the call, and unmounted after)
    upper = bundle(eng, ctr.id) / "upper" / "tmp"
    assert (upper / "d" / "a.txt").read_bytes() == b"alpha\n"
    assert (os.stat(upper / "b.txt").st_uid, os.stat(upper / "b.txt").st_gid) == (1234, 4321)
    assert os.listdir(bundle(eng, ctr.id) / "rootfs") == []
    ctr.start()  # the archive calls left no mount behind: a second mount would fail the start
    assert ctr.wait(timeout=10)["StatusCode"] == 0


def test_get_archive_of_what_a_container_wrote_after_it_stopped(sdk) -> None:
    # fakecrun runs the process in the upper dir, so a relative write is /out.txt in the container
    ctr = sdk.containers.run("busybox", ["sh", "-c", "echo written > out.txt"], detach=True)
    assert ctr.wait(timeout=10)["StatusCode"] == 0
    stream, st = ctr.get_archive("/out.txt")
    assert members(stream) == {"out.txt": b"written\n"} and st["size"] == 8
    assert {"Path": "/out.txt", "Kind": 1} in ctr.diff()


def test_get_archive_of_a_running_container_and_of_a_symlink(sdk) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb") as handle:
        handle.write(tar_with({"zipped.txt": b"unzipped"}))
    assert ctr.put_archive("/tmp", gz.getvalue())  # Docker takes a gzip-compressed tar too
    assert members(ctr.get_archive("/tmp/zipped.txt")[0]) == {"zipped.txt": b"unzipped"}
    stream, st = ctr.get_archive("/bin/sh")
    link = members(stream)["sh"]
    assert isinstance(link, tarfile.TarInfo) and link.issym() and link.linkname == "busybox"
    assert st["linkTarget"] == "/bin/busybox" and st["mode"] & archive.GO_SYMLINK
    stream, st = ctr.get_archive("/etc/")
    assert members(stream)["etc/passwd"].startswith(b"root:")  # type: ignore[union-attr]
    ctr.kill()


def test_archive_errors_are_docker_s(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    with pytest.raises(docker.errors.NotFound, match="Could not find the file /nope in container"):
        ctr.get_archive("/nope")
    with pytest.raises(docker.errors.NotFound):
        ctr.put_archive("/nope", tar_with({"x": b""}))
    with pytest.raises(docker.errors.APIError, match="extraction point is not a directory") as err:
        ctr.put_archive("/etc/passwd", tar_with({"x": b""}))
    assert err.value.status_code == 400
    with pytest.raises(docker.errors.NotFound, match="No such container"):
        sdk.api.get_archive("nosuch", "/")
    ro = sdk.containers.create("busybox", ["true"], read_only=True)
    with pytest.raises(docker.errors.APIError, match="container rootfs is marked read-only"):
        ro.put_archive("/tmp", tar_with({"x": b""}))


def test_copy_uid_gid_gives_the_container_user_ownership(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.create("busybox", ["true"], user="nobody")
    response = sdk.api._put(sdk.api._url("/containers/{0}/archive", ctr.id),
                            params={"path": "/tmp", "copyUIDGID": "true"}, data=tar_with({"n.txt": b"n"}))
    assert response.status_code == 200, response.text
    st = os.stat(bundle(eng, ctr.id) / "upper" / "tmp" / "n.txt")
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_export_holds_the_image_and_the_container_s_writes(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    ctr.put_archive("/", tar_with({"added.txt": b"mine"}))
    got = members(ctr.export())
    assert got["added.txt"] == b"mine" and got["etc/passwd"].startswith(b"root:")  # type: ignore[union-attr]
    assert isinstance(got["bin/busybox"], bytes) and isinstance(got["tmp"], tarfile.TarInfo)


def test_diff_reports_added_and_modified_paths(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    assert ctr.diff() is None  # Docker's answer for no change
    ctr.put_archive("/etc", tar_with({"passwd": b"root:x:0:0::/:/bin/sh\n", "new.conf": b"x"}))
    assert ctr.diff() == [{"Path": "/etc", "Kind": 0}, {"Path": "/etc/new.conf", "Kind": 1},
                          {"Path": "/etc/passwd", "Kind": 0}]


def test_head_answers_the_stat_header_only(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    response = sdk.api.head(sdk.api._url("/containers/{0}/archive", ctr.id), params={"path": "/etc/passwd"})
    assert response.status_code == 200 and response.content == b""
    st = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
    assert st["name"] == "passwd" and st["size"] > 0 and st["mode"] == 0o644
    missing = sdk.api.head(sdk.api._url("/containers/{0}/archive", ctr.id), params={"path": "/nope"})
    assert missing.status_code == 404


# the docker CLI -------------------------------------------------------------------------------
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cp_both_ways_diff_and_export(eng: EngineProcess, tmp_path: Path) -> None:
    cid = eng.docker("create", "busybox", "true").stdout.strip()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("file in a dir\n")
    (src / "top.txt").write_text("top\n")
    out = eng.docker("cp", str(src / "top.txt"), f"{cid}:/tmp/")
    assert out.returncode == 0, out.stderr
    out = eng.docker("cp", str(src), f"{cid}:/tmp/copied")  # a new name: the CLI PUTs into /tmp
    assert out.returncode == 0, out.stderr
    back = tmp_path / "back"
    back.mkdir()
    out = eng.docker("cp", f"{cid}:/tmp/copied", str(back / "dir"))
    assert out.returncode == 0, out.stderr
    assert (back / "dir" / "sub" / "f.txt").read_text() == "file in a dir\n"
    assert eng.docker("cp", f"{cid}:/tmp/top.txt", str(back)).returncode == 0
    assert (back / "top.txt").read_text() == "top\n"
    out = eng.docker("cp", f"{cid}:/tmp/copied/.", str(back / "contents"))
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(back / "contents")) == ["sub", "top.txt"]
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as tar:
        info = tarfile.TarInfo("stdin.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert eng.docker("cp", "-", f"{cid}:/tmp", stdin=upload.getvalue()).returncode == 0
    got = subprocess.run([DOCKER, "cp", f"{cid}:/tmp/stdin.txt", "-"], env=eng.env(), capture_output=True,
                         timeout=20, check=True)
    assert members(iter([got.stdout])) == {"stdin.txt": b"abc"}
    out = eng.docker("cp", f"{cid}:/bin/sh", str(back / "sh"))  # a symlink is copied as one
    assert out.returncode == 0 and os.readlink(back / "sh") == "busybox"
    missing = eng.docker("cp", f"{cid}:/nope", str(back))
    assert missing.returncode != 0 and "Could not find the file /nope" in missing.stderr
    diff = eng.docker("diff", cid).stdout.split("\n")
    assert "C /tmp" in diff and "A /tmp/top.txt" in diff and "A /tmp/copied/sub/f.txt" in diff
    assert "A /tmp/stdin.txt" in diff
    out = eng.docker("export", "-o", str(tmp_path / "export.tar"), cid)
    assert out.returncode == 0, out.stderr
    with tarfile.open(tmp_path / "export.tar") as tar:
        assert {"tmp/top.txt", "tmp/copied/sub/f.txt", "bin/busybox"} <= set(tar.getnames())
    eng.docker("rm", "-f", cid)


# units ----------------------------------------------------------------------------------------
def test_go_file_mode_bits() -> None:
    assert archive.go_mode(stat.S_IFREG | 0o4755) == archive.GO_SETUID | 0o755
    assert archive.go_mode(stat.S_IFDIR | 0o1777) == archive.GO_DIR | archive.GO_STICKY | 0o777
    assert archive.go_mode(stat.S_IFCHR | 0o600) == archive.GO_DEVICE | archive.GO_CHARDEV | 0o600
    assert archive.go_mode(stat.S_IFLNK | 0o777) == archive.GO_SYMLINK | 0o777


def test_changes_reads_whiteouts_as_deletions_and_hides_engine_mount_points(tmp_path: Path,
                                                                            can_mknod: bool) -> None:
    if not can_mknod:
        pytest.skip("making a whiteout needs CAP_MKNOD")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("lower/etc", "lower/bin", "upper/etc", "upper/proc", "upper/dev/pts", "upper/new/deep"):
        (tmp_path / d).mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("x")
    (lower / "bin" / "gone").write_text("x")
    (upper / "etc" / "hosts").write_text("mount point")
    (upper / "etc" / "passwd").write_text("y")
    (upper / "new" / "deep" / "f").write_text("z")
    (upper / "bin").mkdir()
    os.mknod(upper / "bin" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    found = changes(upper, [lower], {"/etc/hosts", "/proc", "/dev/pts", "/dev"})
    assert found == [{"Path": "/bin", "Kind": 0}, {"Path": "/bin/gone", "Kind": 2},
                     {"Path": "/etc", "Kind": 0}, {"Path": "/etc/passwd", "Kind": 0},
                     {"Path": "/new", "Kind": 1}, {"Path": "/new/deep", "Kind": 1},
                     {"Path": "/new/deep/f", "Kind": 1}]


# binds and volumes: a path under a mount's target is read and written in the mount's source -----
def test_in_mount_picks_the_deepest_target_and_keeps_trailing_markers() -> None:
    a, b = archive.MountSource("/data", Path("/s/a")), archive.MountSource("/data/sub", Path("/s/b"))
    assert archive.in_mount("/data/x", [a, b]) == (a, "/x")
    assert archive.in_mount("/data/sub/y/", [a, b]) == (b, "/y/")
    assert archive.in_mount("/data/sub/.", [a, b]) == (b, "/")
    assert archive.in_mount("/data/../etc", [a, b]) is None  # cleaned first: /etc is the rootfs'
    assert archive.in_mount("/database", [a, b]) is None


def test_archive_calls_under_a_bind_mount_use_its_source(tmp_path: Path, engine, client) -> None:
    from labagent.containers.model import CreateSpec, MountSpec

    source, node = tmp_path / "shared", tmp_path / "node"
    source.mkdir()
    node.mkdir()
    (node / "secret").write_text("node secret\n")
    (source / "esc").symlink_to(node)  # inside the mount, an absolute link stays inside it
    spec = CreateSpec(image="busybox", image_id="", cmd=["true"], readonly_rootfs=True,
                      mounts=[MountSpec("bind", "/vol1", str(source)),
                              MountSpec("bind", "/ro", str(source), readonly=True)])
    cid = engine.lifecycle.create("binds", spec).id
    response = client.request("PUT", f"/containers/{cid}/archive", {"path": "/vol1"},
                              raw=tar_with({"data.txt": b"in the volume"}))
    assert response.status == 200  # a read-only rootfs still takes writes into a writable mount
    response.read()
    assert (source / "data.txt").read_bytes() == b"in the volume"
    response = client.request("GET", f"/containers/{cid}/archive", {"path": "/vol1/data.txt"})
    stat_doc = json.loads(base64.b64decode(response.getheader(archive.STAT_HEADER)))
    assert members(iter([response.read()])) == {"data.txt": b"in the volume"} and stat_doc["size"] == 13
    from labagent.client import ApiError

    with pytest.raises(ApiError, match="mounted volume is marked read-only"):
        client.request("PUT", f"/containers/{cid}/archive", {"path": "/ro"}, raw=tar_with({"x": b""}))
    (source / "hop").symlink_to("/data.txt")
    response = client.request("HEAD", f"/containers/{cid}/archive", {"path": "/vol1/hop"})
    assert json.loads(base64.b64decode(response.getheader(archive.STAT_HEADER)))["linkTarget"] == "/vol1/data.txt"
    response.read()
    with pytest.raises(ApiError, match="Could not find the file /vol1/esc/secret"):
        client.request("GET", f"/containers/{cid}/archive", {"path": "/vol1/esc/secret"})
    assert sorted(os.listdir(node)) == ["secret"]
    actions = [e.action for e in engine.events.past(0) if e.actor_id == cid]
    assert actions[-2:] == ["extract-to-dir", "archive-path"]


def test_the_files_crun_binds_from_the_bundle_are_read_as_the_container_sees_them(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"], name="named-host", hostname="inside")
    stream, found = ctr.get_archive("/etc/hostname")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("hostname")
        assert member is not None and member.read() == b"inside\n"
    assert found["name"] == "hostname" and found["size"] == len(b"inside\n")
    ctr.remove()
