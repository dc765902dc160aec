"""Restart policies as dockerd applies them: the decision after an exit, the back-off, the timers.

The decisions are pure functions (tested on their own); Restarts keeps one timer per container
waiting out its back-off, which a user's stop, kill, start or remove cancels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import BadParameter
from .model import ContainerState, RestartPolicy

POLICIES = ("no", "on-failure", "always", "unless-stopped")
BASE_DELAY = 0.1  # seconds before the first restart (dockerd's 100 ms)
MAX_DELAY = 60.0  # the back-off doubles up to one minute
RESET_AFTER = 10.0  # a run this long starts the back-off again from BASE_DELAY


def parse_policy(value: object) -> RestartPolicy:
    """HostConfig.RestartPolicy {Name, MaximumRetryCount}, with dockerd's 400s."""
    if value is None or value == {}:
        return RestartPolicy()
    if not isinstance(value, dict):
        raise BadParameter("HostConfig.RestartPolicy must be an object")
    unknown = set(value) - {"Name", "MaximumRetryCount"}
    if unknown:
        raise BadParameter(f"HostConfig.RestartPolicy.{sorted(unknown)[0]} is not supported by this engine")
    name = value.get("Name") or "no"
    retries = value.get("MaximumRetryCount") or 0
    if not isinstance(name, str) or name not in POLICIES:
        raise BadParameter(f"HostConfig.RestartPolicy: invalid restart policy: unknown policy "
                           f"'{str(name)[:40]}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries >= 1 << 63:
        raise BadParameter("HostConfig.RestartPolicy: MaximumRetryCount must be an integer")
    if retries < 0:
        raise BadParameter("HostConfig.RestartPolicy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise BadParameter(f"HostConfig.RestartPolicy: invalid restart policy: maximum retry count can only "
                           f"be used with 'on-failure' (not '{name}')")
    return RestartPolicy(name, retries)


def restart_after_exit(policy: RestartPolicy, state: ContainerState) -> bool:
    """After the container's process ended on its own (or died with the node)."""
    if state.stopped_by_user or policy.name == "no":
        return False
    if policy.name == "on-failure":
        retries_left = policy.max_retries == 0 or state.restart_count < policy.max_retries
        return state.exit_code != 0 and retries_left
    return policy.name in ("always", "unless-stopped")


def start_at_startup(policy: RestartPolicy, state: ContainerState) -> bool:
    """When the engine starts and finds the container not running (after a node reboot, say).

    `always` comes back even after a docker stop (as with dockerd); `unless-stopped` only if
    the user did not stop it; a container that was waiting out its back-off goes on.
    """
    if state.status == "restarting" or state.restarting:
        return policy.name != "no"
    if policy.name == "always":
        return True
    return policy.name == "unless-stopped" and not state.stopped_by_user


def next_delay(previous: float, ran_for: float) -> float:
    """dockerd's back-off: 100 ms, doubled at each restart up to a minute; a run of 10 s resets it."""
    if previous <= 0 or ran_for >= RESET_AFTER:
        return BASE_DELAY
    return min(previous * 2, MAX_DELAY)


class Restarts:
    """One pending restart per container; `fire(cid)` is the lifecycle's policy start."""

    def __init__(self, fire: Callable[[str], None]) -> None:
        self._fire = fire
        self._lock = threading.Lock()
        self._timers: dict[str, threading.Timer] = {}
        self._delays: dict[str, float] = {}

    def schedule(self, cid: str, ran_for: float, armed: bool = True) -> float:
        """A restart after the back-off; armed=False holds it (cancellable) until arm()."""
        with self._lock:
            delay = next_delay(self._delays.get(cid, 0.0), ran_for)
            self._delays[cid] = delay
            old = self._timers.pop(cid, None)
            if old is not None:
                old.cancel()
            timer = threading.Timer(delay, self._run, (cid,))
            timer.daemon = True
            self._timers[cid] = timer
            if armed:
                timer.start()
        return delay

    def arm(self, cid: str) -> None:
        with self._lock:
            timer = self._timers.get(cid)
            if timer is not None and not timer.is_alive():
                timer.start()

    def _run(self, cid: str) -> None:
        with self._lock:
            self._timers.pop(cid, None)
        self._fire(cid)

    def cancel(self, cid: str) -> bool:
        """Drop a pending restart; True if one was waiting."""
        with self._lock:
            timer = self._timers.pop(cid, None)
        if timer is None:
            return False
        timer.cancel()
        return True

    def reset(self, cid: str) -> None:
        """A user's start: the back-off begins again from BASE_DELAY."""
        with self._lock:
            self._delays.pop(cid, None)

    def forget(self, cid: str) -> None:
        self.cancel(cid)
        self.reset(cid)

    def close(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
