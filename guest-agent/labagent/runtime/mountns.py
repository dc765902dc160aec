"""The engine's own mount namespace, kept across engine restarts.

systemd (PID 1) watches its mount table and turns every mount into a unit: each container
start and stop (an overlay rootfs, a named netns) made it, dbus and logind re-read the
table, about 110 ms of CPU per container under TCG, on the node's one vCPU. The engine
therefore mounts in a namespace of its own: a slave of the node's, so it still sees the
node's mounts, while its own stay out of systemd's sight.

The namespace is pinned by a bind mount of its nsfs file at PIN, so a restarted engine
joins the same one and finds the mounts of the containers that kept running. Joining or
making a mount namespace needs a single-threaded process: call enter() first thing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .. import contract
from ..libc import CLONE_NEWNS, LIBC, MS_BIND, MS_PRIVATE, MS_REC, MS_SLAVE, check

log = logging.getLogger(__name__)
PIN = Path(contract.MOUNT_NS_PIN)


def _mount(source: str | None, target: Path, flags: int, what: str) -> None:
    check(LIBC.mount(source.encode() if source else None, str(target).encode(), None, flags, None), what)


def _setns(fd: int, what: str) -> None:
    check(LIBC.setns(fd, CLONE_NEWNS), what)


def _is_pinned(pin: Path) -> bool:
    """The pin is a mount point of an nsfs file (an empty file before, or after a reboot)."""
    try:
        return os.stat(pin).st_dev != os.stat(pin.parent).st_dev
    except OSError:
        return False


def _is_mount_point(path: Path) -> bool:
    """From the mount table: a bind mount of a directory onto itself keeps its st_dev."""
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == str(path) for line in mountinfo)


def enter(pin: Path = PIN) -> None:
    """Join the pinned namespace, or make, pin and join a new one."""
    if _is_pinned(pin):
        fd = os.open(pin, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd, f"join the engine's mount namespace {pin}")
        finally:
            os.close(fd)
        log.info("joined the engine's mount namespace (%s)", pin)
        return
    _make(pin)
    log.info("made the engine's mount namespace, pinned at %s", pin)


def _make(pin: Path) -> None:
    # The pin's directory must be a private mount of the node's namespace: the kernel
    # refuses to pin a namespace where the pin would propagate into that very namespace.
    directory = pin.parent
    directory.mkdir(parents=True, exist_ok=True)
    if not _is_mount_point(directory):
        _mount(str(directory), directory, MS_BIND, f"bind {directory}")
    _mount(None, directory, MS_PRIVATE, f"make {directory} private")
    pin.touch()
    node_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    own_ns = -1
    try:
        check(LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _mount(None, Path("/"), MS_REC | MS_SLAVE, "make / a slave of the node's mounts")
        own_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        _setns(node_ns, "back to the node's mount namespace")
        _mount(f"/proc/self/fd/{own_ns}", pin, MS_BIND, f"pin the mount namespace at {pin}")
        _setns(own_ns, "enter the engine's mount namespace")
    finally:
        os.close(node_ns)
        if own_ns >= 0:
            os.close(own_ns)
