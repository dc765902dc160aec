"""A lab file's container as the engine's POST /containers/create body.

The one place the lab file's container fields meet Docker's: a new field of the lab file
(provisioner.labfile, labagent.contract.ContainerSpec) is mapped here, and the engine reads it
as it reads any client's body (labagent.api.createbody). Values were checked with the lab file.
"""

from __future__ import annotations

from typing import Any

from labagent.contract import ContainerSpec

from .specvalues import container_memory_bytes, parse_publish


def create_body(spec: ContainerSpec) -> dict[str, Any]:
    """The create body, as `docker run -d` would send it for the same options.

    An empty command leaves the image's own; a value that does not parse (an edited ledger)
    raises ValueError.
    """
    bindings: dict[str, list[dict[str, str]]] = {}
    for text in spec.publish:
        publication = parse_publish(text)
        key = f"{publication.container_port}/{publication.proto}"
        bindings.setdefault(key, []).append({"HostIp": publication.host_ip, "HostPort": str(publication.host_port)})
    host: dict[str, Any] = {"PortBindings": bindings, "AutoRemove": False}
    if spec.memory is not None:
        host["Memory"] = container_memory_bytes(spec.memory)
    if spec.cpus is not None:
        host["NanoCpus"] = round(spec.cpus * 1e9)
    if spec.pids_limit is not None:
        host["PidsLimit"] = spec.pids_limit
    return {
        "Image": spec.image,
        "Cmd": list(spec.command) or None,
        "Env": [f"{name}={value}" for name, value in spec.env.items()],
        "ExposedPorts": {key: {} for key in bindings},
        "HostConfig": host,
    }
