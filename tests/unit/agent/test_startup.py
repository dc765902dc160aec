"""Start-up: READY=1 to systemd, and serving while busybox is still being built."""

import os
import socket
import threading
import time

from labagent.engine import Engine
from labagent.images import busybox
from labagent.notify import Notifier, notify_address


def test_abstract_notify_socket_names_start_with_nul():
    assert notify_address("@/org/freedesktop/systemd1/notify/1") == "\0/org/freedesktop/systemd1/notify/1"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"


def test_ready_reaches_the_socket_and_leaves_no_trace_in_the_environment(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path), "PATH": "/bin"}
        notifier = Notifier.from_environ(env)
        assert "NOTIFY_SOCKET" not in env  # crun must not inherit it
        assert notifier.send("READY=1")
        assert listener.recv(64) == b"READY=1"


def test_abstract_socket(tmp_path):
    name = f"@lab-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(notify_address(name))
        assert Notifier(name).send("READY=1")
        assert listener.recv(64) == b"READY=1"


def test_without_systemd_nothing_is_sent():
    assert not Notifier.from_environ({}).send("READY=1")


def test_image_lookups_wait_for_the_busybox_build(tmp_path, seams, monkeypatch):
    release = threading.Event()
    real_build = busybox.build

    def slow_build(store, path):
        release.wait(5)
        return real_build(store, path)

    monkeypatch.setattr(busybox, "build", slow_build)
    engine = Engine(tmp_path / "root", seams)
    started = time.monotonic()
    engine.startup()
    assert time.monotonic() - started < 4  # did not wait for the build
    assert engine.containers.all() == []  # container records serve meanwhile
    found: list[str] = []
    lookup = threading.Thread(target=lambda: found.append(engine.images.resolve("busybox").tags[0]))
    lookup.start()
    lookup.join(0.3)
    assert lookup.is_alive() and not found  # waits for the image rather than a 404
    release.set()
    lookup.join(5)
    assert found == ["busybox:latest"]
    assert busybox.needed(engine.images, seams.busybox) is False
    assert engine.build_busybox_in_background() is None  # built once only
