import io
import os
import stat
import tarfile

import pytest
from labagent.errors import BadParameter
from labagent.images.layers import OPAQUE_XATTR, Whiteouts, unpack_layer

from .conftest import RecordingWhiteouts, tar_bytes


def test_files_dirs_and_whiteouts(tmp_path):
    layer = tar_bytes({"etc/": None, "etc/motd": b"hi\n", "etc/.wh.shadow": b"", "var/": None,
                       "var/cache/": None, "var/cache/.wh..wh..opq": b"", "var/cache/new": b"x"})
    rec = RecordingWhiteouts()
    unpack_layer(io.BytesIO(layer), tmp_path, rec)
    assert (tmp_path / "etc/motd").read_bytes() == b"hi\n"
    assert rec.whiteouts == [tmp_path / "etc/shadow"]
    assert rec.opaques == [tmp_path / "var/cache"]
    assert not (tmp_path / "etc/.wh.shadow").exists()
    assert not (tmp_path / "var/cache/.wh..wh..opq").exists()
    assert (tmp_path / "var/cache/new").read_bytes() == b"x"


def test_real_whiteout_is_a_0_0_char_device(tmp_path, can_mknod):
    if not can_mknod:
        pytest.skip("mknod not permitted here")
    unpack_layer(io.BytesIO(tar_bytes({"a/": None, "a/.wh.gone": b""})), tmp_path, Whiteouts())
    st = os.lstat(tmp_path / "a/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_real_opaque_dir_gets_the_overlay_xattr(tmp_path):
    try:
        unpack_layer(io.BytesIO(tar_bytes({"d/": None, "d/.wh..wh..opq": b""})), tmp_path, Whiteouts())
    except PermissionError:
        pytest.skip("trusted.* xattrs need CAP_SYS_ADMIN")
    except OSError as exc:
        pytest.skip(f"filesystem has no trusted xattrs: {exc}")
    assert os.getxattr(tmp_path / "d", OPAQUE_XATTR) == b"y"


def test_members_that_climb_out_are_refused(tmp_path):
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(BadParameter, match="escapes"):
        unpack_layer(io.BytesIO(tar_bytes({"../evil": b"x"})), dest, RecordingWhiteouts())
    assert not (tmp_path / "evil").exists()


def test_writes_through_a_symlink_are_refused(tmp_path):
    dest, outside = tmp_path / "layer", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("sneaky")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        f = tarfile.TarInfo("sneaky/file")
        f.size = 1
        tar.addfile(f, io.BytesIO(b"x"))
    with pytest.raises(BadParameter, match="non-directory"):
        unpack_layer(io.BytesIO(buf.getvalue()), dest, RecordingWhiteouts())
    assert list(outside.iterdir()) == []


def test_symlinks_hardlinks_and_modes(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        f = tarfile.TarInfo("bin/tool")
        f.size, f.mode, f.mtime = 3, 0o755, 1_000_000
        tar.addfile(f, io.BytesIO(b"abc"))
        s = tarfile.TarInfo("bin/alias")
        s.type, s.linkname = tarfile.SYMTYPE, "tool"
        tar.addfile(s)
        h = tarfile.TarInfo("bin/hard")
        h.type, h.linkname = tarfile.LNKTYPE, "bin/tool"
        tar.addfile(h)
    unpack_layer(io.BytesIO(buf.getvalue()), tmp_path, RecordingWhiteouts())
    assert os.readlink(tmp_path / "bin/alias") == "tool"
    assert os.stat(tmp_path / "bin/hard").st_ino == os.stat(tmp_path / "bin/tool").st_ino
    assert stat.S_IMODE(os.stat(tmp_path / "bin/tool").st_mode) == 0o755
    assert os.stat(tmp_path / "bin/tool").st_mtime == 1_000_000
