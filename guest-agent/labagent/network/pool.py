"""A few network namespaces made ahead of time, so a container start does not wait for one.

Each slot is a named netns with eth0 (address, default route) whose host-side veth is
already on the bridge: building one costs tens of milliseconds of netlink and namespace
set-up under TCG, which is most of what the engine adds to `crun run`. A starting container
takes a slot (its address and MAC come with it), and one background thread builds the next
once no start has been in flight for QUIET seconds. Its lowest CPU priority is not enough
on one vCPU: the kernel work of a new veth, and what udev and systemd do about it, ran
beside crun and cost a start about 60 ms. Starts less than QUIET apart drain the pool and
then wire their netns themselves. Slots are only ever used once: a container's netns is
destroyed with it, as before, so nothing of one container's network state reaches another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)
NETNS_PREFIX = "labpool-"
VETH_PREFIX = "lp"
RETRY_AFTER = 5.0  # seconds, after a slot failed to build
QUIET = 0.05  # seconds without a container start before the pool builds


@dataclass(frozen=True)
class Slot:
    netns: str  # name under /run/netns
    veth: str  # host-side end, on the bridge
    ip: str
    mac: str


def slot_names() -> tuple[str, str]:
    """A fresh (netns, veth) pair sharing one random tag; the veth fits IFNAMSIZ."""
    tag = secrets.token_hex(5)
    return f"{NETNS_PREFIX}{tag}", f"{VETH_PREFIX}{tag}"


def veth_of(netns: str) -> str:
    """The host-side veth a slot netns was built with (for sweeping leftovers)."""
    return VETH_PREFIX + netns.removeprefix(NETNS_PREFIX)


class NetnsPool:
    """Keeps `size` slots ready. build(netns, veth, ip) -> MAC; destroy(netns, veth).

    allocate() reserves a free address for a slot being built; the engine counts
    reserved() as taken when it picks addresses itself.
    """

    def __init__(self, build: Callable[[str, str, str], str], destroy: Callable[[str, str], None],
                 allocate: Callable[[], str], size: int = 2, nice: int = 19,
                 quiet: float = QUIET) -> None:
        self._build, self._destroy, self._allocate = build, destroy, allocate
        self.size = size
        self.nice = nice
        self.quiet = quiet
        self._starts = 0  # container starts in flight
        self._quiet_from = 0.0  # monotonic time from which building may begin
        self._ready: list[Slot] = []
        self._building: set[str] = set()  # addresses of slots being built
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._fill, name="netns-pool", daemon=True)
        self._thread.start()

    def reserved(self) -> set[str]:
        with self._cond:
            return {s.ip for s in self._ready} | self._building

    def hold(self, ip: str) -> None:
        """Count an address as the pool's from now on (called by allocate, under its lock)."""
        with self._cond:
            self._building.add(ip)

    def take(self) -> Slot | None:
        """A ready slot, or None (the caller builds its netns itself); wakes the filler."""
        with self._cond:
            if not self._ready or self._closed:
                return None
            slot = self._ready.pop(0)
            self._cond.notify_all()
            return slot

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Around a container start: the filler waits until QUIET after the last one."""
        with self._cond:
            self._starts += 1
        try:
            yield
        finally:
            with self._cond:
                self._starts -= 1
                self._quiet_from = time.monotonic() + self.quiet
                self._cond.notify_all()

    def _wait_for_quiet(self) -> None:
        """Called with the condition held."""
        while not self._closed:
            if self._starts:
                self._cond.wait()
                continue
            remaining = self._quiet_from - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def wait_ready(self, count: int, timeout: float) -> bool:
        """For tests and start-up: block until `count` slots are ready."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= count, timeout)

    def close(self) -> None:
        """Stop filling and destroy every unused slot (engine stop)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._cond:
            leftovers, self._ready = self._ready, []
        for slot in leftovers:
            self._safe_destroy(slot.netns, slot.veth)

    def _fill(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        except OSError as exc:
            log.debug("cannot lower the pool thread's priority: %s", exc)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(self._ready) + len(self._building) < self.size)
                self._wait_for_quiet()
                if self._closed:
                    return
            if not self._build_one():
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, RETRY_AFTER)

    def _build_one(self) -> bool:
        try:
            ip = self._allocate()
        except Exception:
            log.exception("no address for a pooled netns")
            return False
        netns, veth = slot_names()
        try:
            mac = self._build(netns, veth, ip)
        except Exception:
            log.exception("cannot build pooled netns %s", netns)
            self._safe_destroy(netns, veth)
            with self._cond:
                self._building.discard(ip)
            return False
        with self._cond:
            self._building.discard(ip)
            if self._closed:
                closed = True
            else:
                closed = False
                self._ready.append(Slot(netns, veth, ip, mac))
                self._cond.notify_all()
        if closed:
            self._safe_destroy(netns, veth)
        return True

    def _safe_destroy(self, netns: str, veth: str) -> None:
        try:
            self._destroy(netns, veth)
        except Exception:
            log.exception("cannot remove pooled netns %s", netns)
