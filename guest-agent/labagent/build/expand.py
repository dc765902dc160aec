"""Build-time variable expansion: `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `\\$`.

Docker expands ENV and ARG values in most instructions (not in RUN, CMD, ENTRYPOINT, whose shell
does it). Unset names expand to nothing, as in Docker; a malformed `${` is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import BadParameter


def _name_end(word: str, start: int) -> int:
    end = start
    while end < len(word) and (word[end].isalnum() or word[end] == "_"):
        end += 1
    return end


def expand(word: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        char = word[i]
        if char == "\\" and i + 1 < len(word) and word[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if char != "$" or i + 1 >= len(word):
            out.append(char)
            i += 1
            continue
        if word[i + 1] == "{":
            close = word.find("}", i + 2)
            if close < 0:
                raise BadParameter(f"missing '}}' in {word!r}")
            body = word[i + 2:close]
            name, op, alt = body, "", ""
            for sep in (":-", ":+"):
                if sep in body:
                    name, alt = body.split(sep, 1)
                    op = sep
                    break
            if not name or _name_end(name, 0) != len(name):
                raise BadParameter(f"bad substitution ${{{body}}} in {word!r}")
            value = env.get(name, "")
            if op == ":-":
                value = value or expand(alt, env)
            elif op == ":+":
                value = expand(alt, env) if value else ""
            out.append(value)
            i = close + 1
            continue
        end = _name_end(word, i + 1)
        if end == i + 1:
            out.append(char)
            i += 1
            continue
        out.append(env.get(word[i + 1:end], ""))
        i = end
    return "".join(out)
