"""What the host and the guest agent agree on: where the agent lives, what it serves, what it is sent.

The host imports this module as `labagent.contract` (the wheel ships labagent as a package);
the guest has it in the agent's own tree. Standard library only, and nothing of the agent
imported, so the host loads no engine code with it. A path or name both sides use is written
here and nowhere else (tests/unit/test_contract.py greps the tree for the paths below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The Docker Engine API version the engine serves (its newest) and the host speaks.
API_VERSION = "1.43"

# Where lab deploys the agent on a node: the package is run as PYTHONPATH=AGENT_DIR.
AGENT_DIR = "/opt/lab-agent"
# The engine's systemd unit, written by the host's install script.
UNIT = "lab-agent.service"

# Runtime state (tmpfs): the API socket, crun's state, the pinned mount namespace.
RUN_DIR = "/run/lab-agent"
SOCKET = f"{RUN_DIR}/engine.sock"
CRUN_ROOT = f"{RUN_DIR}/crun"
MOUNT_NS_PIN = f"{RUN_DIR}/ns/mnt"
# Another socket for labctl, the docker shim and the engine's client (tests, a second engine).
SOCKET_ENV = "LAB_AGENT_SOCKET"

# Persistent state: images, layers and containers.
STATE_ROOT = "/var/lib/lab-agent"
LAYERS_DIR = f"{STATE_ROOT}/layers"


@dataclass(frozen=True)
class ContainerSpec:
    """A container the lab file declares on a node, as the host keeps it and sends it.

    The host validates the lab file's values (provisioner.labfile), keeps this in the lab's
    ledger, and sends it to the node's engine as a Docker create body
    (provisioner.createbody). Empty and None mean "as the image or the engine has it".
    """

    image: str
    command: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)  # [IP:]HOST:CONTAINER[/tcp|udp]
    env: dict[str, str] = field(default_factory=dict)
    memory: str | None = None  # a Docker size string: 64M, 1g, 512MiB
    cpus: float | None = None
    pids_limit: int | None = None  # -1: unlimited
