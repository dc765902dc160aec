"""Docker's time arguments (since/until of events, the `until` filter of prune), to unix seconds.

A value is unix seconds (fractional allowed: the CLI sends "1700000000.123456789"), an RFC 3339
time, or a Go duration ("10m", "1h30m", "90s") counted back from now.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from ..errors import BadParameter

DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TEXT = 64


def parse_time(value: str, name: str, now: float | None = None) -> float:
    text = value.strip()
    now = time.time() if now is None else now
    if not text or len(text) > MAX_TEXT:
        raise BadParameter(f"invalid {name}: {value[:MAX_TEXT]!r}")
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    parts = DURATION_RE.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return now - sum(float(n) * UNIT[u] for n, u in parts)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadParameter(f"invalid {name}: {value[:MAX_TEXT]!r} (want unix seconds, RFC 3339 "
                           "or a duration such as 10m)") from None
