"""The cgroup2 mount options the engine reads before it asks for favordynmods."""

from __future__ import annotations

from pathlib import Path

from labagent.runtime.cgroups import mount_options

MOUNTINFO = (
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "27 21 0:24 / /sys/fs/pstore rw,nosuid shared:5 - pstore pstore rw\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


def test_reads_the_superblock_options_of_the_cgroup2_mount(tmp_path: Path) -> None:
    options = mount_options(Path("/sys/fs/cgroup"), write(tmp_path, MOUNTINFO))
    assert options == {"rw", "nsdelegate", "memory_recursiveprot"}


def test_sees_favordynmods_once_it_is_on(tmp_path: Path) -> None:
    text = MOUNTINFO.replace("memory_recursiveprot\n", "favordynmods,memory_recursiveprot\n")
    assert "favordynmods" in (mount_options(Path("/sys/fs/cgroup"), write(tmp_path, text)) or set())


def test_a_path_that_is_no_cgroup2_mount_gives_none(tmp_path: Path) -> None:
    mountinfo = write(tmp_path, MOUNTINFO)
    assert mount_options(Path("/sys/fs/pstore"), mountinfo) is None
    assert mount_options(tmp_path / "cgroup", mountinfo) is None
