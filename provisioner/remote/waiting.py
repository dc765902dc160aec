"""Waiting for a booting node's sshd, through whichever Connector the use case was given."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import NodeUnreachable, RemoteError
from .seam import Connector, Endpoint, NodeShell

RETRY_SECONDS = 1.0


def _reason(error: NodeUnreachable) -> str:
    cause = error.__cause__
    return f"{type(cause).__name__}: {cause}".strip() if cause is not None else str(error)


def wait_for_ssh(
    connect: Connector, endpoint: Endpoint, timeout: float, still_booting: Callable[[], str | None]
) -> NodeShell:
    """Retry until sshd answers and accepts the lab's key.

    `still_booting` returns a reason to give up (the VM died), or None to keep waiting.
    A wrong host key (HostKeyMismatch) is never retried: that is an attack or a mix-up,
    not a slow boot.
    """
    deadline = time.monotonic() + timeout
    last: NodeUnreachable | None = None
    while time.monotonic() < deadline:
        try:
            return connect(endpoint)
        except NodeUnreachable as error:
            last = error
        problem = still_booting()
        if problem:
            raise RemoteError(f"node {endpoint.node}: {problem}") from last
        time.sleep(RETRY_SECONDS)
    reason = _reason(last) if last is not None else "no answer"
    raise RemoteError(f"node {endpoint.node}: SSH not ready after {timeout:.0f} s ({reason})") from last
