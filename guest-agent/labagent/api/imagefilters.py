"""The image list's and prune's `reference` patterns (`until` times: api/timestamps.py).

`reference` patterns follow Go's path.Match (as dockerd's FamiliarMatch does): `*` and `?`
stop at a slash, so `me/*` matches `me/app:1` but not `me/a/b`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import BadParameter

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
