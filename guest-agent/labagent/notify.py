"""sd_notify(3) on a stdlib socket: tell systemd (Type=notify) that the API is serving.

Then `systemctl start lab-agent` returns only once the socket answers, and nobody has to
poll it. NOTIFY_SOCKET leaves the environment as soon as the engine starts: crun, started
by the shims, would otherwise take it for the container's own notify socket and wait on it.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify_address(value: str) -> str:
    """`@name` is Linux's abstract namespace, spelled with a leading NUL on the wire."""
    return "\0" + value[1:] if value.startswith("@") else value


class Notifier:
    def __init__(self, target: str) -> None:
        self.target = target

    @classmethod
    def from_environ(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Notifier:
        """Take NOTIFY_SOCKET out of the environment (so no child inherits it) and keep it."""
        env = os.environ if environ is None else environ
        return cls(env.pop("NOTIFY_SOCKET", ""))

    def send(self, state: str) -> bool:
        """One state line (READY=1, STOPPING=1...); False when systemd is not listening."""
        if not self.target:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), notify_address(self.target))
        except OSError as exc:
            log.warning("cannot notify systemd on %s: %s", self.target, exc)
            return False
        return True
