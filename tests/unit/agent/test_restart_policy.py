"""Restart policies: the decisions and back-off on their own, then the engine's lifecycle with them,
through an engine restart, and through docker-py against the real server."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator

import pytest
from labagent.api.createbody import spec_from_body
from labagent.containers import restart
from labagent.containers.model import Container, ContainerState, CreateSpec, RestartPolicy
from labagent.engine import Engine
from labagent.errors import BadParameter, Conflict

from .dockerhost import EngineProcess, start_engine, until

docker = pytest.importorskip("docker")
WAIT = 20.0


# the decisions -----------------------------------------------------------------------------
def state(**kw: object) -> ContainerState:
    return ContainerState(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy, st, expected", [
    (RestartPolicy("no"), state(exit_code=1), False),
    (RestartPolicy("on-failure"), state(exit_code=1), True),
    (RestartPolicy("on-failure"), state(exit_code=0), False),
    (RestartPolicy("on-failure", 2), state(exit_code=1, restart_count=1), True),
    (RestartPolicy("on-failure", 2), state(exit_code=1, restart_count=2), False),
    (RestartPolicy("on-failure", 0), state(exit_code=1, restart_count=500), True),
    (RestartPolicy("always"), state(exit_code=0), True),
    (RestartPolicy("unless-stopped"), state(exit_code=0), True),
    (RestartPolicy("always"), state(exit_code=137, stopped_by_user=True), False),
    (RestartPolicy("unless-stopped"), state(exit_code=143, stopped_by_user=True), False),
    (RestartPolicy("on-failure"), state(exit_code=137, stopped_by_user=True), False),
])
def test_restart_after_exit(policy: RestartPolicy, st: ContainerState, expected: bool) -> None:
    assert restart.restart_after_exit(policy, st) is expected


@pytest.mark.parametrize("policy, st, expected", [
    (RestartPolicy("always"), state(status="exited", stopped_by_user=True), True),
    (RestartPolicy("unless-stopped"), state(status="exited", stopped_by_user=True), False),
    (RestartPolicy("unless-stopped"), state(status="exited"), True),
    (RestartPolicy("on-failure"), state(status="exited", exit_code=1), False),
    (RestartPolicy("on-failure"), state(status="restarting", restarting=True, exit_code=1), True),
    (RestartPolicy("no"), state(status="exited"), False),
])
def test_start_at_startup(policy: RestartPolicy, st: ContainerState, expected: bool) -> None:
    assert restart.start_at_startup(policy, st) is expected


def test_back_off_doubles_to_a_minute_and_resets_after_ten_seconds() -> None:
    delays, delay = [], 0.0
    for _ in range(12):
        delay = restart.next_delay(delay, ran_for=0.5)
        delays.append(delay)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == restart.MAX_DELAY and max(delays) == restart.MAX_DELAY
    assert restart.next_delay(12.8, ran_for=10.0) == restart.BASE_DELAY


def test_restarts_grow_the_back_off_per_container_and_a_user_start_resets_it(monkeypatch) -> None:
    monkeypatch.setattr(restart, "BASE_DELAY", 100.0)  # timers that never fire during the test
    monkeypatch.setattr(restart, "MAX_DELAY", 1000.0)
    fired: list[str] = []
    timers = restart.Restarts(fired.append)
    assert [timers.schedule("a", 1.0) for _ in range(3)] == [100.0, 200.0, 400.0]
    assert timers.schedule("b", 1.0) == 100.0  # each container has its own
    assert timers.schedule("a", 30.0) == 100.0  # it ran long enough: from the start again
    timers.schedule("a", 1.0)
    timers.reset("a")
    assert timers.schedule("a", 1.0) == 100.0
    assert timers.cancel("a") and not timers.cancel("a")
    timers.close()
    assert not timers.cancel("b") and fired == []
    monkeypatch.setattr(restart, "BASE_DELAY", 0.01)
    timers.schedule("held", 1.0, armed=False)
    assert timers.cancel("held")  # cancelled before it was armed: it never fires
    timers.arm("held")
    timers.schedule("c", 1.0, armed=False)
    timers.arm("c")
    assert until(lambda: fired == ["c"], 5)


@pytest.mark.parametrize("value, words", [
    ({"Name": "sometimes"}, "unknown policy 'sometimes'"),
    ({"Name": "always", "MaximumRetryCount": 2}, "only be used with 'on-failure'"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "cannot be negative"),
    ({"Name": "on-failure", "MaximumRetryCount": "3"}, "must be an integer"),
    ({"Name": "always", "Delay": 5}, "RestartPolicy.Delay"),
])
def test_bad_policies_are_400s(value: object, words: str) -> None:
    with pytest.raises(BadParameter, match=words):
        restart.parse_policy(value)


def test_policy_is_read_from_the_body_and_auto_remove_conflicts() -> None:
    spec = spec_from_body({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "on-failure",
                                                                                "MaximumRetryCount": 3}}})
    assert spec.restart == RestartPolicy("on-failure", 3)
    with pytest.raises(BadParameter, match="AutoRemove"):
        spec_from_body({"Image": "busybox", "HostConfig": {"AutoRemove": True,
                                                           "RestartPolicy": {"Name": "always"}}})


# the lifecycle -----------------------------------------------------------------------------
def settle(engine: Engine, c: Container, check: Callable[[], bool], timeout: float = WAIT) -> bool:
    with engine.containers.changed:
        return engine.containers.changed.wait_for(check, timeout)


def make(engine: Engine, name: str, script: str, policy: RestartPolicy) -> Container:
    return engine.lifecycle.create(name, CreateSpec("busybox", "", cmd=["sh", "-c", script], restart=policy))


def test_on_failure_restarts_up_to_its_count_then_stays_exited(engine: Engine) -> None:
    c = make(engine, "flaky", "echo ran; exit 3", RestartPolicy("on-failure", 2))
    engine.lifecycle.start("flaky")
    assert settle(engine, c, lambda: c.state.exits == 3 and c.state.status == "exited")
    assert (c.state.restart_count, c.state.exit_code, c.state.restarting) == (2, 3, False)
    entries, _ = engine.containers.logfile(c.id).read()
    assert b"".join(e.data for e in entries) == b"ran\n" * 3
    actions = [e.action for e in engine.events.past(0) if e.actor_id == c.id]
    assert actions == ["create", "start", "die", "start", "die", "start", "die"]


def test_on_failure_leaves_a_clean_exit_alone(engine: Engine) -> None:
    c = make(engine, "fine", "exit 0", RestartPolicy("on-failure"))
    engine.lifecycle.start("fine")
    done = engine.lifecycle.wait(c)
    assert done.state.status == "exited" and done.state.restart_count == 0
    assert not engine.lifecycle.restarts.cancel(c.id)  # nothing pending


def test_always_restarts_a_clean_exit_until_the_user_stops_it(engine: Engine) -> None:
    c = make(engine, "loop", "sleep 0.2", RestartPolicy("always"))
    engine.lifecycle.start("loop")
    assert settle(engine, c, lambda: c.state.restart_count >= 2 and c.running)
    engine.lifecycle.stop("loop", 5)
    assert settle(engine, c, lambda: c.state.status == "exited")
    count, exits = c.state.restart_count, c.state.exits
    assert c.state.stopped_by_user and not engine.lifecycle.restarts.cancel(c.id)
    assert c.state.exits == exits and c.state.restart_count == count
    engine.lifecycle.start("loop")  # a user's start counts afresh
    assert c.state.restart_count == 0 and not c.state.stopped_by_user
    engine.lifecycle.kill("loop")
    assert settle(engine, c, lambda: c.state.status == "exited")
    assert not engine.lifecycle.restarts.cancel(c.id)


def test_stop_kill_and_remove_during_the_back_off(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restart, "BASE_DELAY", 60.0)  # the first restart waits a minute
    c = make(engine, "waits", "exit 1", RestartPolicy("unless-stopped"))
    engine.lifecycle.start("waits")
    assert settle(engine, c, lambda: c.state.status == "restarting")
    assert c.state.restarting and c.state.restart_count == 1
    with pytest.raises(Conflict, match="restarting"):
        engine.lifecycle.remove("waits")
    engine.lifecycle.stop("waits")
    assert c.state.status == "exited" and c.state.stopped_by_user
    assert not engine.lifecycle.restarts.cancel(c.id)
    assert [e.action for e in engine.events.past(0) if e.actor_id == c.id][-1] == "stop"
    engine.lifecycle.start("waits")
    assert settle(engine, c, lambda: c.state.status == "restarting")
    engine.lifecycle.kill("waits")
    assert c.state.status == "exited" and not engine.lifecycle.restarts.cancel(c.id)
    engine.lifecycle.start("waits")
    assert settle(engine, c, lambda: c.state.status == "restarting")
    engine.lifecycle.remove("waits", force=True)
    assert not engine.containers.exists(c.id) and not engine.lifecycle.restarts.cancel(c.id)


def test_wait_returns_at_each_exit_even_when_the_policy_restarts(engine: Engine) -> None:
    c = make(engine, "again", "sleep 0.3", RestartPolicy("always"))
    engine.lifecycle.start("again")
    done = engine.lifecycle.wait(c)
    assert done.state.exits >= 1
    engine.lifecycle.remove("again", force=True)


# an engine restart -------------------------------------------------------------------------
def pretend_node_rebooted(engine: Engine, c: Container) -> None:
    """The record says running but its shim is gone, with no exit code: a node that lost power."""
    c.state.status, c.state.shim_pid, c.state.shim_start = "running", 999_999_999, 1
    engine.containers.save(c)


def test_policies_survive_an_engine_restart(tmp_path, seams) -> None:
    first = Engine(tmp_path / "root", seams)
    first.startup()
    kinds = {"always-stopped": "always", "unless-stopped-stopped": "unless-stopped",
             "unless-stopped-rebooted": "unless-stopped", "on-failure-rebooted": "on-failure",
             "no-rebooted": "no", "always-never-started": "always", "on-failure-waiting": "on-failure"}
    made = {name: make(first, name, "sleep 30", RestartPolicy(policy)) for name, policy in kinds.items()}
    for name in ("always-stopped", "unless-stopped-stopped"):
        first.lifecycle.start(name)
        first.lifecycle.stop(name, 5)
    for name in ("unless-stopped-rebooted", "on-failure-rebooted", "no-rebooted"):
        pretend_node_rebooted(first, made[name])
    waiting = made["on-failure-waiting"]  # the engine went away during its back-off
    waiting.state.status, waiting.state.restarting, waiting.state.exit_code = "restarting", True, 1
    first.containers.save(waiting)
    second = Engine(tmp_path / "root", seams)
    second.startup()
    get = second.containers.get

    def settled() -> bool:
        return all(get(n).running and get(n).state.pid
                   for n in ("always-stopped", "unless-stopped-rebooted", "on-failure-rebooted",
                             "on-failure-waiting"))

    assert until(settled, WAIT, 0.05)  # polled: the pid is recorded without a notification
    assert get("unless-stopped-stopped").state.status == "exited"
    assert get("no-rebooted").state.status == "exited"
    assert get("always-never-started").state.status == "created"
    assert get("on-failure-rebooted").state.restart_count == 1  # after the lost exit (255)
    for c in second.containers.all():
        second.lifecycle.remove(c.id, force=True)


# docker-py against the real server ---------------------------------------------------------
@pytest.fixture
def eng(tmp_path) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path / "engine")
    yield engine
    engine.stop()


def test_docker_py_restart_policy_inspect_and_remove(eng: EngineProcess) -> None:
    sdk = docker.DockerClient(base_url=eng.host, timeout=15)
    ctr = sdk.containers.run("busybox", ["sh", "-c", "exit 2"], detach=True,
                             restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    assert until(lambda: ctr.reload() or (ctr.attrs["RestartCount"] == 2 and ctr.status == "exited"), WAIT)
    assert ctr.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert ctr.attrs["State"]["ExitCode"] == 2 and ctr.attrs["State"]["Restarting"] is False
    always = sdk.containers.run("busybox", ["sleep", "0.5"], detach=True, restart_policy={"Name": "always"})
    assert always.wait(timeout=10)["StatusCode"] == 0
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_container(always.id)
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.run("busybox", ["true"], detach=True, auto_remove=True, restart_policy={"Name": "always"})
    assert err.value.status_code == 400 and "AutoRemove" in str(err.value.explanation)
    always.remove(force=True)
    sdk.close()


def answers(engine: EngineProcess) -> bool:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(engine.socket))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def test_docker_py_lists_a_container_waiting_to_restart(eng: EngineProcess) -> None:
    sdk = docker.DockerClient(base_url=eng.host, timeout=15)
    ctr = sdk.containers.run("busybox", ["sh", "-c", "exit 1"], detach=True, restart_policy={"Name": "always"})
    seen: dict[str, str] = {}

    def restarting() -> bool:
        seen.update({c["Id"]: c["Status"] for c in sdk.api.containers()})
        return seen.get(ctr.id, "").startswith("Restarting (1)")

    assert until(restarting, WAIT, 0.02)  # the back-off doubles each time: it soon waits long enough
    assert [c["Id"] for c in sdk.api.containers(filters={"status": "restarting"})] == [ctr.id]
    ctr.stop()
    assert ctr.id not in [c["Id"] for c in sdk.api.containers()]
    ctr.remove()
    sdk.close()


def test_docker_py_always_container_comes_back_after_a_reboot(eng: EngineProcess, tmp_path) -> None:
    sdk = docker.DockerClient(base_url=eng.host, timeout=15)
    back = sdk.containers.run("busybox", ["sleep", "60"], detach=True, name="back",
                              restart_policy={"Name": "always"})
    held = sdk.containers.run("busybox", ["sleep", "60"], detach=True, name="held",
                              restart_policy={"Name": "unless-stopped"})
    held.stop(timeout=5)
    back.reload()
    pid = back.attrs["State"]["Pid"]
    sdk.close()
    eng.stop()
    os.kill(pid, signal.SIGKILL)  # the node went down with the engine away
    eng.socket.unlink(missing_ok=True)  # so that start_engine waits for the new engine's socket
    again = start_engine(eng.base)
    try:
        assert until(lambda: answers(again), 10)  # the socket exists a moment before it listens
        sdk = docker.DockerClient(base_url=again.host, timeout=15)
        ctr = sdk.containers.get("back")
        assert until(lambda: ctr.reload() or (ctr.status == "running" and ctr.attrs["State"]["Pid"] != pid), WAIT)
        assert sdk.containers.get("held").status == "exited"
        for c in sdk.containers.list(all=True):
            c.remove(force=True)
        sdk.close()
    finally:
        again.stop()


# hostile numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("body, words", [
    ({"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 10**30}}}, "MaximumRetryCount"),
    ({"StopTimeout": 10**30}, "StopTimeout"), ({"StopTimeout": -5}, "StopTimeout"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10**30}}, "Healthcheck.Interval"),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Retries": 10**30}}, "Healthcheck.Retries"),
])
def test_numbers_beyond_int64_are_400s(body: dict[str, object], words: str) -> None:
    with pytest.raises(BadParameter, match=words):
        spec_from_body({"Image": "busybox", **body})


def test_a_huge_stop_timeout_still_stops(engine: Engine) -> None:
    from labagent.containers import health
    from labagent.containers.model import Healthcheck

    assert health.to_check(Healthcheck(["CMD", "true"], (1 << 63) - 1)).interval <= 9_223_372_036.0
    c = engine.lifecycle.create("huge", CreateSpec("busybox", "", cmd=["sleep", "30"]))
    engine.lifecycle.start("huge")
    engine.lifecycle.stop("huge", float(10**30))  # `t` as large as a client likes: SIGTERM ends it
    assert c.state.status == "exited" and c.state.exit_code == 143
