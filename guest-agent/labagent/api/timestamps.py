"""Docker's time arguments (since/until of events and logs, the `until` filter of both prunes),
to unix seconds: the one parser for all of them.

A value is unix seconds (fractional allowed: the CLI sends "1700000000.123456789"), an RFC 3339
time (or a date; without an offset it is UTC, the node's zone), or a Go duration ("10m",
"1h30m", "-90s", ".5h") counted back from now.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from ..errors import BadParameter

DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TEXT = 64


def _duration(text: str) -> float | None:
    """Seconds a Go duration names (signed), or None when text is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in ("+", "-") else text
    parts = DURATION_RE.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        return None
    return sign * sum(float(n) * UNIT[u] for n, u in parts)


def parse_time(value: str, name: str, now: float | None = None) -> float:
    text = value.strip()
    now = time.time() if now is None else now
    if not text or len(text) > MAX_TEXT:
        raise BadParameter(f"invalid {name}: {value[:MAX_TEXT]!r}")
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    span = _duration(text)
    if span is not None:
        return now - span
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(f"invalid {name}: {value[:MAX_TEXT]!r} (want unix seconds, RFC 3339 "
                           "or a duration such as 10m)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
