"""Claim 5: image layers are read-only and shared; each container writes only its own upper dir."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import testinfra.host

from ..plugin import Probes

ContainerHost = Callable[[str, str], testinfra.host.Host]


def graph(probes: Probes, name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(probes.run("inspect", name).stdout)[0]["GraphDriver"]["Data"]
    return data


def test_layers_are_shared_by_containers_of_one_image(probes: Probes) -> None:
    first, second = graph(probes, probes.first), graph(probes, probes.second)
    assert first["LowerDir"] == second["LowerDir"], "two busybox containers use different lower layers"
    assert first["UpperDir"] != second["UpperDir"], "two containers share an upper dir"


def test_layers_writes_land_only_in_the_containers_upper_dir(probes: Probes, container_host: ContainerHost) -> None:
    marker = f"/lab-verify-{uuid.uuid4().hex[:8]}"
    container_host(probes.node, probes.first).check_output(f"echo written > {marker}")
    first, second = graph(probes, probes.first), graph(probes, probes.second)
    node = probes.host
    assert node.run(f"sudo test -e {first['UpperDir']}{marker}").rc == 0, "the write is not in the upper dir"
    assert node.run(f"sudo test -e {second['UpperDir']}{marker}").rc != 0, "the write leaked to a sibling"
    for lower in first["LowerDir"].split(":"):
        assert node.run(f"sudo test -e {lower}{marker}").rc != 0, f"the write reached the layer {lower}"


def test_layers_upper_dir_is_gone_after_rm(probes: Probes) -> None:
    name = f"verify-{uuid.uuid4().hex[:6]}"
    assert probes.run("run", "-d", "--name", name, "busybox", "sleep", "60").rc == 0
    upper = graph(probes, name)["UpperDir"]
    assert probes.host.run(f"sudo test -d {upper}").rc == 0
    probes.run("rm", "-f", name)
    assert probes.host.run(f"sudo test -e {upper}").rc != 0, f"{upper} survived `rm`"
