"""Docker's size and CPU notations, parsed once here for both the engine and the CLI."""

from __future__ import annotations

import re

from .errors import BadParameter

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 * 1024 * 1024


def parse_bytes(value: str | int | float | None) -> int:
    """Parse "64m", "1g", "512MiB" or a plain number of bytes, as `docker run --memory` does."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise BadParameter(f"invalid size: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise BadParameter(f"invalid size: {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise BadParameter(f"invalid size: {value!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])


def parse_memory(value: str | int | float | None) -> int:
    """A memory limit in bytes (0 = unlimited), refusing Docker's sub-6MB limits."""
    limit = parse_bytes(value)
    if 0 < limit < MIN_MEMORY:
        raise BadParameter("Minimum memory limit allowed is 6MB")
    return limit


def parse_cpus(value: str | int | float | None) -> int:
    """`--cpus 0.5` as NanoCpus, the unit Docker's API carries."""
    if value is None or value == "":
        return 0
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise BadParameter(f"invalid argument {value!r} for --cpus") from None
    if cpus < 0 or cpus != cpus:
        raise BadParameter(f"invalid argument {value!r} for --cpus")
    return round(cpus * 1e9)


def human_size(size: int) -> str:
    """Sizes as `docker images` prints them (decimal units)."""
    amount = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000:
            return f"{amount:.3g}{unit}"
        amount /= 1000
    return f"{amount:.3g}TB"
