"""Sizes as people write them in lab files: 512M, 1G, 1536MiB, or a plain number of MiB."""

from __future__ import annotations

import re

SIZE = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[KMGT]?)(?:i?B)?\s*", re.IGNORECASE | re.ASCII)
FACTORS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_mebibytes(value: str | int) -> int:
    if isinstance(value, int):
        return value
    match = SIZE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a size such as 512M or 1G")
    number = float(match.group("number")) * FACTORS[match.group("unit").upper()]
    return int(number)
