"""The node-side measurements are part of the deployed agent: lab runs them from there, as root."""

from __future__ import annotations

import io
import tarfile

from labagent import contract

from provisioner import agent
from provisioner.report.measure import guest_measure_argv


def test_a_measurement_runs_as_a_module_of_the_deployed_agent() -> None:
    assert guest_measure_argv("containers", "5") == [
        "sudo", "-n", "env", f"PYTHONPATH={contract.AGENT_DIR}", "python3", "-m", "labagent.measure.containers", "5",
    ]


def test_the_agent_archive_carries_the_measurements_and_the_seccomp_profile() -> None:
    data, _version = agent.agent_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = set(archive.getnames())
    assert {"labagent/measure/__init__.py", "labagent/measure/containers.py", "labagent/measure/api_floor.py",
            "labagent/containers/seccomp.json", "labagent/network/pool.py"} <= names
