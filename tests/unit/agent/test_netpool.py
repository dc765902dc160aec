"""The pool of ready-made network namespaces: filling, taking, addresses, failures, close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from labagent.containers.model import CreateSpec
from labagent.engine import Engine
from labagent.network.pool import NETNS_PREFIX, VETH_PREFIX, NetnsPool, veth_of
from labagent.runtime.filewatch import DirWatch

from .fakes import FakeNetwork, PooledFakeNetwork, make_seams


class Builder:
    def __init__(self) -> None:
        self.built: dict[str, tuple[str, str]] = {}
        self.destroyed: list[str] = []
        self.fail = False
        self.lock = threading.Lock()
        self.next_ip = 2

    def allocate(self, pool: list[NetnsPool]) -> str:
        with self.lock:
            ip = f"172.31.0.{self.next_ip}"
            self.next_ip += 1
        pool[0].hold(ip)
        return ip

    def build(self, netns: str, veth: str, ip: str) -> str:
        if self.fail:
            raise OSError("no veth for you")
        self.built[netns] = (veth, ip)
        return "02:42:00:00:00:01"

    def destroy(self, netns: str, veth: str) -> None:
        self.destroyed.append(netns)
        self.built.pop(netns, None)


def make_pool(builder: Builder, size: int = 2, quiet: float = 0.0) -> NetnsPool:
    holder: list[NetnsPool] = []
    pool = NetnsPool(builder.build, builder.destroy, lambda: builder.allocate(holder), size, nice=0,
                     quiet=quiet)
    holder.append(pool)
    return pool


def test_fills_to_size_and_refills_after_a_take() -> None:
    builder = Builder()
    pool = make_pool(builder)
    pool.start()
    try:
        assert pool.wait_ready(2, 5)
        assert pool.reserved() == {"172.31.0.2", "172.31.0.3"}
        slot = pool.take()
        assert slot is not None and slot.ip == "172.31.0.2"
        assert slot.netns.startswith(NETNS_PREFIX) and slot.veth == veth_of(slot.netns)
        assert slot.veth.startswith(VETH_PREFIX) and len(slot.veth) <= 15
        assert slot.ip not in pool.reserved()  # the container's now, not the pool's
        assert pool.wait_ready(2, 5)
        assert len(builder.built) == 3
    finally:
        pool.close()


def test_builds_nothing_while_a_start_is_in_flight_nor_until_quiet_after_it() -> None:
    builder = Builder()
    pool = make_pool(builder, size=1, quiet=0.3)
    pool.start()
    try:
        assert pool.wait_ready(1, 5)
        with pool.starting():
            assert pool.take() is not None
            time.sleep(0.2)
            assert len(builder.built) == 1  # the taken slot only: no refill mid-start
        ended = time.monotonic()
        assert pool.wait_ready(1, 5)
        assert time.monotonic() - ended >= 0.25
        assert len(builder.built) == 2
    finally:
        pool.close()


def test_close_destroys_unused_slots_only() -> None:
    builder = Builder()
    pool = make_pool(builder)
    pool.start()
    assert pool.wait_ready(2, 5)
    taken = pool.take()
    assert taken is not None
    pool.wait_ready(2, 5)
    pool.close()
    assert taken.netns not in builder.destroyed
    assert set(builder.built) == {taken.netns}
    assert pool.take() is None


def test_a_failing_build_leaves_nothing_and_take_falls_back() -> None:
    builder = Builder()
    builder.fail = True
    pool = make_pool(builder, size=1)
    pool.start()
    try:
        assert not pool.wait_ready(1, 0.3)
        assert pool.take() is None
        assert pool.reserved() == set()
        assert builder.destroyed  # the half-built slot was cleaned up
    finally:
        pool.close()


def test_dir_watch_wakes_on_a_write_and_times_out_otherwise(tmp_path: Path) -> None:
    with DirWatch(tmp_path) as watch:
        started = time.monotonic()
        watch.wait(0.05)
        assert time.monotonic() - started >= 0.04
        timer = threading.Timer(0.05, lambda: (tmp_path / "init.pid").write_text("42"))
        timer.start()
        started = time.monotonic()
        watch.wait(5)
        assert time.monotonic() - started < 2
        timer.join()


def test_engine_starts_containers_in_pooled_namespaces(tmp_path: Path) -> None:
    seams = make_seams(tmp_path / "seams")
    net = PooledFakeNetwork()
    seams.network = net
    engine = Engine(tmp_path / "root", seams)
    engine.startup()
    assert (net.set_up, net.swept) == (1, 1)  # the bridge, then leftovers of an earlier engine
    engine.warm(pool_size=2)
    try:
        pool = engine.lifecycle.pool
        assert pool is not None and pool.wait_ready(2, 5)
        first = engine.lifecycle.create("one", CreateSpec(image="busybox", image_id="", cmd=["sleep", "5"]))
        engine.lifecycle.start(first.id)
        assert first.network.veth.startswith("lp") and first.network.mac == "02:42:ac:1f:00:99"
        assert first.id in net.claimed and first.network.ip not in pool.reserved()
        assert pool.wait_ready(2, 5)
        second = engine.lifecycle.create("two", CreateSpec(image="busybox", image_id="", cmd=["sleep", "5"]))
        engine.lifecycle.start(second.id)
        ips = {first.network.ip, second.network.ip}
        assert len(ips) == 2 and not ips & pool.reserved()  # no address handed out twice
        veth = first.network.veth
        engine.remove_container(first.id, force=True)
        assert (first.id, veth) in net.detached  # the record's veth, not lv<id>
    finally:
        engine.remove_container("two", force=True)
        engine.shutdown()
    assert net.slots == {}  # unused slots removed at stop


def test_a_network_without_slot_wiring_gets_no_pool_and_wires_each_start(tmp_path: Path) -> None:
    seams = make_seams(tmp_path / "seams")
    net = seams.network
    assert isinstance(net, FakeNetwork)
    engine = Engine(tmp_path / "root", seams)
    engine.startup()
    engine.warm(pool_size=2)
    assert engine.lifecycle.pool is None and net.set_up == 1
    container = engine.lifecycle.create("one", CreateSpec(image="busybox", image_id="", cmd=["sleep", "5"]))
    try:
        engine.lifecycle.start(container.id)
        assert net.attached == {container.id: container.network.ip}
    finally:
        engine.remove_container(container.id, force=True)
