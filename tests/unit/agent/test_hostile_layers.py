"""Hostile layers against the real unpacker: nothing outside the layer changes, and bad input
gets one clear BadParameter. Each attack runs with openat2 and with the O_NOFOLLOW walk."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent import beneath
from labagent.errors import BadParameter
from labagent.images.layers import OPAQUE_XATTR, HashingReader, Limits, Whiteouts, unpack_context, unpack_layer

from .hostile import SECRET, Entry, plant, raw_header, snapshot, tar_of

ROOT = os.geteuid() == 0
CAP_V2 = bytes([0, 0, 0, 2, 0x00, 0x04, 0, 0]) + bytes(12)  # cap_net_bind_service, permitted


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(beneath, "_openat2_works", None if request.param == "openat2" else False)
    yield request.param


@pytest.fixture
def site(tmp_path: Path, resolution: str, can_mknod: bool) -> Iterator[tuple[Path, Path]]:
    """A layer dir, another layer and an outside tree of sentinels beside it; afterwards nothing
    outside the layer changed (can_mknod probes first, so its probe is in the snapshot)."""
    dest = tmp_path / "layer"
    dest.mkdir()
    (tmp_path / "other-layer" / "etc").mkdir(parents=True)
    (tmp_path / "other-layer" / "etc" / "keep").write_bytes(b"k")
    outside = plant(tmp_path)
    before = snapshot(tmp_path, skip=dest)
    yield dest, outside
    assert snapshot(tmp_path, skip=dest) == before
    assert (outside / "shadow").read_bytes() == SECRET


def unpack(data: bytes, dest: Path, **kwargs: object) -> None:
    unpack_layer(io.BytesIO(data), dest, Whiteouts(), **kwargs)  # type: ignore[arg-type]


# 1. metadata replay, writes through symlinks ------------------------------------------------
def test_dir_replay_does_not_follow_a_symlink_that_replaced_the_dir(site: tuple[Path, Path]) -> None:
    dest, outside = site
    unpack(tar_of(Entry("a/", "dir", mode=0o777, uid=0, mtime=0),
                  Entry("a", "sym", link=str(outside)),
                  Entry("p/", "dir", mode=0o777), Entry("p/sub/", "dir", mode=0o777, mtime=0),
                  Entry("p", "sym", link="../outside")), dest)
    assert os.readlink(dest / "a") == str(outside)
    assert os.readlink(dest / "p") == "../outside"


def test_dir_replay_skips_a_dir_replaced_by_another_dir(site: tuple[Path, Path]) -> None:
    dest, _ = site
    unpack(tar_of(Entry("d/", "dir", mode=0o700, mtime=5), Entry("d", "file", data=b"x"),
                  Entry("d/", "dir", mode=0o751, mtime=7)), dest)
    st = os.stat(dest / "d")
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime == 7


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(site: tuple[Path, Path]) -> None:
    dest, outside = site
    unpack(tar_of(Entry("f", "sym", link=str(outside / "shadow")), Entry("f", "file", data=b"pwned", mode=0o4755)),
           dest)
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"pwned"


@pytest.mark.parametrize("second", [
    Entry("d/shadow", "file", data=b"pwned"), Entry("d/new/", "dir"), Entry("d/sub/file", "file", data=b"x"),
    Entry("d/fifo", "fifo"), Entry("d/.wh.shadow", "file"), Entry("d/.wh..wh..opq", "file"),
    Entry("d/l", "sym", link="/"), Entry("d/h", "link", link="x"),
])
def test_nothing_is_made_through_a_symlinked_parent(site: tuple[Path, Path], second: Entry) -> None:
    dest, outside = site
    with pytest.raises(BadParameter, match="goes through a symlink"):
        unpack(tar_of(Entry("x", "file"), Entry("d", "sym", link=str(outside)), second), dest)


def test_members_that_climb_or_carry_nul_are_refused(site: tuple[Path, Path]) -> None:
    dest, _ = site
    for name in ("../outside/shadow", "a/../../outside/shadow", "/../outside/x"):
        with pytest.raises(BadParameter, match="escapes"):
            unpack(tar_of(Entry(name, "file", data=b"pwned")), dest)
    with pytest.raises(BadParameter, match="NUL"):
        unpack(tar_of(Entry("ok", "file", pax={"path": "a\0b"})), dest)


# 2. hard links ------------------------------------------------------------------------------
@pytest.mark.parametrize("link, message", [
    ("d/shadow", "goes through a symlink"),
    ("{outside}/shadow", "does not hold"),
    ("../outside/shadow", "escapes"),
    ("a/../../outside/shadow", "escapes"),
    ("dir", "not a file of the layer"),
    ("", "root"),
])
def test_hard_links_resolve_inside_the_layer(site: tuple[Path, Path], link: str, message: str) -> None:
    dest, outside = site
    with pytest.raises(BadParameter, match=message):
        unpack(tar_of(Entry("dir/", "dir"), Entry("d", "sym", link=str(outside)),
                      Entry("lnk", "link", link=link.format(outside=outside))), dest)
    assert os.stat(outside / "shadow").st_nlink == 1


def test_a_hard_link_to_a_symlink_links_the_symlink_itself(site: tuple[Path, Path]) -> None:
    dest, outside = site
    unpack(tar_of(Entry("s", "sym", link=str(outside / "shadow")), Entry("h", "link", link="s"),
                  Entry("bin/tool", "file", data=b"t"), Entry("bin/same", "link", link="/bin/tool")), dest)
    assert os.readlink(dest / "h") == str(outside / "shadow")
    assert os.stat(dest / "bin/same").st_ino == os.stat(dest / "bin/tool").st_ino


# 3. whiteouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh...", "a/.wh.", "a/.wh...", "a/b/.wh.."])
def test_whiteouts_of_nothing_or_dot_dot_are_refused(site: tuple[Path, Path], name: str) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match="whiteout"):
        unpack(tar_of(Entry("a/", "dir"), Entry("a/b/", "dir"), Entry(name, "file")), dest)
    assert (dest.parent / "other-layer/etc/keep").read_bytes() == b"k" and (dest / "a/b").is_dir()


def test_a_whiteout_removes_a_tree_without_following_its_symlinks(site: tuple[Path, Path], can_mknod: bool) -> None:
    dest, outside = site
    if not can_mknod:
        pytest.skip("mknod not permitted here")
    unpack(tar_of(Entry("x/", "dir"), Entry("x/esc", "sym", link=str(outside)), Entry("x/sub/", "dir"),
                  Entry("x/sub/up", "sym", link="../../../outside"),
                  Entry("y", "sym", link=str(outside)), Entry(".wh.x", "file"), Entry(".wh.y", "file"),
                  Entry("z/", "dir"), Entry("z/.wh..wh..opq", "file"), Entry("z/.wh..wh.plnk", "file")), dest)
    for name in ("x", "y"):
        st = os.lstat(dest / name)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.listdir(dest / "z") == []
    assert os.getxattr(dest / "z", OPAQUE_XATTR) == b"y"


# 4. xattrs ----------------------------------------------------------------------------------
def test_only_file_capabilities_are_kept_from_the_archive(site: tuple[Path, Path]) -> None:
    dest, outside = site
    evil = {"SCHILY.xattr.user.evil": "1", "SCHILY.xattr.trusted.overlay.redirect": "/outside",
            "SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.security.selinux": "system_u:object_r:x"}
    cap = {"SCHILY.xattr.security.capability": CAP_V2.decode("utf-8", "surrogateescape")}
    unpack(tar_of(Entry("bin/ping", "file", data=b"p", mode=0o755, pax={**evil, **cap}),
                  Entry("d/", "dir", pax=evil), Entry("s", "sym", link=str(outside / "shadow"), pax=evil),
                  Entry("s2", "sym", link=str(outside), pax={**evil, **cap})), dest)
    for path in (dest / "bin/ping", dest / "d"):
        names = set(os.listxattr(path, follow_symlinks=False))
        assert not names & {"user.evil", "trusted.overlay.redirect", "trusted.overlay.opaque", "security.selinux"}
    if ROOT:
        assert os.getxattr(dest / "bin/ping", "security.capability") == CAP_V2


# 5. sizes -----------------------------------------------------------------------------------
def test_member_count_and_bytes_are_bounded(site: tuple[Path, Path]) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match="more than 10 members"):
        unpack(tar_of(*[Entry(f"f{i}") for i in range(11)]), dest, limits=Limits(members=10))
    with pytest.raises(BadParameter, match="more than 100 bytes"):
        unpack(tar_of(Entry("a", data=b"x" * 60), Entry("b", data=b"y" * 60)), dest, limits=Limits(bytes=100))
    assert not (dest / "b").exists()


def test_the_default_byte_budget_leaves_the_disk_a_reserve(site: tuple[Path, Path]) -> None:
    from labagent.images.layers import MAX_LAYER_BYTES, byte_budget

    dest, _ = site
    fs = os.statvfs(dest)
    assert byte_budget(dest, Limits()) <= min(MAX_LAYER_BYTES, fs.f_bavail * fs.f_frsize)
    assert byte_budget(dest, Limits(bytes=7)) == 7


def test_names_and_link_targets_are_bounded(site: tuple[Path, Path]) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match="longer than 4096 bytes"):
        unpack(tar_of(Entry("a/" * 2100 + "f")), dest)
    with pytest.raises(BadParameter, match="component longer than 255"):
        unpack(tar_of(Entry("x" * 256)), dest)
    with pytest.raises(BadParameter, match="longer than 4095 bytes"):
        unpack(tar_of(Entry("s", "sym", link="y" * 4096)), dest)
    with pytest.raises(BadParameter, match="empty target"):
        unpack(tar_of(Entry("s2", "sym", link="")), dest)


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK])
def test_a_huge_header_is_refused_before_it_is_read(site: tuple[Path, Path], kind: bytes) -> None:
    dest, _ = site
    data = raw_header("././@LongHeader", kind, 1 << 40) + bytes(2048)
    start = time.monotonic()
    with pytest.raises(BadParameter, match="header of 1099511627776 bytes"):
        unpack(data, dest)
    assert time.monotonic() - start < 5
    with pytest.raises(BadParameter, match="header"):
        unpack(tar_of(Entry("p", pax={"comment": "c" * 5000})), dest, limits=Limits(header=1024))


def test_sparse_members_and_unknown_types_are_refused(site: tuple[Path, Path]) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match="sparse"):
        unpack(raw_header("holes", tarfile.GNUTYPE_SPARSE, 0) + bytes(1024), dest)
    with pytest.raises(BadParameter, match="sparse"):
        unpack(tar_of(Entry("holes", pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                          "GNU.sparse.name": "holes", "GNU.sparse.realsize": "10"})), dest)
    with pytest.raises(BadParameter, match="unsupported type"):
        unpack(tar_of(Entry("odd", "Z")), dest)


def test_odd_numbers_get_a_clear_error_or_are_clamped(site: tuple[Path, Path]) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match="invalid owner"):
        unpack(tar_of(Entry("u", pax={"uid": str(1 << 40)})), dest)
    unpack(tar_of(Entry("t", pax={"mtime": "1e300"}), Entry("n", pax={"mtime": "nan"})), dest)
    assert (dest / "t").exists() and (dest / "n").exists()


def test_cut_short_or_garbage_streams_are_refused(site: tuple[Path, Path]) -> None:
    dest, _ = site
    whole = tar_of(Entry("big", data=os.urandom(20_000)))
    with pytest.raises(BadParameter, match="cut short|not a valid tar"):
        unpack(whole[:5000], dest)
    with pytest.raises(BadParameter, match="not a valid tar"):
        unpack(b"\x01" * 4096, dest)


def test_the_hashed_stream_is_bounded_after_the_archive_ends() -> None:
    reader = HashingReader(io.BytesIO(tar_of(Entry("a", data=b"x")) + bytes(1 << 20)), limit=64 << 10)
    with pytest.raises(BadParameter, match="larger than 65536 bytes"):
        reader.drain()


# devices and build contexts ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["chr", "blk", "fifo"])
def test_devices_false_refuses_special_files_naming_them(site: tuple[Path, Path], kind: str) -> None:
    dest, _ = site
    with pytest.raises(BadParameter, match=r"'ctx/disk' is a (device node|FIFO)"):
        unpack(tar_of(Entry("ctx/disk", kind, dev=(8, 0))), dest, devices=False)
    assert not (dest / "ctx/disk").exists()


def test_a_context_keeps_whiteout_names_as_files_and_refuses_fifos(site: tuple[Path, Path]) -> None:
    dest, _ = site
    unpack_context(io.BytesIO(tar_of(Entry(".wh.notes", data=b"n"), Entry("d/.wh..wh..opq", data=b""))), dest)
    assert (dest / ".wh.notes").read_bytes() == b"n" and (dest / "d/.wh..wh..opq").is_file()
    with pytest.raises(BadParameter, match="FIFO"):
        unpack_context(io.BytesIO(tar_of(Entry("pipe", "fifo"))), dest)


def test_layer_device_nodes_are_made_as_root_with_their_metadata(site: tuple[Path, Path], can_mknod: bool) -> None:
    dest, _ = site
    if not can_mknod:
        pytest.skip("mknod not permitted here")
    unpack(tar_of(Entry("dev/null", "chr", mode=0o666, uid=7, gid=8, dev=(1, 3), mtime=42),
                  Entry("run/fifo", "fifo", mode=0o620, mtime=43)), dest)
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666
    assert (st.st_uid, st.st_gid, st.st_mtime) == (7, 8, 42)
    assert stat.S_IMODE(os.lstat(dest / "run/fifo").st_mode) == 0o620


def test_owners_modes_and_times_reach_what_was_made(site: tuple[Path, Path]) -> None:
    dest, _ = site
    unpack(tar_of(Entry("etc/", "dir", mode=0o755, uid=3, gid=4, mtime=100),
                  Entry("etc/ro/", "dir", mode=0o555, mtime=101),
                  Entry("etc/ro/f", data=b"f", mode=0o4711, uid=5, gid=6, mtime=102),
                  Entry("etc/s", "sym", link="ro/f", uid=9, gid=9, mtime=103)), dest)
    etc, f, s = os.stat(dest / "etc"), os.stat(dest / "etc/ro/f"), os.lstat(dest / "etc/s")
    assert stat.S_IMODE(os.stat(dest / "etc/ro").st_mode) == 0o555 and etc.st_mtime == 100
    assert stat.S_IMODE(f.st_mode) == 0o4711 and f.st_mtime == 102
    assert s.st_mtime == 103
    if ROOT:
        assert (etc.st_uid, etc.st_gid, f.st_uid, f.st_gid, s.st_uid) == (3, 4, 5, 6, 9)
