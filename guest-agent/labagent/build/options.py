"""What one build was asked for beyond its Containerfile: the query of POST /build, checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BadParameter

MAX_PAIRS = 1000  # build args or labels one build may pass
MAX_PAIR_BYTES = 1 << 20  # all their names and values together
# Docker passes these to RUN when given as build args, declared by ARG or not
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
PROXY_ARGS = frozenset(_PROXIES) | frozenset(n.lower() for n in _PROXIES)


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    buildargs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = "bridge"
    target: str = ""
    nocache: bool = False
    cache_from: list[str] | None = None  # None: every cached step may be used
    remove: bool = True  # rm=false keeps each RUN step's container and the image it ran, as Docker does


def bounded_pairs(what: str, value: object) -> dict[str, str]:
    """A JSON object of strings (a null value in buildargs means "unset": dropped), within bounds."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"{what}: want a JSON object of strings")
    if len(value) > MAX_PAIRS:
        raise BadParameter(f"{what}: more than {MAX_PAIRS} entries")
    out: dict[str, str] = {}
    size = 0
    for key, item in value.items():
        if item is None:
            continue
        if not isinstance(key, str) or not isinstance(item, str) or not key or "\0" in key + item:
            raise BadParameter(f"{what}: {key!r} must map a name to a string")
        size += len(key) + len(item)
        if size > MAX_PAIR_BYTES:
            raise BadParameter(f"{what}: more than {MAX_PAIR_BYTES} bytes")
        out[key] = item
    return out
