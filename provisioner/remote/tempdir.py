"""A fresh private directory on a node, for files lab uploads and then runs as root."""

from __future__ import annotations

import re
import shlex

from ..errors import RemoteError
from .seam import NodeShell

# What `mktemp -d /tmp/PREFIX.XXXXXXXXXX` prints; anything else is not used as a path.
TEMP_DIR = re.compile(r"/tmp/(?P<prefix>[a-z-]+)\.[A-Za-z0-9]{10}")


def remote_tempdir(shell: NodeShell, prefix: str) -> str:
    """A fresh private (0700) directory on the node, made by the node's own mktemp.

    Fixed names in the node's /tmp could be made in advance, or be symlinks, by any local
    user; a mktemp directory cannot, and nothing but lab's user can write in it.
    """
    result = shell.run(f"mktemp -d /tmp/{shlex.quote(prefix)}.XXXXXXXXXX")
    path = result.stdout.strip()
    match = TEMP_DIR.fullmatch(path)
    if not result.ok or match is None or match.group("prefix") != prefix:
        raise RemoteError(f"node {shell.node}: mktemp -d failed: {result.last_line()}")
    return path
