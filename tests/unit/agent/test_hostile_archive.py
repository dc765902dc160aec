"""docker cp with hostile input: the query path and every member of an uploaded tar come from
strangers, and the container's own tree is theirs too. Nothing may land, or be read, outside the
container's rootfs; every count and size is bounded."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest
from labagent.api.limits import Limits as ApiLimits
from labagent.beneath import open_tree
from labagent.client import ApiError, Client
from labagent.containers import archive
from labagent.errors import BadParameter, NotFound
from labagent.images.layers import Limits
from labagent.server import serve

Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_of(*members: Member) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A container rootfs and, next to it, a node directory with a secret in it."""
    rootfs, node = tmp_path / "rootfs", tmp_path / "node"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    node.mkdir()
    (node / "secret").write_text("node secret\n")
    return rootfs, node


def put(rootfs: Path, path: str, data: bytes, limits: Limits | None = None) -> None:
    with open_tree(rootfs) as fd:
        archive.extract(fd, path, io.BytesIO(data), "c", owner=None, keep_kinds=False, limits=limits)


def get(rootfs: Path, path: str) -> tuple[archive.PathStat, dict[str, bytes | str]]:
    """The stat and the tar's members (name -> data for files, '-> target' for symlinks)."""
    out = io.BytesIO()
    with open_tree(rootfs) as fd, archive.locate(fd, path, "c") as found:
        st = archive.stat_path(fd, found)
        archive.write_tar(out, found.dirfd, found.base, found.name)
    members: dict[str, bytes | str] = {}
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        for info in tar:
            if info.isfile():
                handle = tar.extractfile(info)
                assert handle is not None
                members[info.name] = handle.read()
            else:
                members[info.name] = f"-> {info.linkname}" if info.issym() else info.type.decode()
    return st, members


def node_untouched(node: Path) -> bool:
    return sorted(os.listdir(node)) == ["secret"] and (node / "secret").read_text() == "node secret\n"


# uploads -------------------------------------------------------------------------------------
def test_a_member_that_climbs_out_is_refused(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    with pytest.raises(BadParameter, match="escapes"):
        put(rootfs, "/data", tar_of(member("../../node/x", data=b"evil")))
    with pytest.raises(BadParameter, match="escapes"):
        put(rootfs, "/data", tar_of(member("a/../../../node/x", data=b"evil")))
    assert node_untouched(node) and not (rootfs / "node").exists()


def test_an_absolute_member_name_lands_under_the_target_directory(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    put(rootfs, "/data", tar_of(member(f"{node}/secret", data=b"evil")))
    assert node_untouched(node)
    assert (rootfs / "data" / str(node).lstrip("/") / "secret").read_bytes() == b"evil"


def test_a_symlink_member_then_a_file_through_it_is_refused(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    for target in (str(node), "../../node", "/"):
        with pytest.raises(BadParameter, match="symlink"):
            put(rootfs, "/data", tar_of(member("link", tarfile.SYMTYPE, link=target),
                                        member("link/x", data=b"evil")))
        assert node_untouched(node)
    assert not (rootfs / "x").exists()


def test_an_existing_symlink_in_the_container_is_not_written_through(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    (rootfs / "data" / "dir").symlink_to(node)
    (rootfs / "data" / "file").symlink_to(node / "secret")
    with pytest.raises(BadParameter, match="symlink"):
        put(rootfs, "/data", tar_of(member("dir/x", data=b"evil")))
    put(rootfs, "/data", tar_of(member("file", data=b"replaced")))  # the link itself is replaced
    assert node_untouched(node)
    assert not (rootfs / "data" / "file").is_symlink()
    assert (rootfs / "data" / "file").read_bytes() == b"replaced"


def test_a_hard_link_to_a_node_file_is_refused(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    for target in (str(node / "secret"), "../../node/secret", "../etc/passwd"):
        with pytest.raises(BadParameter):
            put(rootfs, "/data", tar_of(member("copy", tarfile.LNKTYPE, link=target)))
    assert not (rootfs / "data" / "copy").exists()
    assert os.stat(node / "secret").st_nlink == 1 and os.stat(rootfs / "etc" / "passwd").st_nlink == 1


def test_device_nodes_and_fifos_are_refused(tree: tuple[Path, Path]) -> None:
    rootfs, _ = tree
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        with pytest.raises(BadParameter, match="archive sent to a container"):
            put(rootfs, "/data", tar_of(member("dev", kind)))
    assert not (rootfs / "data" / "dev").exists()


def test_the_target_directory_resolves_inside_the_rootfs(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    (rootfs / "abs").symlink_to(node)  # absolute: the container reads it as its own path
    (rootfs / "up").symlink_to("../../../data")  # `..` stops at the root: /up is /data
    with pytest.raises(NotFound, match="Could not find the file /abs in container c"):
        put(rootfs, "/abs", tar_of(member("x", data=b"evil")))
    put(rootfs, "/up", tar_of(member("x", data=b"inside")))
    put(rootfs, "/etc/../../../data", tar_of(member("y", data=b"inside")))
    assert node_untouched(node)
    assert (rootfs / "data" / "x").read_bytes() == b"inside" and (rootfs / "data" / "y").read_bytes() == b"inside"


def test_the_target_must_be_an_existing_directory(tree: tuple[Path, Path]) -> None:
    rootfs, _ = tree
    with pytest.raises(NotFound):
        put(rootfs, "/nowhere", tar_of(member("x")))
    with pytest.raises(BadParameter, match="extraction point is not a directory"):
        put(rootfs, "/etc/passwd", tar_of(member("x")))
    with pytest.raises(BadParameter, match="path cannot be empty"):
        put(rootfs, "", tar_of(member("x")))


def test_member_count_and_bytes_are_bounded(tree: tuple[Path, Path]) -> None:
    rootfs, _ = tree
    many = tar_of(*(member(f"f{i}") for i in range(11)))
    with pytest.raises(BadParameter, match="more than 10 members"):
        put(rootfs, "/data", many, Limits(members=10))
    with pytest.raises(BadParameter, match="more than 100 bytes"):
        put(rootfs, "/data", tar_of(member("big", data=b"x" * 200)), Limits(bytes=100))
    with pytest.raises(BadParameter):
        put(rootfs, "/data", b"not a tar at all" * 64)


def test_no_overwrite_dir_non_dir_refuses_changing_kinds(tree: tuple[Path, Path]) -> None:
    rootfs, _ = tree
    with open_tree(rootfs) as fd:
        with pytest.raises(BadParameter, match="cannot overwrite directory"):
            archive.extract(fd, "/", io.BytesIO(tar_of(member("etc", data=b"file"))), "c",
                            owner=None, keep_kinds=True)
        with pytest.raises(BadParameter, match="cannot overwrite non-directory"):
            archive.extract(fd, "/etc", io.BytesIO(tar_of(member("passwd", tarfile.DIRTYPE))), "c",
                            owner=None, keep_kinds=True)
    assert (rootfs / "etc" / "passwd").is_file()


# downloads -----------------------------------------------------------------------------------
def test_a_query_path_through_a_symlink_that_points_out_stays_inside(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    (rootfs / "abs").symlink_to(node)
    (rootfs / "rel").symlink_to("../../../../node")
    for path in ("/abs/secret", "/rel/secret", f"/../../..{node}/secret", "/etc/../../node/secret"):
        with pytest.raises(NotFound):
            get(rootfs, path)
    st, members = get(rootfs, "/etc/../../etc/passwd")
    assert st.name == "passwd" and list(members) == ["passwd"]


def test_a_symlink_is_archived_as_a_symlink_never_followed_to_the_node(tree: tuple[Path, Path]) -> None:
    rootfs, node = tree
    (rootfs / "data" / "leak").symlink_to(node / "secret")
    (rootfs / "data" / "hop").symlink_to("/etc/passwd")
    st, members = get(rootfs, "/data")
    assert members == {"data": "5", "data/hop": "-> /etc/passwd", "data/leak": f"-> {node}/secret"}
    st, members = get(rootfs, "/data/hop")
    assert st.link_target == "/etc/passwd" and members == {"hop": "-> /etc/passwd"}
    st, _ = get(rootfs, "/data/leak")  # its target, read as the container would: inside the rootfs
    assert st.link_target == f"{node}/secret"
    assert b"node secret" not in b"".join(v for v in members.values() if isinstance(v, bytes))


def test_a_deep_tree_is_refused_not_a_crash(tree: tuple[Path, Path]) -> None:
    rootfs, _ = tree
    deep = rootfs / "data"
    with open_tree(deep) as fd:
        current = os.dup(fd)
        for _ in range(archive.MAX_DEPTH + 2):
            os.mkdir("d", dir_fd=current)
            following = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=current)
            os.close(current)
            current = following
        os.close(current)
    with pytest.raises(Exception, match="nested more than"):
        get(rootfs, "/data")


# through the API -----------------------------------------------------------------------------
def test_an_upload_over_the_body_limit_is_413_and_a_readonly_rootfs_400(tmp_path: Path, engine) -> None:
    server = serve(tmp_path / "run" / "small.sock", engine, limits=ApiLimits(max_upload=16384))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(str(tmp_path / "run" / "small.sock"))
        cid = client.json("POST", "/containers/create", body={"Image": "busybox", "Cmd": ["true"]})["Id"]
        with socket.socket(socket.AF_UNIX) as sock:  # the head alone: refused before any body is read
            sock.connect(str(tmp_path / "run" / "small.sock"))
            sock.sendall(f"PUT /containers/{cid}/archive?path=/ HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 20000\r\n\r\n".encode())
            reply = b""
            while piece := sock.recv(4096):
                reply += piece
        assert reply.startswith(b"HTTP/1.1 413") and b"exceeds the limit of 16384 bytes" in reply
        ro = client.json("POST", "/containers/create", body={"Image": "busybox", "Cmd": ["true"],
                                                              "HostConfig": {"ReadonlyRootfs": True}})["Id"]
        with pytest.raises(ApiError) as err:
            client.request("PUT", f"/containers/{ro}/archive", {"path": "/"}, raw=tar_of(member("x")))
        assert (err.value.status, str(err.value)) == (400, "container rootfs is marked read-only")
    finally:
        server.shutdown()
        server.server_close()


def test_a_corrupt_gzip_upload_is_400_and_the_connection_answers_on(engine, client: Client) -> None:
    cid = client.json("POST", "/containers/create", body={"Image": "busybox", "Cmd": ["true"]})["Id"]
    for junk in (b"\x1f\x8b" + b"\xff" * 4000, b"\x1f\x8b\x08\x00" + b"\x00" * 6, b"\x00" * 100):
        with pytest.raises(ApiError) as err:
            client.request("PUT", f"/containers/{cid}/archive", {"path": "/"}, raw=junk)
        assert err.value.status == 400, err.value.message
    assert client.json("GET", f"/containers/{cid}/changes") is None
