"""Host ports the engine picks: `-p 80` and compose's `ports: ["80"]` (HostPort "").

dockerd takes a free port of the node's ephemeral range at each start; so does this engine,
keeping the one it had while it stays free. The port is recorded in the binding (ephemeral=True),
so rules, list and inspect's NetworkSettings.Ports show it, and HostConfig.PortBindings shows
the empty HostPort that was asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import Conflict
from .model import PortBinding

FIRST, LAST = 32768, 60999  # Linux's default ip_local_port_range, as dockerd uses


def assign(ports: list[PortBinding], taken: set[tuple[int, str]],
           in_use: Callable[[int, str, str], bool]) -> list[PortBinding]:
    """ports with every ephemeral one on a host port no container holds and no process uses."""
    held = set(taken) | {(p.host_port, p.proto) for p in ports if not p.ephemeral}
    out = []
    for port in ports:
        if port.ephemeral:
            current = port.host_port
            if not current or (current, port.proto) in held or in_use(current, port.proto, port.host_ip):
                current = next((n for n in range(FIRST, LAST + 1) if (n, port.proto) not in held
                                and not in_use(n, port.proto, port.host_ip)), 0)
                if not current:
                    raise Conflict(f"no free host port left in {FIRST}-{LAST} for {port.key}")
            port = replace(port, host_port=current)
            held.add((current, port.proto))
        out.append(port)
    return out
