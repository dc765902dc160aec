"""The create body's restart, health and stop fields: RestartPolicy, Healthcheck, StopSignal, StopTimeout."""

from __future__ import annotations

from typing import Any

from ..containers.health import parse_healthcheck
from ..containers.model import CreateSpec
from ..containers.restart import parse_policy
from ..errors import BadParameter
from ..runtime.crun import parse_signal


def read(spec: CreateSpec, body: dict[str, Any], host: dict[str, Any]) -> None:
    spec.restart = parse_policy(host.get("RestartPolicy"))
    if spec.auto_remove and spec.restart.name != "no":
        raise BadParameter("can't create 'AutoRemove' container with restart policy")
    spec.healthcheck = parse_healthcheck(body.get("Healthcheck"))
    stop_signal = body.get("StopSignal") or ""
    if not isinstance(stop_signal, str):
        raise BadParameter("StopSignal must be a string")
    if stop_signal:
        try:
            parse_signal(stop_signal)
        except BadParameter:
            raise BadParameter(f"StopSignal: invalid signal: {stop_signal[:32]}") from None
    spec.stop_signal = stop_signal
    timeout = body.get("StopTimeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or not -1 <= timeout < 1 << 63):
        raise BadParameter("StopTimeout must be an integer of seconds (-1 waits for ever)")
    spec.stop_timeout = timeout
