"""Docker's `filters` query parameter, parsed once for every list, prune and events endpoint.

Clients send JSON in two shapes: `{"label": ["a=b"]}` (docker-py) and `{"label": {"a=b": true}}`
(the docker CLI). Each endpoint names the keys it understands; any other key is a 400, as with
dockerd ("invalid filter 'x'"), so a filter is never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import BadParameter

MAX_FILTER_BYTES = 64 << 10
MAX_VALUES = 256


@dataclass(frozen=True)
class Filters:
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str) -> list[str]:
        return self.values.get(key, [])

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def one(self, key: str) -> str | None:
        """A filter that takes a single value (until, dangling)."""
        found = self.get(key)
        if len(found) > 1:
            raise BadParameter(f"filter {key!r} takes one value, not {len(found)}")
        return found[0] if found else None

    def flag(self, key: str) -> bool | None:
        """A boolean filter (dangling=true); None when absent."""
        value = self.one(key)
        if value is None:
            return None
        if value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
        raise BadParameter(f"invalid filter '{key}={value}': want true or false")

    def labels_match(self, labels: Mapping[str, str], key: str = "label") -> bool:
        """Every `label=K` needs K present; every `label=K=V` needs that value (Docker's rule)."""
        for wanted in self.get(key):
            name, eq, value = wanted.partition("=")
            if name not in labels or (eq and labels[name] != value):
                return False
        return True

    def any_of(self, key: str, candidates: Iterable[str]) -> bool:
        """True when the key is absent, or one of its values is among the candidates."""
        wanted = self.get(key)
        if not wanted:
            return True
        have = set(candidates)
        return any(w in have for w in wanted)


def parse_filters(raw: str, allowed: Iterable[str]) -> Filters:
    """The query's JSON, validated: known keys, string values, bounded size."""
    if not raw:
        return Filters()
    if len(raw) > MAX_FILTER_BYTES:
        raise BadParameter(f"filters of {len(raw)} bytes exceed the limit of {MAX_FILTER_BYTES}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadParameter(f"invalid filters: {exc}") from None
    if not isinstance(data, dict):
        raise BadParameter("invalid filters: want a JSON object")
    known = set(allowed)
    values: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in known:
            raise BadParameter(f"invalid filter '{key}'")
        if isinstance(value, dict):
            items = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = [value]
        else:
            raise BadParameter(f"invalid filter '{key}': want a list or a map of strings")
        if not all(isinstance(v, str) for v in items) or len(items) > MAX_VALUES:
            raise BadParameter(f"invalid filter '{key}': want at most {MAX_VALUES} strings")
        if items:
            values[key] = list(items)
    return Filters(values)
