"""`GET /containers/{id}/stats`: one sample of a container's cgroup v2 figures in Docker's shape.

The docker CLI computes CPU % from the difference between cpu_stats and precpu_stats
(total_usage against system_cpu_usage, times online_cpus) and memory as usage minus
inactive_file; docker-py hands the JSON over as it is. So the figures keep Docker's units:
nanoseconds for CPU, bytes for memory and I/O.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.cgroups import Cgroups, keyed, read_small
from .model import Container

NEVER = "0001-01-01T00:00:00Z"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
UNLIMITED = "max"
NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
              "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def rfc3339_nano(epoch_ns: int) -> str:
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def system_cpu_usage(proc_stat: str) -> int:
    """The node's CPU time in nanoseconds: the `cpu` line of /proc/stat (user..steal), as Docker sums it."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = sum(int(v) for v in fields[1:9] if v.isdigit())
            return ticks * 1_000_000_000 // CLOCK_TICKS
    return 0


def online_cpus(proc_stat: str) -> int:
    count = sum(1 for line in proc_stat.splitlines() if line.startswith("cpu") and line[3:4].isdigit())
    return count or (os.cpu_count() or 1)


def net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/<pid>/net/dev of the container's network namespace, loopback left out (as Docker)."""
    networks: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) < 16 or not all(v.isdigit() for v in values[:16]):
            continue
        name = name.strip()
        if name == "lo":
            continue
        numbers = [int(v) for v in values]
        rx, tx = numbers[0:4], numbers[8:12]
        networks[name] = dict(zip(NET_FIELDS, rx + tx, strict=True))
    return networks


def io_stat(text: str) -> dict[str, Any]:
    """io.stat (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..`) as Docker's blkio_stats for cgroup v2."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in text.splitlines():
        device, *pairs = line.split()
        major, sep, minor = device.partition(":")
        if not sep or not major.isdigit() or not minor.isdigit():
            continue
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        for key, op, out in (("rbytes", "read", service_bytes), ("wbytes", "write", service_bytes),
                             ("rios", "read", serviced), ("wios", "write", serviced)):
            if values.get(key, "").isdigit():
                out.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
    return {"io_service_bytes_recursive": service_bytes or None, "io_serviced_recursive": serviced or None,
            "io_queue_recursive": None, "io_service_time_recursive": None, "io_wait_time_recursive": None,
            "io_merged_recursive": None, "io_time_recursive": None, "sectors_recursive": None}


def node_memory(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return 0


def limit_of(text: str | None, default: int) -> int:
    value = (text or "").strip()
    return int(value) if value.isdigit() else default


def cpu_stats(cpu_stat: str, proc_stat: str) -> dict[str, Any]:
    cpu = keyed(cpu_stat)
    return {
        "cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000,
                      "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                      "usage_in_usermode": cpu.get("user_usec", 0) * 1000},
        "system_cpu_usage": system_cpu_usage(proc_stat),
        "online_cpus": online_cpus(proc_stat),
        "throttling_data": {"periods": cpu.get("nr_periods", 0),
                            "throttled_periods": cpu.get("nr_throttled", 0),
                            "throttled_time": cpu.get("throttled_usec", 0) * 1000},
    }


def empty_cpu() -> dict[str, Any]:
    """precpu_stats before there is a previous sample, as Docker sends it."""
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


@dataclass
class Sampler:
    """Reads one container's figures; keeps the previous sample for precpu_stats and preread."""

    cgroups: Cgroups
    proc: Path = Path("/proc")
    previous: dict[str, Any] = field(default_factory=dict)

    def sample(self, container: Container) -> dict[str, Any]:
        read = rfc3339_nano(time.time_ns())
        if container.running:
            stats = self._figures(container)
        else:  # Docker answers a stopped container with zeroed figures
            stats = {"pids_stats": {}, "cpu_stats": empty_cpu(), "memory_stats": {},
                     "blkio_stats": io_stat(""), "networks": {}}
        result: dict[str, Any] = {
            "name": f"/{container.name}", "id": container.id,
            "read": read, "preread": self.previous.get("read", NEVER),
            **stats,
            "precpu_stats": self.previous.get("cpu_stats", empty_cpu()),
            "num_procs": 0, "storage_stats": {},
        }
        self.previous = result
        return result

    def _figures(self, c: Container) -> dict[str, Any]:
        cid = c.id
        proc_stat = read_small(self.proc / "stat") or ""
        node_mem = node_memory(read_small(self.proc / "meminfo") or "")
        usage = limit_of(self.cgroups.read(cid, "memory.current"), 0)
        net = read_small(self.proc / str(c.state.pid) / "net" / "dev") if c.state.pid > 0 else None
        return {
            "pids_stats": {"current": limit_of(self.cgroups.read(cid, "pids.current"), 0),
                           "limit": limit_of(self.cgroups.read(cid, "pids.max"), 0)},
            "cpu_stats": cpu_stats(self.cgroups.read(cid, "cpu.stat") or "", proc_stat),
            "memory_stats": {"usage": usage,
                             "limit": limit_of(self.cgroups.read(cid, "memory.max"), node_mem),
                             "stats": keyed(self.cgroups.read(cid, "memory.stat") or "")},
            "blkio_stats": io_stat(self.cgroups.read(cid, "io.stat") or ""),
            "networks": net_dev(net or ""),
        }
