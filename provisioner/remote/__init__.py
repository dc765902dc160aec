"""Running commands on a node: the seam (`seam`), its SSH implementation (`ssh`) and helpers.

Use cases see only `NodeShell`, `CommandResult` and a `Connector`; `ssh` is wired in by the
CLI (provisioner.seams) and unit tests pass fakes instead.
"""

from .seam import Channel, CommandResult, Connector, Endpoint, NodeShell

__all__ = ["Channel", "CommandResult", "Connector", "Endpoint", "NodeShell"]
