"""Image references checked with Docker's rules (distribution/reference), in their familiar form.

A name that enters the store (a tag, a load, a build's -t) must be one dockerd would accept:
lowercase path components joined by `.`, `_`, `__` or dashes, an optional registry host first,
a tag of at most 128 word characters, dots and dashes, and at most 255 characters of name. The
familiar form drops `docker.io/` and `library/`, so `docker.io/library/busybox` is `busybox:latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadParameter

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>[\w][\w.-]{{0,127}}))?$", re.ASCII)
HEX64 = re.compile(r"^[a-f0-9]{64}$")
DOMAIN = re.compile(rf"^{_HOST}(?::[0-9]+)?$", re.ASCII)
NAME_MAX = 255
DEFAULT_DOMAIN = "docker.io"


@dataclass(frozen=True)
class Reference:
    name: str  # familiar: busybox, me/app, reg:5000/app
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def full_name(self) -> str:
        """docker.io/library/busybox: what containerd's image name annotation holds."""
        first, slash, _ = self.name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            return self.name
        return f"{DEFAULT_DOMAIN}/{self.name if slash else 'library/' + self.name}"


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry if it has a dot or colon, is
    localhost, or is not lowercase; otherwise the name is on the default registry."""
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remote = DEFAULT_DOMAIN, name
    else:
        domain, remote = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = "library/" + remote
    return domain, remote


def parse(text: str, tag: str = "") -> Reference:
    """A reference (with `tag` replacing its own, if given), or BadParameter in Docker's words."""
    if not isinstance(text, str) or not text:
        raise BadParameter("invalid reference format")
    if HEX64.match(text):
        raise BadParameter(f"invalid repository name ({text[:300]}), cannot specify 64-byte hexadecimal strings")
    if "@" in text:
        raise BadParameter(f"invalid reference format: {text[:300]!r}: digest references are not supported here")
    if text.endswith((":", "/")) or text.startswith("/"):
        raise BadParameter("invalid reference format")
    head, colon, own_tag = text.rpartition(":")
    if not colon or "/" in own_tag:
        head, own_tag = text, ""
    domain, remote = _split_domain(head)
    if remote.lower() != remote:
        raise BadParameter(f"invalid reference format: repository name ({remote[:300]}) must be lowercase")
    match = REFERENCE.match(f"{domain}/{remote}" + (f":{own_tag}" if own_tag else ""))
    if match is None or not DOMAIN.match(domain):
        raise BadParameter("invalid reference format")
    if len(match.group("name")) > NAME_MAX:
        raise BadParameter(f"repository name must not be more than {NAME_MAX} characters")
    if tag and not TAG.match(tag):
        raise BadParameter("invalid tag format")
    if domain == DEFAULT_DOMAIN:
        familiar = remote.removeprefix("library/") if remote.count("/") == 1 else remote
    else:
        familiar = f"{domain}/{remote}"
    if familiar == "sha256":
        raise BadParameter("refusing to create an ambiguous tag using digest algorithm as name")
    return Reference(familiar, tag or own_tag or "latest")


def has_tag(text: str) -> bool:
    """Whether the text names a tag (`a:1`) rather than a repository only (`a`, `reg:5000/a`)."""
    _, colon, tag = text.rpartition(":")
    return bool(colon) and "/" not in tag
