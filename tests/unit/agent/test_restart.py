"""Engine restarts re-adopt running containers; a node reboot leaves records marked exited."""

import os
import signal
import time

from labagent.containers.model import CreateSpec
from labagent.engine import Engine


def test_restarted_engine_readopts_a_running_container(tmp_path, seams):
    first = Engine(tmp_path / "root", seams)
    first.startup()
    script = "echo one; sleep 0.6; echo two; exit 5"
    c = first.lifecycle.create("keep", CreateSpec("busybox", "", cmd=["sh", "-c", script]))
    first.lifecycle.start("keep")
    shim = c.state.shim_pid
    # the old engine goes away (its objects are simply dropped); a new one reads the disk
    second = Engine(tmp_path / "root", seams)
    second.adopt()
    again = second.containers.get("keep")
    assert again.running and again.state.shim_pid == shim
    done = second.lifecycle.wait(again)
    assert done.state.exit_code == 5 and done.state.status == "exited"
    entries, _ = second.containers.logfile(again.id).read()
    assert b"".join(e.data for e in entries).count(b"two\n") == 1


def test_reboot_marks_running_records_exited_and_keeps_images(tmp_path, seams):
    engine = Engine(tmp_path / "root", seams)
    engine.startup()
    c = engine.lifecycle.create("gone", CreateSpec("busybox", "", cmd=["sleep", "30"]))
    engine.lifecycle.start("gone")
    os.kill(c.state.pid, signal.SIGKILL)
    os.kill(c.state.shim_pid, signal.SIGKILL)  # as if the node lost power: no exit code written
    deadline = time.time() + 5
    while engine.containers.get("gone").running and time.time() < deadline:
        time.sleep(0.05)
    rebooted = Engine(tmp_path / "root", seams)
    rebooted.startup()
    state = rebooted.containers.get("gone").state
    assert state.status == "exited" and state.exit_code == 255 and "lost" in state.error
    assert [i.tags for i in rebooted.images.images()] == [["busybox:latest"]]


def test_record_running_but_shim_dead_is_exited_on_adopt(tmp_path, seams):
    engine = Engine(tmp_path / "root", seams)
    engine.startup()
    c = engine.lifecycle.create("stale", CreateSpec("busybox", "", cmd=["true"]))
    c.state.status, c.state.shim_pid, c.state.shim_start = "running", 999_999_999, 1
    engine.containers.save(c)
    (engine.containers.bundle(c.id) / "exitcode").write_text("9\n")
    later = Engine(tmp_path / "root", seams)
    later.adopt()
    state = later.containers.get("stale").state
    assert (state.status, state.exit_code, state.error) == ("exited", 9, "")
