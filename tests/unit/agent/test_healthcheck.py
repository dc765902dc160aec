"""Healthchecks: parsing and merging, the status rules, then probes run by the engine and seen
through docker-py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from labagent.api.createbody import spec_from_body
from labagent.containers import health
from labagent.containers.health import Check, Result
from labagent.containers.model import Container, ContainerState, CreateSpec, Healthcheck
from labagent.engine import Engine
from labagent.errors import BadParameter

from .dockerhost import EngineProcess, start_engine, until

docker = pytest.importorskip("docker")
MS = 1_000_000
WAIT = 20.0


# parsing and merging -----------------------------------------------------------------------
def test_the_body_healthcheck_is_read_with_dockers_defaults_left_at_zero() -> None:
    spec = spec_from_body({"Image": "busybox", "Healthcheck": {"Test": ["CMD-SHELL", "echo hi"],
                                                               "Interval": 2 * MS, "Retries": 4}})
    assert spec.healthcheck == Healthcheck(["CMD-SHELL", "echo hi"], 2 * MS, 0, 0, 4)
    check = health.to_check(spec.healthcheck)
    assert check == Check(["/bin/sh", "-c", "echo hi"], 0.002, 30.0, 0.0, 4)
    assert health.to_check(Healthcheck(["NONE"])) is None


@pytest.mark.parametrize("value, words", [
    ({"Test": ["PROBE", "x"]}, "Healthcheck.Test"),
    ({"Test": ["CMD-SHELL", "a", "b"]}, "Healthcheck.Test"),
    ({"Test": "true"}, "Healthcheck.Test"),
    ({"Test": ["CMD", "true"], "Timeout": 999}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "true"], "Retries": -2}, "Retries in Healthcheck cannot be negative"),
    ({"Test": ["CMD", "true"], "StartInterval": 5 * MS}, "Healthcheck.StartInterval"),
    ({"Test": ["CMD", "true"], "Interval": "1s"}, "Healthcheck.Interval"),
])
def test_bad_healthchecks_are_400s(value: object, words: str) -> None:
    with pytest.raises(BadParameter, match=words):
        spec_from_body({"Image": "busybox", "Healthcheck": value})


def test_the_containers_settings_override_the_images_field_by_field() -> None:
    image = health.from_image({"config": {"Healthcheck": {"Test": ["CMD", "check"], "Interval": 5 * MS,
                                                          "Retries": 7}}})
    assert image == Healthcheck(["CMD", "check"], 5 * MS, 0, 0, 7)
    own = Healthcheck([], 9 * MS, 0, 0, 0)
    assert health.effective(own, image) == Healthcheck(["CMD", "check"], 9 * MS, 0, 0, 7)
    assert health.effective(None, image) == image
    assert health.to_check(health.effective(Healthcheck(["NONE"]), image)) is None
    assert health.effective(own, None) is None
    assert health.from_image({"config": {"Healthcheck": {"Test": ["BOGUS"]}}}) is None


# the status rules --------------------------------------------------------------------------
def result(code: int) -> Result:
    return Result("s", "e", code, f"exit {code}")


def test_status_streak_and_log_follow_dockers_rules() -> None:
    check = Check(["x"], 1, 1, start_period=10, retries=2)
    st = ContainerState(health="starting")
    assert not health.record(st, result(1), check, since_start=1)  # in the start period: not counted
    assert (st.health, st.failing_streak) == ("starting", 0)
    assert health.record(st, result(0), check, since_start=2)
    assert (st.health, st.failing_streak) == ("healthy", 0)
    assert not health.record(st, result(1), check, since_start=3)  # healthy now: it counts
    assert health.record(st, result(1), check, since_start=4)
    assert (st.health, st.failing_streak) == ("unhealthy", 2)
    for _ in range(6):
        health.record(st, result(3), check, since_start=5)
    assert len(st.health_log) == health.MAX_LOG and st.health_log[-1]["ExitCode"] == 3
    assert set(st.health_log[0]) == {"Start", "End", "ExitCode", "Output"}


# probes run by the engine ------------------------------------------------------------------
def settle(engine: Engine, check: Callable[[], bool], timeout: float = WAIT) -> bool:
    with engine.containers.changed:
        return engine.containers.changed.wait_for(check, timeout)


def checked(engine: Engine, name: str, test: list[str], **kw: int) -> Container:
    hc = Healthcheck(test, kw.get("interval", 50 * MS), kw.get("timeout", 2000 * MS), 0, kw.get("retries", 2))
    c = engine.lifecycle.create(name, CreateSpec("busybox", "", cmd=["sleep", "30"], healthcheck=hc))
    engine.lifecycle.start(name)
    return c


def test_a_passing_probe_makes_it_healthy_with_an_event(engine: Engine) -> None:
    c = checked(engine, "ok", ["CMD-SHELL", "echo fine; exit 0"])
    assert c.state.health == "starting"
    assert settle(engine, lambda: c.state.health == "healthy")
    assert c.state.health_log[0]["Output"] == "fine\n" and c.state.health_log[0]["ExitCode"] == 0
    events = [e for e in engine.events.past(0) if e.actor_id == c.id and e.action.startswith("health")]
    assert events[0].action == "health_status: healthy" and events[0].attributes["name"] == "ok"
    assert not engine.execs._sessions  # the probes' exec sessions are not kept
    engine.lifecycle.remove("ok", force=True)


def test_a_failing_probe_makes_it_unhealthy_after_its_retries(engine: Engine) -> None:
    c = checked(engine, "bad", ["CMD", "sh", "-c", "exit 4"], retries=3)
    assert settle(engine, lambda: c.state.health == "unhealthy")
    assert c.state.failing_streak == 3 and [e["ExitCode"] for e in c.state.health_log] == [4, 4, 4]
    engine.lifecycle.stop("bad", 5)
    assert c.state.status == "exited"
    engine.lifecycle.remove("bad", force=True)


def test_a_probe_that_outlives_its_timeout_is_killed(engine: Engine) -> None:
    c = checked(engine, "slow", ["CMD", "sleep", "20"], timeout=200 * MS, retries=1)
    assert settle(engine, lambda: c.state.health == "unhealthy")
    entry = c.state.health_log[0]
    assert entry["ExitCode"] == -1 and "exceeded timeout" in entry["Output"], c.state.health_log
    engine.lifecycle.remove("slow", force=True)


def test_a_readopted_container_is_probed_again(tmp_path, seams) -> None:
    first = Engine(tmp_path / "root", seams)
    first.startup()
    hc = Healthcheck(["CMD", "true"], 50 * MS, 2000 * MS, 0, 1)
    c = first.lifecycle.create("kept", CreateSpec("busybox", "", cmd=["sleep", "30"], healthcheck=hc))
    first.lifecycle.start("kept")
    first.shutdown()  # the engine goes; the container and its record stay
    c.state.health, c.state.health_log = "starting", []
    first.containers.save(c)
    second = Engine(tmp_path / "root", seams)
    second.adopt()
    again = second.containers.get("kept")
    assert settle(second, lambda: again.state.health == "healthy")
    second.lifecycle.remove("kept", force=True)


# docker-py against the real server ---------------------------------------------------------
@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("health"))
    yield engine
    engine.stop()


def test_docker_py_health_in_inspect_and_list(eng: EngineProcess) -> None:
    sdk = docker.DockerClient(base_url=eng.host, timeout=15)
    good = sdk.containers.run("busybox", ["sleep", "30"], detach=True,
                              healthcheck={"test": "true", "interval": 100 * MS, "retries": 1})
    bad = sdk.containers.run("busybox", ["sleep", "30"], detach=True,
                             healthcheck={"test": ["CMD", "false"], "interval": 100 * MS, "retries": 1})
    assert until(lambda: sdk.api.inspect_container(good.id)["State"]["Health"]["Status"] == "healthy", WAIT)
    assert until(lambda: sdk.api.inspect_container(bad.id)["State"]["Health"]["Status"] == "unhealthy", WAIT)
    attrs = sdk.api.inspect_container(good.id)
    assert attrs["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert attrs["State"]["Health"]["FailingStreak"] == 0
    statuses = {c["Id"]: c["Status"] for c in sdk.api.containers()}
    assert statuses[good.id].endswith("(healthy)") and statuses[bad.id].endswith("(unhealthy)")
    plain = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    assert "Health" not in sdk.api.inspect_container(plain.id)["State"]
    for c in sdk.containers.list(all=True):
        c.remove(force=True)
    sdk.close()
