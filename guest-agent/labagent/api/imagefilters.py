"""The image list's and prune's filters: reference patterns, `until` times, before/since.

`reference` patterns follow Go's path.Match (as dockerd's FamiliarMatch does): `*` and `?`
stop at a slash, so `me/*` matches `me/app:1` but not `me/a/b`. `until` is a Go duration
(`24h`, `1h30m`) before now, a Unix time, or an RFC 3339 date, as dockerd reads it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache

from ..errors import BadParameter

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LAYOUTS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
MAX_PATTERN = 1024


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    """Go's path.Match pattern as a regular expression (a malformed one is a 400)."""
    if len(pattern) > MAX_PATTERN:
        raise BadParameter(f"invalid filter 'reference': a pattern of more than {MAX_PATTERN} characters")
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise BadParameter(f"invalid filter 'reference={pattern[:200]}': syntax error in pattern")
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error:
        raise BadParameter(f"invalid filter 'reference={pattern[:200]}': syntax error in pattern") from None


def reference_match(pattern: str, tag: str) -> bool:
    """FamiliarMatch: the pattern against `name:tag`, then against the name alone."""
    regex = _pattern(pattern)
    return bool(regex.match(tag) or regex.match(tag.rpartition(":")[0]))


def _duration(text: str) -> float | None:
    rest, total = text, 0.0
    if not rest:
        return None
    while rest:
        match = _DURATION.match(rest)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        rest = rest[match.end():]
    return total


def until_time(value: str, now: float | None = None) -> float:
    """The Unix time an `until` (or events' since/until) value names."""
    now = time.time() if now is None else now
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    span = _duration(text.lstrip("+-"))
    if span is not None:
        return now - sign * span
    stamp = text[:-1] + "+0000" if text.endswith("Z") else text
    for layout in _LAYOUTS:
        try:
            parsed = datetime.strptime(stamp, layout)
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise BadParameter(f"invalid filter 'until={value[:100]}': want a duration (24h), a Unix time or an RFC 3339 date")
