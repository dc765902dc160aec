"""Claim 4: cgroups limit resources (memory, pids, cpu)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import testinfra.host

from ...units import parse_mebibytes
from ..plugin import Probes

ContainerHost = Callable[[str, str], testinfra.host.Host]


def test_memory_limit_is_set_on_the_container(probes: Probes, container_host: ContainerHost) -> None:
    limit = container_host(probes.node, probes.first).check_output("cat /sys/fs/cgroup/memory.max")
    assert limit != "max", "the probe container has no memory limit"
    assert int(limit) == parse_mebibytes(probes.memory) * 2**20


def test_memory_limit_oom_kills_an_allocation_over_it(probes: Probes, container_host: ContainerHost) -> None:
    size = 3 * parse_mebibytes(probes.memory) if probes.memory != "none" else 96
    hog = container_host(probes.node, probes.first).run(f"head -c {size}m /dev/zero | tail > /dev/null")
    assert hog.rc == 137 or "Killed" in hog.stdout + hog.stderr, (
        f"allocating {size} MiB in a {probes.memory} container was not OOM-killed (exit {hog.rc})"
    )


def run_once(probes: Probes, options: list[str], script: str) -> testinfra.host.CommandResult:
    name = f"verify-{uuid.uuid4().hex[:6]}"
    try:
        return probes.run("run", "--name", name, *options, "busybox", "sh", "-c", script)
    finally:
        probes.run("rm", "-f", name)


def test_pids_limit_stops_a_fork_bomb(probes: Probes) -> None:
    result = run_once(probes, ["--pids-limit", "12"], "for i in $(seq 1 40); do sleep 20 & done; wait")
    assert "can't fork" in result.stdout + result.stderr, "40 forks under a 12-pid limit all succeeded"


def test_cpu_quota_caps_usage(probes: Probes) -> None:
    script = (
        "a=$(awk '/usage_usec/ {print $2}' /sys/fs/cgroup/cpu.stat); "
        "timeout 4 sh -c 'while :; do :; done'; "
        "b=$(awk '/usage_usec/ {print $2}' /sys/fs/cgroup/cpu.stat); echo $((b - a))"
    )
    result = run_once(probes, ["--cpus", "0.2"], script)
    used = int(result.stdout.split()[-1]) / 1e6
    assert used < 4 * 0.35, f"a busy loop under a 0.2-CPU quota used {used:.2f} s of CPU in 4 s"
