"""The create body's terminal and stdin fields: Tty, OpenStdin, StdinOnce, AttachStdin, ConsoleSize.

`docker run -t` asks for a pty (Tty), `-i` for a stdin the container keeps open (OpenStdin) that
closes once the first attached client ends its input (StdinOnce, set by the CLI and docker-py for
a foreground run). HostConfig.ConsoleSize is the terminal's first [height, width], applied by
crun before the process starts. Each must be what Go would decode; anything else is a 400.
"""

from __future__ import annotations

from typing import Any

from ..containers.model import CreateSpec
from ..errors import BadParameter
from .createfields import boolean

MAX_SIZE = 65535  # struct winsize holds unsigned shorts


def console_size(value: Any) -> list[int]:
    """[height, width], or [] when not given ([0, 0] is Docker's "not given")."""
    if value is None:
        return []
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_SIZE for n in value)):
        raise BadParameter(f"HostConfig.ConsoleSize must be [height, width], each 0-{MAX_SIZE}")
    return [] if value == [0, 0] else [int(value[0]), int(value[1])]


def read_into(spec: CreateSpec, body: dict[str, Any], host: dict[str, Any]) -> None:
    spec.tty = boolean(body.get("Tty"), "Tty")
    spec.open_stdin = boolean(body.get("OpenStdin"), "OpenStdin")
    spec.stdin_once = boolean(body.get("StdinOnce"), "StdinOnce")
    spec.attach_stdin = boolean(body.get("AttachStdin"), "AttachStdin")
    spec.console_size = console_size(host.get("ConsoleSize"))
