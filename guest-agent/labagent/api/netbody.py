"""The network fields of a create body: HostConfig.NetworkMode and NetworkingConfig.

NetworkMode is default, bridge, none or a user network's name or id; EndpointsConfig may name
user networks (with Aliases and IPAMConfig.IPv4Address), joined at start. Whether a named
network exists is the engine's to answer (404 at create, as dockerd does).
"""

from __future__ import annotations

from typing import Any

from ..containers.model import CreateSpec, EndpointSpec
from ..errors import BadParameter
from ..network.networks import MAX_NAME, NAME_RE
from .createfields import blank
from .networks import endpoint_settings

DEFAULTS = ("default", "bridge", "none")
MAX_ENDPOINTS = 16


def apply(spec: CreateSpec, body: dict[str, Any], host: dict[str, Any]) -> None:
    """Set spec.network_mode and spec.networks from the body (the rest of spec is already read)."""
    mode = host.get("NetworkMode") or "default"
    if not isinstance(mode, str):
        raise BadParameter("HostConfig.NetworkMode must be a string")
    user = mode not in DEFAULTS
    if user and (mode == "host" or ":" in mode or len(mode) > MAX_NAME or not NAME_RE.fullmatch(mode)):
        raise BadParameter(f"HostConfig.NetworkMode: network mode {mode[:64]!r} is not supported "
                           "(use bridge, none or a user-defined network)")
    if user and spec.network_mode == "none":  # NetworkDisabled
        raise BadParameter("NetworkDisabled conflicts with HostConfig.NetworkMode")
    if user:
        spec.network_mode = mode
    networking = body.get("NetworkingConfig")
    if networking is None or networking == {}:
        return
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    # docker-py 7's containers.run(network=N) sends {N: null} here, which dockerd ignores
    if not isinstance(networking, dict) or not isinstance(endpoints, dict | None) \
            or not all(blank(v) for k, v in networking.items() if k != "EndpointsConfig"):
        raise BadParameter("NetworkingConfig: only EndpointsConfig is supported by this engine")
    if len(endpoints or {}) > MAX_ENDPOINTS:
        raise BadParameter(f"NetworkingConfig.EndpointsConfig: at most {MAX_ENDPOINTS} networks")
    for network, settings in (endpoints or {}).items():
        where = f"NetworkingConfig.EndpointsConfig.{network[:64]}"
        if not isinstance(settings, dict | None):
            raise BadParameter(f"{where} must be an object")
        if network in DEFAULTS or (network == mode and not user):
            for name, value in (settings or {}).items():
                if not blank(value):
                    raise BadParameter(f"{where}.{name}: endpoint settings are supported only for containers "
                                       "in user defined networks")
            continue
        if spec.network_mode == "none":
            raise BadParameter("container cannot be connected to multiple networks with one of the networks "
                               "in private (none) mode")
        if len(network) > MAX_NAME or not NAME_RE.fullmatch(network):
            raise BadParameter(f"{where}: invalid network name")
        aliases, ipv4 = endpoint_settings(settings or {}, where)
        spec.networks[network] = EndpointSpec(aliases=aliases, ipv4=ipv4)
