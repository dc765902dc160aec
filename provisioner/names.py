"""Lab and node names: DNS labels, checked before any path or command is built from them.

A lab's name becomes a directory under the state dir and a node's name a directory under
the lab's, so a name is the one thing that must never hold '/', '..' or a leading '-'.
"""

from __future__ import annotations

import re

from .errors import BadNameError

# RFC 1123 label, lowercase only: what a hostname, a libvirt domain and a path part all accept.
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
RULE = "lowercase letters, digits and '-', 1 to 63 characters, no '-' at either end"


def is_dns_label(value: str) -> bool:
    return DNS_LABEL.fullmatch(value) is not None


def dns_label(value: str, what: str = "name") -> str:
    """VALUE itself if it is a DNS label; otherwise a one-line BadNameError naming WHAT."""
    if not isinstance(value, str) or not is_dns_label(value):
        raise BadNameError(f"{what} {value!r} is not a DNS label ({RULE})")
    return value


def lab_name(value: str) -> str:
    return dns_label(value, "lab name")


def node_name(value: str) -> str:
    return dns_label(value, "node name")
