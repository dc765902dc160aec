"""`--change` lines of `docker import` (and commit): Dockerfile instructions that set the config.

dockerd takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR
here; any other instruction is refused with its words, as dockerd refuses it. ONBUILD triggers
are kept as text (nothing here builds FROM an imported image's triggers).
"""

from __future__ import annotations

import json
import posixpath
import shlex
from typing import Any

from ..errors import BadParameter

VERBS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
MAX_CHANGES = 256
MAX_CHANGE = 64 << 10


def _argv(raw: str, verb: str) -> list[str]:
    if raw.startswith("["):
        try:
            argv = json.loads(raw)
        except ValueError:
            argv = None
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            return argv
        raise BadParameter(f"{verb}: want a JSON array of strings, not {raw[:200]!r}")
    return ["/bin/sh", "-c", raw]


def _pairs(raw: str, verb: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise BadParameter(f"{verb}: {exc}") from None
    if words and "=" not in words[0]:
        name, _, value = raw.partition(" ")
        return [(name, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadParameter(f"{verb}: {word[:200]!r} is not NAME=value")
        pairs.append((key, value))
    return pairs


def apply(config: dict[str, Any], change: str) -> None:
    """One change line, applied to a container config in place."""
    if len(change) > MAX_CHANGE:
        raise BadParameter(f"changes: a line of more than {MAX_CHANGE} characters")
    verb, _, raw = change.strip().partition(" ")
    verb, raw = verb.upper(), raw.strip()
    if verb not in VERBS:
        raise BadParameter(f"{verb.lower()[:100]} is not a valid change command")
    if not raw:
        raise BadParameter(f"changes: {verb} needs arguments")
    if verb in ("CMD", "ENTRYPOINT"):
        config["Cmd" if verb == "CMD" else "Entrypoint"] = _argv(raw, verb)
    elif verb == "ENV":
        env = list(config.get("Env") or [])
        for name, value in _pairs(raw, verb):
            env = [e for e in env if e.partition("=")[0] != name] + [f"{name}={value}"]
        config["Env"] = env
    elif verb == "LABEL":
        config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs(raw, verb))}
    elif verb == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for word in raw.split():
            port, _, proto = word.partition("/")
            if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise BadParameter(f"EXPOSE: invalid port {word[:100]!r}")
            ports[f"{int(port)}/{proto or 'tcp'}"] = {}
        config["ExposedPorts"] = ports
    elif verb == "VOLUME":
        paths = _argv(raw, verb) if raw.startswith("[") else raw.split()
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
    elif verb == "WORKDIR":
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", raw))
    elif verb == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), raw]
    else:
        config["User" if verb == "USER" else "StopSignal"] = raw


def config_from(changes: list[str]) -> dict[str, Any]:
    if len(changes) > MAX_CHANGES:
        raise BadParameter(f"changes: {len(changes)} lines, at most {MAX_CHANGES}")
    config: dict[str, Any] = {}
    for change in changes:
        if change.strip():
            apply(config, change)
    return config
