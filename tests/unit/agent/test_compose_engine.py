"""Engine behaviours docker-compose relies on, each driven the way compose drives it (docker-py,
the real server in this process, fake kernel seams). test_compose.py runs compose itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent.engine import Engine
from labagent.server import serve

from .fakes import make_seams

docker = pytest.importorskip("docker")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    engine = Engine(tmp_path / "root", make_seams(tmp_path / "seams"))
    engine.startup()
    sock = tmp_path / "run" / "engine.sock"
    server = serve(sock, engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = docker.APIClient(base_url=f"unix://{sock}", timeout=15)
    yield api
    for c in api.containers(all=True):
        api.remove_container(c["Id"], force=True)
    api.close()
    server.shutdown()
    server.server_close()


def test_a_connect_that_names_the_short_id_lists_it_once(client: Any) -> None:
    """compose connects a container's further networks with aliases [service, short id]; it
    checks the short id is there and Docker adds it only when missing."""
    client.create_network("p_front")
    client.create_network("p_back")
    cid = client.create_container("busybox", ["sleep", "30"], name="p_web_1",
                                  host_config=client.create_host_config(network_mode="p_back"),
                                  networking_config=client.create_networking_config(
                                      {"p_back": client.create_endpoint_config(aliases=["web"])}))["Id"]
    client.connect_container_to_network(cid, "p_front", aliases=["web", cid[:12], "www"])
    networks = client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert networks["p_front"]["Aliases"] == ["web", cid[:12], "www"]
    assert networks["p_back"]["Aliases"] == ["web", cid[:12]]
    client.start(cid)
    networks = client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert networks["p_front"]["Aliases"].count(cid[:12]) == 1
