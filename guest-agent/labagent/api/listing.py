"""`GET /containers/json` filters, as dockerd applies them."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..containers.model import Container
from ..errors import BadParameter, EngineError
from ..fsutil import parse_rfc3339
from ..interface import EngineInterface
from .filters import Filters, parse_filters
from .views import shown_status

KEYS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since", "health",
        "network", "volume", "publish", "expose", "is-task")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")
MAX_PATTERN = 256  # a name filter is a regular expression: bounded, so it cannot be made to crawl


def status_of(c: Container) -> str:
    if c.state.restarting:
        return "restarting"
    return shown_status(c)


def nested_repetition(pattern: str) -> bool:
    """True for a repeated group that itself repeats or alternates ("(a+)+", "(a|aa)*"), or a
    backreference: the patterns Python's backtracking engine can take exponential time on
    (dockerd's RE2 cannot). Names are matched as dockerd does otherwise."""
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return True
    stack: list[bool] = []  # per open group: has it a quantifier (or an alternation) inside?
    inner = False
    escaped = in_class = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            stack.append(inner)
            inner = False
        elif ch == ")" and stack:
            quantified = pattern[i + 1:i + 2] in ("*", "+", "?", "{")
            if quantified and inner:
                return True
            inner = stack.pop() or inner or quantified
        elif ch in "*+{|" or (ch == "?" and i and pattern[i - 1] not in "(*+?}"):
            inner = True
    return False


def _name_patterns(values: list[str]) -> list[re.Pattern[str]]:
    patterns = []
    for value in values:
        if len(value) > MAX_PATTERN:
            raise BadParameter(f"invalid filter 'name': a pattern of at most {MAX_PATTERN} characters")
        if nested_repetition(value):
            raise BadParameter(f"invalid filter 'name={value}': nested repetition and backreferences "
                               "are not supported")
        try:
            patterns.append(re.compile(value))
        except re.error as exc:
            raise BadParameter(f"invalid filter 'name={value}': {exc}") from None
    return patterns


def _ports(values: list[str], key: str) -> list[tuple[int, int, str]]:
    """`80`, `80/tcp`, `8000-8080/udp` as (first, last, proto)."""
    ranges = []
    for value in values:
        spec, _, proto = value.partition("/")
        first, _, last = spec.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise BadParameter(f"invalid filter '{key}={value}'") from None
        if proto not in ("", "tcp", "udp", "sctp") or not 0 < lo <= hi < 65536:
            raise BadParameter(f"invalid filter '{key}={value}'")
        ranges.append((lo, hi, proto or "tcp"))
    return ranges


def _port_match(ranges: list[tuple[int, int, str]], keys: set[str]) -> bool:
    if not ranges:
        return True
    have = {(int(k.split("/")[0]), k.split("/")[1] if "/" in k else "tcp") for k in keys}
    return any(proto == p and lo <= port <= hi for lo, hi, proto in ranges for port, p in have)


def build(engine: EngineInterface, raw: str) -> tuple[Callable[[Container], bool], bool]:
    """The predicate of a filters query, and whether it lists stopped containers without all=1
    (a status filter does, in dockerd); every value is checked now, so a bad one is a 400."""
    f: Filters = parse_filters(raw, KEYS)
    for status in f.get("status"):
        if status not in STATUSES:
            raise BadParameter(f"Invalid filter 'status={status}'")
    for health in f.get("health"):
        if health not in HEALTH:
            raise BadParameter(f"Unrecognised filter value for health: {health}")
    exited: set[int] = set()
    for code in f.get("exited"):
        try:
            exited.add(int(code))
        except ValueError:
            raise BadParameter(f"invalid filter 'exited={code}'") from None
    names = _name_patterns(f.get("name"))
    before = [parse_rfc3339(engine.containers.get(ref).created) for ref in f.get("before")]
    since = [parse_rfc3339(engine.containers.get(ref).created) for ref in f.get("since")]
    ancestors: set[str] = set()
    bases: list[list[str]] = []  # the layers of each ancestor: an image built on one descends from it
    for ref in f.get("ancestor"):
        ancestors.add(ref)
        try:
            image = engine.images.resolve(ref)
        except EngineError:
            continue  # an unknown image matches by name only, as dockerd does
        ancestors.add(image.id)
        if image.diff_ids:
            bases.append(image.diff_ids)

    def descends(c: Container) -> bool:
        if not bases:
            return False
        try:
            layers = engine.images.resolve(c.spec.image_id).diff_ids
        except EngineError:
            return False
        return any(layers[:len(base)] == base for base in bases)
    publish, expose = _ports(f.get("publish"), "publish"), _ports(f.get("expose"), "expose")
    if any(v not in ("true", "false") for v in f.get("is-task")):
        raise BadParameter("invalid filter 'is-task': want true or false")

    def match(c: Container) -> bool:
        created = parse_rfc3339(c.created)
        tags = {c.spec.image, c.spec.image_id, c.spec.image_id.removeprefix("sha256:")}
        if ":" not in c.spec.image.rsplit("/", 1)[-1]:
            tags.add(f"{c.spec.image}:latest")
        networks = {c.spec.network_mode, *c.spec.networks}
        volumes = {m.source for m in c.spec.mounts} | {m.target for m in c.spec.mounts}
        return all((
            not f.get("id") or any(c.id.startswith(v) for v in f.get("id")),
            not names or any(p.search(f"/{c.name}") for p in names),
            f.labels_match(c.spec.labels),
            f.any_of("status", [status_of(c)]),
            not ancestors or bool(tags & ancestors) or descends(c),
            not exited or (c.state.status == "exited" and c.state.exit_code in exited),
            all(created < t for t in before), all(created > t for t in since),
            f.any_of("health", [c.state.health or "none"]),
            f.any_of("network", networks),
            f.any_of("volume", volumes),
            _port_match(publish, {p.key for p in c.spec.ports}),
            _port_match(expose, {*c.spec.exposed, *(p.key for p in c.spec.ports)}),
            f.get("is-task") != ["true"],
        ))
    return match, "status" in f
