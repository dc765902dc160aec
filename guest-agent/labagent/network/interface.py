"""What the engine asks of the node's network, declared: network.bridge.Network is the real one.

The netns pool is a part of it a network may lack (the unit tests' fakes mostly do):
slot_wiring() hands it over, or says there is none, and every start wires its own netns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .nftrules import PortRule


class SlotWiring(Protocol):
    """The network's side of the pool (pool.NetnsPool): build and destroy slots, claim one."""

    def build_slot(self, name: str, veth: str, ip: str) -> str:
        """A named netns wired as attach() wires one, its veth on the bridge; -> its MAC."""
        ...

    def destroy_slot(self, name: str, veth: str) -> None: ...

    def claim(self, slot: str, cid: str) -> None:
        """Give a ready slot the container's netns name, which its config.json points at."""
        ...

    def sweep_pool(self) -> None:
        """Remove the slots a previous engine left behind."""
        ...


class ContainerNetwork(Protocol):
    """The bridge, a netns per container, published ports."""

    gateway: str
    prefix: int

    def setup(self) -> None: ...
    def netns_path(self, cid: str) -> str: ...
    def attach(self, cid: str, ip: str) -> str: ...
    def detach(self, cid: str, veth: str = "") -> None: ...
    def publish(self, rules: list[PortRule]) -> None: ...
    def port_in_use(self, port: int, proto: str, host_ip: str = "") -> bool: ...
    def slot_wiring(self) -> SlotWiring | None: ...
