"""What the host and the guest agent agree on: where the agent lives and what it serves.

The host imports this module as `labagent.contract` (the wheel ships labagent as a package);
the guest has it in the agent's own tree. Standard library only, and nothing of the agent
imported, so the host loads no engine code with it. A path or name both sides use is written
here and nowhere else (tests/unit/test_contract.py greps the tree for the paths below).
"""

from __future__ import annotations

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

