"""The stats and top readers on sample cgroup v2 and /proc files, and the freezer's wait."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from labagent.containers import stats, top
from labagent.containers.model import Container, CreateSpec
from labagent.errors import BadParameter, EngineError
from labagent.runtime.cgroups import Cgroups, keyed

NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls\n"
    "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0"
    "       0          0\n"
    "  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0"
    "       0          0\n"
    " bogus: x y z\n"
)
PROC_STAT = "cpu  100 0 50 800 10 0 5 0 0 0\ncpu0 50 0 25 400 5 0 2 0 0 0\ncpu1 50 0 25 400 5 0 3 0 0 0\nintr 1\n"


def test_net_dev_leaves_loopback_and_garbage_out() -> None:
    assert stats.net_dev(NET_DEV) == {"eth0": {
        "rx_bytes": 5000, "rx_packets": 40, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 3, "tx_dropped": 4}}


def test_system_cpu_usage_sums_user_to_steal_in_nanoseconds() -> None:
    assert stats.system_cpu_usage(PROC_STAT) == (100 + 50 + 800 + 10 + 5) * 1_000_000_000 // stats.CLOCK_TICKS
    assert stats.online_cpus(PROC_STAT) == 2
    assert stats.system_cpu_usage("") == 0


def test_io_stat_gives_read_and_write_entries_per_device() -> None:
    blkio = stats.io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
                          "8:16 rbytes=5 wbytes=0 rios=1 wios=0\nnonsense line\n")
    assert blkio["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 10}, {"major": 8, "minor": 0, "op": "write", "value": 20},
        {"major": 8, "minor": 16, "op": "read", "value": 5}, {"major": 8, "minor": 16, "op": "write", "value": 0}]
    assert [e["value"] for e in blkio["io_serviced_recursive"]] == [1, 2, 1, 0]
    assert stats.io_stat("")["io_service_bytes_recursive"] is None


def test_keyed_reads_integers_and_skips_the_rest() -> None:
    assert keyed("anon 10\nfile 20\nbroken\nsome thing else\nneg -3\n") == {"anon": 10, "file": 20, "neg": -3}


def make_container(cid: str = "c" * 64, pid: int = 0) -> Container:
    c = Container(cid, "box", "2024-01-01T00:00:00Z", CreateSpec("busybox", "sha256:x"))
    c.state.status, c.state.pid = "running", pid
    return c


def test_sampler_reads_the_cgroup_and_keeps_the_previous_sample(tmp_path: Path) -> None:
    cg = Cgroups(tmp_path / "cgroup")
    c = make_container(pid=4242)
    group = cg.container_dir(c.id)
    group.mkdir(parents=True)
    (group / "cpu.stat").write_text("usage_usec 10\nuser_usec 7\nsystem_usec 3\n")
    (group / "memory.current").write_text("4096\n")
    (group / "memory.max").write_text("max\n")
    (group / "pids.current").write_text("2\n")
    (group / "pids.max").write_text("20\n")
    proc = tmp_path / "proc"
    (proc / "4242" / "net").mkdir(parents=True)
    (proc / "4242" / "net" / "dev").write_text(NET_DEV)
    (proc / "stat").write_text(PROC_STAT)
    (proc / "meminfo").write_text("MemTotal:        2048 kB\nMemFree: 1 kB\n")
    sampler = stats.Sampler(cg, proc)
    first = sampler.sample(c)
    assert first["memory_stats"] == {"usage": 4096, "limit": 2048 * 1024, "stats": {}}
    assert first["pids_stats"] == {"current": 2, "limit": 20}
    assert first["cpu_stats"]["cpu_usage"]["total_usage"] == 10_000
    assert first["networks"]["eth0"]["rx_bytes"] == 5000
    assert first["preread"] == stats.NEVER and first["precpu_stats"] == stats.empty_cpu()
    (group / "cpu.stat").write_text("usage_usec 30\n")
    second = sampler.sample(c)
    assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
    assert second["cpu_stats"]["cpu_usage"]["total_usage"] == 30_000


def test_sampler_of_a_container_without_cgroup_files_gives_zeros(tmp_path: Path) -> None:
    sample = stats.Sampler(Cgroups(tmp_path / "cgroup"), tmp_path / "proc").sample(make_container())
    assert sample["memory_stats"]["usage"] == 0 and sample["networks"] == {}


# top ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, columns", [("", top.FULL), ("-ef", top.FULL), ("aux", top.USER),
                                           ("waux", top.USER), ("auxww", top.USER), ("-aux", top.USER)])
def test_layouts(args: str, columns: tuple[str, ...]) -> None:
    assert top.layout(args) == columns


@pytest.mark.parametrize("args", ["-o pid", "-e", "x", "aux; reboot", "a" * 100 + "u", "--help"])
def test_other_ps_args_are_refused_by_name(args: str) -> None:
    with pytest.raises(BadParameter, match="ps_args"):
        top.layout(args)


def test_stat_comm_may_hold_spaces_and_parentheses() -> None:
    comm, fields = top.parse_stat("12 (a) b (c)) S 1 12 12 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 99 1000 5\n")
    assert comm == "a) b (c)" and fields[0] == "S" and fields[1] == "1"


def write_proc(proc: Path, pid: int, cmdline: bytes, comm: str = "sleep", uid: int = 0) -> None:
    base = proc / str(pid)
    base.mkdir(parents=True)
    ticks = top.TICKS
    # pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss
    base.joinpath("stat").write_text(
        f"{pid} ({comm}) S 1 {pid} {pid} 34816 -1 0 0 0 0 0 {2 * ticks} {ticks} 0 0 20 0 1 0 "
        f"{10 * ticks} 8192000 100 0\n")
    base.joinpath("status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    base.joinpath("cmdline").write_bytes(cmdline)


def test_rows_in_both_layouts(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc(proc, 7, b"sleep\x0060\x00")
    write_proc(proc, 8, b"", comm="kworker", uid=4242424)
    (proc / "uptime").write_text("110.00 50.00\n")
    (proc / "meminfo").write_text(f"MemTotal: {100 * os.sysconf('SC_PAGE_SIZE') // 1024 * 4} kB\n")
    full = top.rows([7, 8, 9], top.FULL, proc)  # 9 is gone: left out
    assert [r[1] for r in full] == ["7", "8"]
    assert full[0] == ["root", "7", "1", "3", full[0][4], "pts/0", "00:00:03", "sleep 60"]
    assert full[1][0] == "4242424" and full[1][-1] == "[kworker]"
    aux = top.rows([7], top.USER, proc)[0]
    assert aux[0] == "root" and aux[1] == "7" and aux[3] == "25.0"
    assert aux[4] == str(8192000 // 1024) and aux[7] == "S" and aux[9] == "0:03" and aux[10] == "sleep 60"


def test_tty_names() -> None:
    assert top.tty_name(0) == "?"
    assert top.tty_name((136 << 8) | 3) == "pts/3"
    assert top.tty_name((4 << 8) | 1) == "tty1"


# the freezer -------------------------------------------------------------------------------
def test_freeze_waits_for_cgroup_events_to_say_frozen(tmp_path: Path) -> None:
    cg = Cgroups(tmp_path / "cgroup")
    group = cg.container_dir("c1")
    group.mkdir(parents=True)
    (group / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    kernel = threading.Timer(0.05, lambda: (group / "cgroup.events").write_text("populated 1\nfrozen 1\n"))
    kernel.start()
    cg.freeze("c1", True)
    kernel.join()
    assert (group / "cgroup.freeze").read_text() == "1"
    assert keyed((group / "cgroup.events").read_text())["frozen"] == 1


def test_a_freeze_the_kernel_never_finishes_is_an_error(tmp_path: Path) -> None:
    cg = Cgroups(tmp_path / "cgroup")
    cg.container_dir("c1").mkdir(parents=True)
    with pytest.raises(EngineError, match="did not freeze"):
        cg.freeze("c1", True, timeout=0.05)
    with pytest.raises(EngineError, match="cannot freeze"):
        cg.freeze("gone", True)


def test_set_limits_writes_the_cgroup_v2_files(tmp_path: Path) -> None:
    cg = Cgroups(tmp_path / "cgroup")
    group = cg.container_dir("c1")
    group.mkdir(parents=True)
    cg.set_limits("c1", 64 << 20, (50000, 100000), 0)
    assert [(group / n).read_text() for n in ("memory.max", "memory.swap.max", "cpu.max", "pids.max")] == \
        [str(64 << 20), "0", "50000 100000", "max"]
    cg.set_limits("c1", 0, (0, 0), 10)
    assert (group / "cpu.max").read_text() == "max 100000" and (group / "pids.max").read_text() == "10"
    assert (group / "memory.max").read_text() == str(64 << 20)  # 0: left as it was


def test_procs_include_the_groups_a_container_made_below_its_own(tmp_path: Path) -> None:
    cg = Cgroups(tmp_path / "cgroup")
    group = cg.container_dir("c1")
    (group / "sub" / "deeper").mkdir(parents=True)
    (group / "cgroup.procs").write_text("10\n2\n")
    (group / "sub" / "cgroup.procs").write_text("")
    (group / "sub" / "deeper" / "cgroup.procs").write_text("7\nbogus\n")
    assert cg.procs("c1") == [2, 7, 10]
    assert cg.procs("nosuch") == []
