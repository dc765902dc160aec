"""The node-side measurements (labagent.measure): run as lab runs them, print what the host parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from labagent.client import Client
from labagent.engine import Engine
from labagent.measure import api_floor, containers

AGENT = Path(__file__).resolve().parents[3] / "guest-agent"
# What provisioner/report/measure.py and bench/bench.py read from the containers measurement.
REPORTED = {"engine_median_s", "crun_median_s", "engine_back_to_back_median_s", "crun_back_to_back_median_s",
            "engine_rss_kib", "container_memory_bytes", "layers_bytes", "upper_bytes"}


def test_api_floor_runs_as_a_module_from_the_agent_dir_and_prints_one_json_line(client: Client) -> None:
    """As on a node: `env PYTHONPATH=<agent dir> python3 -m labagent.measure.api_floor`, nothing installed."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(AGENT), "LAB_AGENT_SOCKET": client.path}
    done = subprocess.run([sys.executable, "-m", "labagent.measure.api_floor"], capture_output=True, text=True,
                          env=env, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {"ping_median_s", "ping_min_s", "runs"}
    assert figures["runs"] == api_floor.RUNS and 0 < figures["ping_min_s"] <= figures["ping_median_s"] < 1


def test_engine_starts_are_timed_through_the_engines_client(client: Client, engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "CLIENT", client)
    elapsed = containers.engine_start_seconds(quiet=False)
    assert 0 < elapsed < 30
    assert engine.containers.all() == []  # created, started, removed


def test_a_running_containers_costs_come_from_inspect_and_exec(client: Client, engine: Engine,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "CLIENT", client)
    monkeypatch.setattr(containers.time, "sleep", lambda seconds: None)
    costs = containers.running_container_costs()
    assert set(costs) == {"container_memory_bytes", "layers_bytes", "upper_bytes"}
    assert costs["layers_bytes"] > 0 and all(isinstance(value, int) for value in costs.values())
    assert engine.containers.all() == []


def test_an_error_reply_ends_the_measurement_with_the_engines_message(client: Client,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "CLIENT", client)
    with pytest.raises(SystemExit, match="GET /containers/nothere/json: 404 No such container"):
        containers.api("GET", "/containers/nothere/json")


def test_the_containers_measurement_prints_every_figure_the_host_reads(client: Client, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The parts that need root and a real crun (mount namespace, bundles, systemd) stand aside."""
    monkeypatch.setattr(containers, "CLIENT", client)
    monkeypatch.setattr(containers, "private_mounts", lambda: None)
    monkeypatch.setattr(containers, "settle", lambda: None)
    monkeypatch.setattr(containers, "crun_start_seconds", lambda index, quiet=True: 0.01)
    monkeypatch.setattr(containers, "engine_rss_kib", lambda: 20480)
    monkeypatch.setattr(containers.time, "sleep", lambda seconds: None)
    containers.main(["2"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures) >= REPORTED
    assert len(figures["engine_all_s"]) == len(figures["crun_back_to_back_all_s"]) == 2
    assert figures["crun_median_s"] == 0.01 and figures["engine_rss_kib"] == 20480
