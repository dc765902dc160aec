"""`.dockerignore` patterns, with Docker's rules: one pattern a line, `#` comments, blank lines and
surrounding blanks dropped, `!` for exceptions (the last pattern that matches decides), `*`, `?`,
`[...]` within one path component, `**` across any number of them, and a path excluded when one
of its parents is."""

from __future__ import annotations

import posixpath
import re

MAX_PATTERNS = 10_000


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` is zero or more directories
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:close].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
                i = close
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def patterns(lines: list[str]) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) for each pattern line, in order."""
    out: list[tuple[bool, re.Pattern[str]]] = []
    for line in lines[:MAX_PATTERNS]:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        text = text[1:].strip() if negate else text
        text = posixpath.normpath(text).lstrip("/")
        if text and text != ".":
            out.append((negate, _regex(text)))
    return out


def ignored(lines: list[str], path: str) -> bool:
    """Whether path (relative to the context) is excluded by the .dockerignore lines."""
    rules = patterns(lines)
    parts = posixpath.normpath(path).strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded
