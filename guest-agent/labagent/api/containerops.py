"""Container operations past the lifecycle: top, stats, pause/unpause, update (limits
and restart policy), rename."""

from __future__ import annotations

import json
import time
from typing import Any

from ..containers import ocispec
from ..containers import top as ps
from ..containers.model import Container, Limits, RestartPolicy, check_name
from ..containers.restart import parse_policy
from ..containers.stats import Sampler
from ..errors import BadParameter, Conflict
from ..fsutil import read_json, write_json
from ..interface import EngineInterface
from ..units import parse_memory
from .createbody import limits_from
from .http import Request, Response, json_response
from .router import Route

STATS_INTERVAL = 1.0  # seconds between streamed samples, as dockerd
# Resources fields of an update body this engine applies; the others only at their zero value
# (the docker CLI sends every field of Resources, zero when its flag was not given).
APPLIED = frozenset({"Memory", "MemorySwap", "NanoCpus", "CpuQuota", "CpuPeriod", "PidsLimit", "CpuShares"})
ZERO_ONLY = frozenset({
    "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod",
    "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests",
    "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "MemorySwappiness", "OomKillDisable",
    "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
})


def _running(c: Container) -> None:
    if not c.running:
        raise Conflict(f"Container {c.id} is not running")


def top(engine: EngineInterface, req: Request, ref: str) -> Response:
    c = engine.containers.get(ref)
    columns = ps.layout(req.arg("ps_args"))
    _running(c)
    pids = engine.lifecycle.cgroups.procs(c.id)
    return json_response({"Titles": list(columns), "Processes": ps.rows(pids, columns)})


def stats(engine: EngineInterface, req: Request, ref: str) -> None:
    """One sample (stream=false), or one a second until the client goes or the container stops.

    stream=false without one-shot waits a second for a second sample, so precpu_stats holds
    figures the CPU percentage can be computed from (as dockerd does); one-shot=true does not.
    """
    c = engine.containers.get(ref)
    sampler = Sampler(engine.lifecycle.cgroups)
    stream, one_shot = req.flag("stream", True), req.flag("one-shot")
    if one_shot and stream:
        raise BadParameter("cannot have stream=true and one-shot=true")
    if not stream:
        sample = sampler.sample(c)
        if not one_shot and c.running:
            _pause(engine, c, req)
            sample = sampler.sample(c)
        writer = req.stream("application/json")
        writer.write(json.dumps(sample).encode() + b"\n")
        writer.close()
        return
    writer = req.stream("application/json")
    try:
        while True:
            writer.write(json.dumps(sampler.sample(c)).encode() + b"\n")
            if not c.running or req.client_gone() or not _pause(engine, c, req):
                break
    except OSError:
        return  # the client hung up mid-write
    writer.close()


def _pause(engine: EngineInterface, c: Container, req: Request) -> bool:
    """Wait STATS_INTERVAL, or less if the container stops; True if it is still running."""
    run, deadline = c.state.exits, time.monotonic() + STATS_INTERVAL
    store = engine.containers
    with store.changed:
        while c.state.exits == run and not req.client_gone():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            store.changed.wait(min(left, 0.25))
    return c.running and c.state.exits == run


def pause(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.lifecycle.pause(ref)
    return Response(204)


def unpause(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.lifecycle.unpause(ref)
    return Response(204)


def rename(engine: EngineInterface, req: Request, ref: str) -> Response:
    name = req.arg("name")
    if not name:
        raise BadParameter("Neither old nor new names may be empty")
    engine.lifecycle.rename(ref, check_name(name))
    return Response(204)


def restart_policy(value: Any, auto_remove: bool) -> RestartPolicy | None:
    """UpdateConfig.RestartPolicy; None when absent or its Name empty (the docker CLI's "unchanged").

    A named policy is checked by restart.parse_policy, the one parser create uses too.
    """
    if value is None:
        return None
    if isinstance(value, dict) and not value.get("Name"):
        if value.get("MaximumRetryCount"):
            raise BadParameter("RestartPolicy.MaximumRetryCount needs RestartPolicy.Name on-failure")
        return None
    policy = parse_policy(value)
    if auto_remove and policy.name != "no":
        raise BadParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    return policy


def updated_limits(body: dict[str, Any], old: Limits) -> Limits:
    """The limits after an update: a field given non-zero replaces the old value, zero keeps it."""
    for name in APPLIED:
        value = body.get(name)
        if isinstance(value, int) and not -(1 << 63) <= value < 1 << 63:
            raise BadParameter(f"{name}={value} is out of range (a 64-bit integer)")
    for name, value in body.items():
        if name in ZERO_ONLY and value not in (None, 0, "", [], {}) and not (name == "MemorySwappiness"
                                                                          and value == -1):
            raise BadParameter(f"{name}={value!r} cannot be updated on this engine")
    given = limits_from({k: v for k, v in body.items()
                         if k in APPLIED and k not in ("MemorySwap", "PidsLimit") and v not in (None, 0)})
    memory = given.memory or old.memory
    swap = body.get("MemorySwap")
    if swap not in (None, 0, -1) and parse_memory(swap) != memory:
        raise BadParameter(f"MemorySwap={swap!r} is not supported by this engine: containers get no swap "
                           "(leave it unset or equal to Memory)")
    if given.nano_cpus:
        nano, quota, period = given.nano_cpus, 0, 0
    elif given.cpu_quota or given.cpu_period:
        if old.nano_cpus:
            raise BadParameter("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
        nano, quota, period = 0, given.cpu_quota or old.cpu_quota, given.cpu_period or old.cpu_period
    else:
        nano, quota, period = old.nano_cpus, old.cpu_quota, old.cpu_period
    pids = old.pids
    if body.get("PidsLimit") is not None:  # 0 and -1: unlimited
        pids = limits_from({"PidsLimit": body["PidsLimit"]}).pids
    return Limits(memory=memory, cpu_quota=quota, cpu_period=period, nano_cpus=nano, pids=pids,
                  cpu_shares=given.cpu_shares or old.cpu_shares)


def update(engine: EngineInterface, req: Request, ref: str) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise BadParameter("the update body must be a JSON object")
    for name in body:
        if name not in APPLIED | ZERO_ONLY | {"RestartPolicy"}:
            raise BadParameter(f"{name} cannot be updated on this engine")
    c = engine.containers.get(ref)
    limits = updated_limits(body, c.spec.limits)
    policy = restart_policy(body.get("RestartPolicy"), c.spec.auto_remove)
    if c.running:
        engine.lifecycle.cgroups.set_limits(c.id, limits.memory, ocispec.cpu_quota(limits), limits.pids,
                                            limits.cpu_shares)
    with engine.containers.lock:
        c.spec.limits = limits
        if policy is not None:
            c.spec.restart = policy
        engine.containers.save(c)
    _rewrite_resources(engine, c)
    engine.events.emit("container", "update", c.id, name=c.name, image=c.spec.image)
    return json_response({"Warnings": []})


def _rewrite_resources(engine: EngineInterface, c: Container) -> None:
    """The bundle's config.json gets the new limits, so the next start applies them too."""
    path = engine.containers.bundle(c.id) / "config.json"
    try:
        config = read_json(path)
    except (OSError, ValueError):
        return  # start() writes a fresh one from the record
    config.setdefault("linux", {})["resources"] = ocispec.resources(c.spec.limits)
    write_json(path, config)


ROUTES: list[Route] = [
    ("GET", "/containers/{ref}/top", top),
    ("GET", "/containers/{ref}/stats", stats),
    ("POST", "/containers/{ref}/pause", pause),
    ("POST", "/containers/{ref}/unpause", unpause),
    ("POST", "/containers/{ref}/update", update),
    ("POST", "/containers/{ref}/rename", rename),
]
