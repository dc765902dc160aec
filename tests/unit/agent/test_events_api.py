"""Container lifecycle events, GET /events (since, until, filters, a client that goes) and
container prune, through docker-py against the real server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent.api.events import matches
from labagent.api.filters import parse_filters
from labagent.api.timestamps import parse_time
from labagent.containers.model import CreateSpec
from labagent.engine import Engine
from labagent.errors import BadParameter
from labagent.events import Event

from .dockerhost import EngineProcess, docker_client, start_engine, until

docker = pytest.importorskip("docker")


# the lifecycle's events --------------------------------------------------------------------
def test_lifecycle_emits_dockers_actions_and_attributes(engine: Engine) -> None:
    c = engine.lifecycle.create("ev", CreateSpec("busybox", "", cmd=["sleep", "30"], labels={"team": "a"}))
    engine.lifecycle.start("ev")
    engine.lifecycle.kill("ev", 10)  # SIGUSR1: not a stop, sleep dies of it
    engine.lifecycle.wait(c)
    engine.lifecycle.restart("ev", 5)
    engine.lifecycle.stop("ev", 5)
    engine.lifecycle.remove("ev")
    seen = [e for e in engine.events.past(0) if e.actor_id == c.id]
    assert [e.action for e in seen] == ["create", "start", "kill", "die", "start", "restart",
                                        "kill", "die", "stop", "destroy"]
    assert all(e.attributes["name"] == "ev" and e.attributes["image"] == "busybox"
               and e.attributes["team"] == "a" for e in seen)
    assert seen[2].attributes["signal"] == "10" and seen[3].attributes["exitCode"] == str(128 + 10)
    assert seen[6].attributes["signal"] == "15"


def test_stop_signal_and_stop_timeout_are_used_by_stop(engine: Engine) -> None:
    c = engine.lifecycle.create("sig", CreateSpec("busybox", "", cmd=["sleep", "30"], stop_signal="SIGINT",
                                                  stop_timeout=7))
    engine.lifecycle.start("sig")
    engine.lifecycle.stop("sig")
    assert c.state.exit_code == 128 + 2
    kills = [e.attributes["signal"] for e in engine.events.past(0) if e.actor_id == c.id and e.action == "kill"]
    assert kills == ["2"]


# filters and times -------------------------------------------------------------------------
def event(type_: str, action: str, actor: str, **attrs: str) -> Event:
    return Event(type_, action, actor, attrs, 1)


def test_event_filters_follow_dockers_rules() -> None:
    start = event("container", "start", "abc123", name="web", image="busybox:latest", tier="front")
    health = event("container", "health_status: healthy", "abc123", name="web", image="busybox")
    tagged = event("image", "tag", "sha256:99", name="busybox:latest")

    def f(**kw: list[str]) -> object:
        return parse_filters(json.dumps(kw), ("type", "event", "container", "image", "label", "network",
                                              "volume", "daemon"))

    assert matches(f(container=["web"]), start) and matches(f(container=["abc"]), start)
    assert not matches(f(container=["web"]), tagged) and not matches(f(container=["db"]), start)
    assert matches(f(event=["health_status"]), health) and not matches(f(event=["health_status"]), start)
    assert matches(f(image=["busybox"]), start) and matches(f(image=["busybox"]), tagged)
    assert matches(f(type=["image"]), tagged) and not matches(f(type=["image"]), start)
    assert matches(f(label=["tier=front"]), start) and not matches(f(label=["tier=back"]), start)
    assert not matches(f(network=["lab"]), start)
    with pytest.raises(BadParameter, match="invalid filter 'colour'"):
        parse_filters(json.dumps({"colour": ["red"]}), ("type",))


def test_times_are_unix_seconds_rfc3339_or_durations_back_from_now() -> None:
    assert parse_time("1700000000.5", "since") == 1700000000.5
    assert parse_time("2023-11-14T22:13:20Z", "until") == 1700000000.0
    assert parse_time("1h30m", "until", now=10_000.0) == 10_000.0 - 5400
    for bad in ("yesterday", "1x", "", "9" * 80):
        with pytest.raises(BadParameter):
            parse_time(bad, "since")


# the endpoint, through docker-py -----------------------------------------------------------
@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("events"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess) -> Iterator[object]:
    yield from docker_client(eng)


def test_since_and_a_past_until_replay_and_end(sdk) -> None:
    t0 = time.time() - 1
    ctr = sdk.containers.run("busybox", ["true"], detach=True, name="replayed", labels={"k": "v"})
    ctr.wait(timeout=10)
    ctr.remove()
    t1 = time.time() + 0.001
    got = list(sdk.events(since=t0, until=t1, decode=True, filters={"container": "replayed"}))
    assert [e["Action"] for e in got] == ["create", "start", "die", "destroy"]
    assert got[2]["Actor"]["Attributes"]["exitCode"] == "0" and got[0]["status"] == "create"
    assert got[0]["id"] == ctr.id and got[0]["from"] == "busybox" and got[0]["Type"] == "container"
    labelled = list(sdk.events(since=t0, until=t1, decode=True, filters={"label": "k=v", "event": "die"}))
    assert [e["Actor"]["ID"] for e in labelled] == [ctr.id]
    assert list(sdk.events(since=t0, until=t1, decode=True, filters={"type": "network"})) == []
    upto = list(sdk.events(until=t1, decode=True, filters={"container": ctr.id[:12]}))
    assert [e["Action"] for e in upto] == ["create", "start", "die", "destroy"]


def test_live_stream_until_a_future_time(sdk) -> None:
    now = time.time()  # since now: `until` alone would replay the history before it too
    stream = sdk.events(since=now, until=now + 3, decode=True, filters={"event": ["start"]})
    ctr = sdk.containers.run("busybox", ["true"], detach=True, name="live")
    got = [e for e in stream]  # ends by itself once `until` is reached
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in got] == [("start", "live")]
    ctr.remove(force=True)


def test_the_stream_ends_when_the_client_goes(eng: EngineProcess) -> None:
    before = eng.threads()
    for _ in range(3):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(eng.socket))
        conn.sendall(b"GET /v1.43/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        conn.close()
    assert until(lambda: eng.threads() <= before, timeout=10)


def test_bad_filters_and_times_are_400s(sdk) -> None:
    url = sdk.api._url("/events")
    for params in ({"filters": json.dumps({"colour": ["red"]})}, {"since": "soon"}, {"until": "later"}):
        response = sdk.api._get(url, params=params)
        assert response.status_code == 400 and "message" in response.json()


# prune ------------------------------------------------------------------------------------
def test_prune_removes_stopped_containers_matching_its_filters(sdk) -> None:
    running = sdk.containers.run("busybox", ["sleep", "30"], detach=True, labels={"p": "1"})
    done = sdk.containers.run("busybox", ["true"], detach=True, labels={"p": "1"})
    other = sdk.containers.run("busybox", ["true"], detach=True, labels={"p": "2"})
    kept = sdk.containers.create("busybox", ["true"], labels={"p": "1", "keep": "yes"})
    for c in (done, other):
        c.wait(timeout=10)
    result = sdk.containers.prune(filters={"label": ["p=1"], "label!": ["keep"]})
    assert result["ContainersDeleted"] == [done.id]
    assert isinstance(result["SpaceReclaimed"], int)
    left = {c.id for c in sdk.containers.list(all=True)}
    assert left == {running.id, other.id, kept.id}
    assert sdk.containers.prune(filters={"until": "1h"})["ContainersDeleted"] is None
    assert other.id in sdk.containers.prune()["ContainersDeleted"]
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.prune(filters={"status": "exited"})
    assert err.value.status_code == 400


# system df --------------------------------------------------------------------------------
def test_system_df_measures_layers_images_and_writable_layers(sdk) -> None:
    sdk.volumes.create("dfvol")
    ctr = sdk.containers.run("busybox", ["true"], detach=True, volumes={"dfvol": {"bind": "/data"}})
    ctr.wait(timeout=10)
    upper = Path(sdk.api.inspect_container(ctr.id)["GraphDriver"]["Data"]["UpperDir"])
    (upper / "big").write_bytes(b"\0" * 20000)  # as if the container wrote it (fakecrun has no rootfs)
    df = sdk.df()
    assert set(df) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    assert df["BuildCache"] == [] and df["LayersSize"] > 0
    assert [(v["Name"], v["UsageData"]["RefCount"]) for v in df["Volumes"]] == [("dfvol", 1)]
    busybox = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
    assert busybox["Containers"] == 1 and busybox["SharedSize"] == 0
    assert busybox["Size"] == df["LayersSize"]  # the one image holds every layer
    mine = next(c for c in df["Containers"] if c["Id"] == ctr.id)
    assert mine["SizeRw"] >= 20000 and mine["SizeRootFs"] >= mine["SizeRw"] + df["LayersSize"]
    only = sdk.api._result(sdk.api._get(sdk.api._url("/system/df"), params={"type": "image"}), True)
    assert not only.get("Containers") and only["Images"]
    assert sdk.api._get(sdk.api._url("/system/df"), params={"type": "cats"}).status_code == 400
    ctr.remove()
    sdk.volumes.get("dfvol").remove()
