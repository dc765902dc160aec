"""Parse a Containerfile: the classic builder's instructions, each checked, with its options.

Errors name the line, since that is what the user has to fix. Sizes are bounded: the file, the
number of instructions, and one instruction (continuations joined) to what exec(2) takes as one
argument, since a RUN in shell form is one.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from ..errors import BadParameter

KNOWN = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL",
         "USER", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD")
MAX_STAGES = 50
MAX_BYTES = 1 << 20  # the Containerfile itself
MAX_INSTRUCTIONS = 1000
MAX_LINE = 128 << 10  # MAX_ARG_STRLEN: the kernel refuses a longer argument to exec(2)


@dataclass(frozen=True)
class Instruction:
    line: int
    verb: str
    raw: str  # the arguments as written, for the cache key and the progress lines
    args: tuple[str, ...] = ()  # exec form or split words
    shell: bool = False  # RUN/CMD/ENTRYPOINT written in shell form
    options: tuple[tuple[str, str], ...] = ()  # --name=value options (COPY --from, HEALTHCHECK --interval)

    def __str__(self) -> str:
        return f"{self.verb} {self.raw}"


def _fail(line: int, message: str) -> BadParameter:
    return BadParameter(f"Containerfile line {line}: {message}")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines; keep the first line number."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = size = 0
    for number, line in enumerate(text.splitlines(), 1):
        if "\0" in line:
            raise _fail(number, "a NUL character: a Containerfile is text")
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if not current:
            start, size = number, 0
        size += len(stripped) + 1
        if size > MAX_LINE:
            raise _fail(start, f"the instruction is longer than {MAX_LINE} characters")
        if stripped.endswith("\\"):
            current.append(stripped[:-1].rstrip() + " ")
            continue
        current.append(stripped)
        out.append((start, "".join(current)))
        if len(out) > MAX_INSTRUCTIONS:
            raise BadParameter(f"the Containerfile has more than {MAX_INSTRUCTIONS} instructions")
        current = []
    if current and "".join(current).strip():
        out.append((start, "".join(current).strip()))
    return out


def _command(line: int, verb: str, raw: str) -> Instruction:
    if raw.startswith("["):
        try:
            argv = json.loads(raw)
        except ValueError:
            raise _fail(line, f"{verb}: invalid JSON array {raw!r}") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not argv:
            raise _fail(line, f"{verb}: want a non-empty JSON array of strings")
        return Instruction(line, verb, raw, tuple(argv))
    return Instruction(line, verb, raw, ("/bin/sh", "-c", raw), shell=True)


def _pairs(line: int, verb: str, raw: str) -> tuple[str, ...]:
    """ENV/LABEL: `k=v k2="v 2"` or the legacy `k v` form, as flat (k, v, ...) words."""
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise _fail(line, f"{verb}: {exc}") from None
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise _fail(line, f"{verb} needs a value: {verb} NAME=value")
        return (words[0], raw.split(None, 1)[1])
    flat: list[str] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise _fail(line, f"{verb}: {word!r} is not NAME=value")
        flat += [key, value]
    return tuple(flat)


def port(line: int, word: str) -> str:
    """An EXPOSE word as Docker records it: `80` is `80/tcp`."""
    number, _, proto = word.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp"):
        raise _fail(line, f"EXPOSE: invalid port {word!r}")
    return f"{int(number)}/{proto or 'tcp'}"


def _options(line: int, verb: str, raw: str, allowed: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], str]:
    """Leading `--name=value` words: the allowed ones kept, any other refused naming the line."""
    options: list[tuple[str, str]] = []
    while raw.startswith("--"):
        word, _, rest = raw.partition(" ")
        name, sep, value = word[2:].partition("=")
        if name not in allowed:
            raise _fail(line, f"{verb} --{name} is not supported")
        if not sep or not value:
            raise _fail(line, f"{verb} --{name} needs a value: --{name}=VALUE")
        options.append((name, value))
        raw = rest.strip()
    return tuple(options), raw


def _words(line: int, verb: str, raw: str) -> tuple[str, ...]:
    """COPY/ADD/VOLUME arguments: a JSON array, or words split at blanks."""
    if raw.startswith("["):
        return _command(line, verb, raw).args
    return tuple(raw.split())


def _instruction(line: int, verb: str, raw: str) -> Instruction:
    if verb in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if verb == "RUN" and raw.startswith("--"):
            word = raw.split(None, 1)[0].split("=", 1)[0]
            raise _fail(line, f"RUN {word} is not supported (the classic builder has no RUN options)")
        step = _command(line, verb, raw)
        if verb == "SHELL" and step.shell:
            raise _fail(line, "SHELL wants a JSON array: SHELL [\"/bin/sh\", \"-c\"]")
        return step
    if verb in ("ENV", "LABEL"):
        return Instruction(line, verb, raw, _pairs(line, verb, raw))
    if verb in ("COPY", "ADD"):
        options, rest = _options(line, verb, raw, ("from",) if verb == "COPY" else ())
        words = _words(line, verb, rest)
        if len(words) < 2:
            raise _fail(line, f"{verb} needs a source and a destination")
        return Instruction(line, verb, raw, words, options=options)
    if verb == "FROM":
        if raw.startswith("--"):
            raise _fail(line, "FROM --platform is not supported: this node builds for its own platform")
        words = tuple(raw.split())
        if len(words) == 3 and words[1].lower() == "as":
            words = (words[0], words[2].lower())
        elif len(words) != 1:
            raise _fail(line, "FROM takes an image and an optional AS name")
        return Instruction(line, verb, raw, words)
    if verb == "EXPOSE":
        return Instruction(line, verb, raw, tuple(w if "$" in w else port(line, w) for w in raw.split()))
    if verb == "ARG":
        name, sep, default = raw.partition("=")
        if not name or " " in name.strip() or not name.replace("_", "a").isalnum():
            raise _fail(line, f"ARG: {name!r} is not a name")
        return Instruction(line, verb, raw, (name, default) if sep else (name,))
    if verb == "VOLUME":
        return Instruction(line, verb, raw, _words(line, verb, raw))
    if verb == "HEALTHCHECK":
        options, rest = _options(line, verb, raw, ("interval", "timeout", "start-period", "start-interval",
                                                   "retries"))
        kind, _, command = rest.partition(" ")
        if kind.upper() == "NONE" and not command.strip() and not options:
            return Instruction(line, verb, raw, ("NONE",))
        if kind.upper() != "CMD" or not command.strip():
            raise _fail(line, "HEALTHCHECK wants NONE or [OPTIONS] CMD command")
        step = _command(line, verb, command.strip())
        args = ("CMD-SHELL", command.strip()) if step.shell else ("CMD", *step.args)
        return Instruction(line, verb, raw, args, options=options)
    if verb == "ONBUILD":
        inner, _, rest = raw.partition(" ")
        if inner.upper() in ("ONBUILD", "FROM", "MAINTAINER"):
            raise _fail(line, f"ONBUILD {inner.upper()} is not allowed")
        if inner.upper() not in KNOWN:
            raise _fail(line, f"ONBUILD: unknown instruction {inner!r}")
        _instruction(line, inner.upper(), rest.strip())  # checked now, run when an image builds on it
        return Instruction(line, verb, raw, (f"{inner.upper()} {rest.strip()}",))
    return Instruction(line, verb, raw, (raw,))  # WORKDIR USER STOPSIGNAL


def parse(text: str) -> list[Instruction]:
    if len(text) > MAX_BYTES:
        raise BadParameter(f"the Containerfile is larger than {MAX_BYTES} bytes")
    steps: list[Instruction] = []
    stages = 0
    for line, content in _logical_lines(text.removeprefix("\ufeff")):  # a BOM, as Docker drops it
        verb, _, raw = content.partition(" ")
        verb, raw = verb.upper(), raw.strip()
        if verb not in KNOWN:
            raise _fail(line, f"unknown instruction {verb!r} (supported: {' '.join(KNOWN)})")
        if not raw:
            raise _fail(line, f"{verb} needs arguments")
        if not steps and verb not in ("FROM", "ARG"):
            raise _fail(line, f"the first instruction must be FROM, not {verb}")
        if verb == "FROM":
            stages += 1
            if stages > MAX_STAGES:
                raise _fail(line, f"more than {MAX_STAGES} build stages")
        steps.append(_instruction(line, verb, raw))
    if not steps or not any(s.verb == "FROM" for s in steps):
        raise BadParameter("the Containerfile has no FROM instruction")
    return steps
