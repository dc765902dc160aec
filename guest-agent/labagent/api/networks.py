"""Network endpoints: create, list, inspect, connect, disconnect, remove, prune.

User networks are bridge networks only; the predefined bridge (the default bridge, labbr0),
host and none are listed and inspected as dockerd shows them, and cannot be removed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..errors import BadParameter, NotFound
from ..fsutil import parse_rfc3339
from ..interface import EngineInterface
from ..network import addressing
from ..network.networks import BUILTIN, MAX_LABELS, UserNetwork, builtin_id, check_aliases, check_name, parse_ipam
from .createfields import blank
from .filters import Filters, parse_filters
from .http import Request, Response, json_response
from .router import Route

CREATE_FIELDS = {"Name", "Driver", "Labels", "IPAM", "Internal", "Attachable", "CheckDuplicate", "Options",
                 "EnableIPv6", "Scope", "Ingress", "ConfigOnly", "ConfigFrom"}
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
# bridge driver options: honoured (masquerade), or accepted only at the value this engine has
AT_DEFAULT_OPTIONS = {
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.driver.mtu": "1500",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
}
LIST_FILTERS = ("name", "id", "label", "driver", "type", "dangling", "scope")
PRUNE_FILTERS = ("until", "label", "label!")


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadParameter(f"{key} must be true or false")
    return value


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadParameter(f"{what} must be an object of strings")
    if len(value) > MAX_LABELS:
        raise BadParameter(f"{what}: at most {MAX_LABELS} entries")
    return dict(value)


def _options(value: Any) -> tuple[dict[str, str], bool]:
    options = _strings(value, "Options")
    masquerade = True
    for key, val in options.items():
        if key == MASQUERADE:
            if val not in ("true", "false"):
                raise BadParameter(f"Options.{MASQUERADE}: want true or false")
            masquerade = val == "true"
        elif AT_DEFAULT_OPTIONS.get(key) != val:
            raise BadParameter(f"Options {key[:64]}={val[:32]} is not supported by this engine's bridge "
                               f"driver (it honours {MASQUERADE})")
    return options, masquerade


def create(engine: EngineInterface, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise BadParameter("the network create body must be a JSON object")
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise BadParameter(f"{unknown[0][:32]} is not supported by this engine")
    name = check_name(body.get("Name"))
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise BadParameter(f"network driver {str(driver)[:32]!r} is not supported by this engine (only bridge)")
    if _flag(body, "EnableIPv6"):
        raise BadParameter("EnableIPv6: IPv6 is not supported by this engine")
    for key in ("Ingress", "ConfigOnly"):
        if _flag(body, key):
            raise BadParameter(f"{key}: swarm networks are not supported by this engine")
    if body.get("Scope") not in (None, "", "local"):
        raise BadParameter(f"Scope {str(body['Scope'])[:16]!r} is not supported (only local)")
    if body.get("ConfigFrom") not in (None, {}, {"Network": ""}):
        raise BadParameter("ConfigFrom: config-only networks are not supported by this engine")
    options, masquerade = _options(body.get("Options"))
    _flag(body, "CheckDuplicate")  # a duplicate name is a 409 either way
    net = engine.networks.create(
        name, parse_ipam(body.get("IPAM")),
        internal=_flag(body, "Internal"), attachable=_flag(body, "Attachable"), masquerade=masquerade,
        labels=_strings(body.get("Labels"), "Labels"), options=options)
    return json_response({"Id": net.id, "Warning": ""}, 201)


# views ---------------------------------------------------------------------------------
def _user_view(engine: EngineInterface, net: UserNetwork) -> dict[str, Any]:
    config: dict[str, Any] = {"Subnet": net.subnet, "Gateway": net.gateway}
    if net.ip_range:
        config["IPRange"] = net.ip_range
    if net.aux:
        config["AuxiliaryAddresses"] = dict(net.aux)
    with engine.networks.store.lock:  # copied, then named: never the container lock inside this one
        endpoints = [(cid, replace(e)) for cid, e in net.endpoints.items() if e.ip]
    containers = {}
    for cid, e in endpoints:
        try:
            owner = engine.containers.get(cid)
        except NotFound:  # removed meanwhile
            continue
        containers[cid] = {"Name": owner.name, "EndpointID": e.endpoint_id, "MacAddress": e.mac,
                           "IPv4Address": f"{e.ip}/{net.prefix}", "IPv6Address": ""}
    return _shape(net.name, net.id, net.created, "bridge", {"Driver": "default", "Options": net.ipam_options,
                                                            "Config": [config]},
                  containers, dict(net.options), dict(net.labels), net.internal, net.attachable)


def _shape(name: str, nid: str, created: str, driver: str, ipam: dict[str, Any], containers: dict[str, Any],
           options: dict[str, str], labels: dict[str, str], internal: bool = False,
           attachable: bool = False) -> dict[str, Any]:
    return {"Name": name, "Id": nid, "Created": created, "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": ipam, "Internal": internal, "Attachable": attachable,
            "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": containers, "Options": options, "Labels": labels}


def _builtin_view(engine: EngineInterface, name: str) -> dict[str, Any]:
    created = "0001-01-01T00:00:00Z"
    running = [c for c in engine.containers.all() if c.running]
    if name == "bridge":
        members = {c.id: {"Name": c.name, "EndpointID": c.id, "MacAddress": c.network.mac,
                          "IPv4Address": f"{c.network.ip}/{c.network.prefix}", "IPv6Address": ""}
                   for c in running if c.network.ip}
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.name": addressing.BRIDGE}
        ipam = {"Driver": "default", "Options": None,
                "Config": [{"Subnet": str(addressing.SUBNET), "Gateway": addressing.GATEWAY}]}
        return _shape("bridge", builtin_id("bridge"), created, "bridge", ipam, members, options, {})
    members = {c.id: {"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
               for c in running if c.spec.network_mode == "none"} if name == "none" else {}
    ipam = {"Driver": "default", "Options": None, "Config": []}
    return _shape(name, builtin_id(name), created, "host" if name == "host" else "null", ipam, members, {}, {})


def _all_views(engine: EngineInterface) -> list[tuple[dict[str, Any], bool]]:
    """Every network's view, with whether it is predefined."""
    views = [(_builtin_view(engine, name), True) for name in BUILTIN]
    return views + [(_user_view(engine, net), False) for net in engine.networks.store.all()]


def _find_builtin(ref: str) -> str | None:
    for name in BUILTIN:
        if ref == name or (len(ref) >= 12 and builtin_id(name).startswith(ref)):
            return name
    return None


def _matches(view: dict[str, Any], builtin: bool, f: Filters) -> bool:
    kind = f.get("type")
    for t in kind:
        if t not in ("custom", "builtin"):
            raise BadParameter(f"invalid filter: 'type'='{t[:16]}'")
    dangling = f.flag("dangling")
    return bool(
        (not f.get("name") or any(n in view["Name"] for n in f.get("name")))
        and (not f.get("id") or any(i in view["Id"] for i in f.get("id")))
        and f.any_of("driver", [view["Driver"]])
        and f.any_of("scope", ["local"])
        and (not kind or ("builtin" if builtin else "custom") in kind)
        and f.labels_match(view["Labels"])
        and (dangling is None or (not builtin and not view["Containers"]) == dangling))


def list_networks(engine: EngineInterface, req: Request) -> Response:
    f = parse_filters(req.arg("filters"), LIST_FILTERS)
    return json_response([view for view, builtin in _all_views(engine) if _matches(view, builtin, f)])


def inspect(engine: EngineInterface, req: Request, ref: str) -> Response:
    if req.arg("scope") not in ("", "local"):
        raise BadParameter(f"network scope {req.arg('scope')[:16]!r}: only local networks here")
    builtin = _find_builtin(ref)
    if builtin is not None:
        return json_response(_builtin_view(engine, builtin))
    return json_response(_user_view(engine, engine.networks.store.get(ref)))


def connect(engine: EngineInterface, req: Request, ref: str) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise BadParameter("connect needs a Container")
    config = body.get("EndpointConfig") or {}
    if not isinstance(config, dict):
        raise BadParameter("EndpointConfig must be an object")
    aliases, ipv4 = endpoint_settings(config, "EndpointConfig")
    engine.networks.connect(_builtin_name(ref), body["Container"], aliases, ipv4)
    return Response(200)


def disconnect(engine: EngineInterface, req: Request, ref: str) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise BadParameter("the disconnect body must be a JSON object")
    target = body.get("Container") or body.get("container")
    if not isinstance(target, str) or not target:
        raise BadParameter("disconnect needs a Container")
    engine.networks.disconnect(_builtin_name(ref), target, bool(body.get("Force")))
    return Response(200)


def _builtin_name(ref: str) -> str:
    return _find_builtin(ref) or ref


def remove(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.networks.remove(_builtin_name(ref))
    return Response(204)


def _until(value: str) -> float:
    """until=: a Unix time, an RFC 3339 time, or a duration before now (10m, 24h)."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value[-1:] in units and value[:-1].isdigit():
            return time.time() - int(value[:-1]) * units[value[-1]]
        if value.replace(".", "", 1).isdigit():
            return float(value)
        return parse_rfc3339(value)
    except (ValueError, IndexError):
        raise BadParameter(f"invalid filter 'until={value[:40]}'") from None


def prune(engine: EngineInterface, req: Request) -> Response:
    f = parse_filters(req.arg("filters"), PRUNE_FILTERS)
    until = f.one("until")
    cutoff = _until(until) if until is not None else None

    def keep(net: UserNetwork) -> bool:
        if cutoff is not None and parse_rfc3339(net.created) >= cutoff:
            return True
        if not f.labels_match(net.labels):
            return True
        return any(Filters({"l": [w]}).labels_match(net.labels, "l") for w in f.get("label!"))

    return json_response({"NetworksDeleted": engine.networks.prune(keep)})


def endpoint_settings(config: dict[str, Any], where: str) -> tuple[list[str], str]:
    """An EndpointSettings object: Aliases and IPAMConfig.IPv4Address honoured, the rest only blank."""
    aliases = check_aliases(config.get("Aliases"), where)
    ipam = config.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise BadParameter(f"{where}.IPAMConfig must be an object")
    ipv4 = ipam.get("IPv4Address") or ""
    if not isinstance(ipv4, str):
        raise BadParameter(f"{where}.IPAMConfig.IPv4Address must be a string")
    for key, value in ipam.items():
        if key != "IPv4Address" and not blank(value):
            raise BadParameter(f"{where}.IPAMConfig.{key[:32]} is not supported by this engine (IPv4Address only)")
    for key, value in config.items():
        if key not in ("Aliases", "IPAMConfig") and not blank(value):
            raise BadParameter(f"{where}.{key[:32]}={str(value)[:40]} is not supported by this engine")
    return aliases, ipv4


ROUTES: list[Route] = [
    ("GET", "/networks", list_networks),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{ref}", inspect),
    ("POST", "/networks/{ref}/connect", connect),
    ("POST", "/networks/{ref}/disconnect", disconnect),
    ("DELETE", "/networks/{ref}", remove),
]
