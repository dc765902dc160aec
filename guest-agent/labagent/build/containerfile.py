"""Parse the Containerfile subset: FROM RUN COPY ENV WORKDIR CMD ENTRYPOINT EXPOSE LABEL.

Errors name the line, since that is what the user has to fix. Sizes are bounded: the file, the
number of instructions, and one instruction (continuations joined) to what exec(2) takes as one
argument, since a RUN in shell form is one.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from ..errors import BadParameter

KNOWN = ("FROM", "RUN", "COPY", "ENV", "WORKDIR", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL")
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


def parse(text: str) -> list[Instruction]:
    if len(text) > MAX_BYTES:
        raise BadParameter(f"the Containerfile is larger than {MAX_BYTES} bytes")
    steps: list[Instruction] = []
    for line, content in _logical_lines(text.removeprefix("\ufeff")):  # a BOM, as Docker drops it
        verb, _, raw = content.partition(" ")
        verb, raw = verb.upper(), raw.strip()
        if verb not in KNOWN:
            raise _fail(line, f"unknown instruction {verb!r} (supported: {' '.join(KNOWN)})")
        if not raw:
            raise _fail(line, f"{verb} needs arguments")
        if not steps and verb != "FROM":
            raise _fail(line, f"the first instruction must be FROM, not {verb}")
        if verb in ("RUN", "CMD", "ENTRYPOINT"):
            steps.append(_command(line, verb, raw))
        elif verb in ("ENV", "LABEL"):
            steps.append(Instruction(line, verb, raw, _pairs(line, verb, raw)))
        elif verb == "COPY":
            words = tuple(raw.split())
            if any(w.startswith("--") for w in words):
                raise _fail(line, "COPY options (--from, --chown, ...) are not supported")
            if len(words) < 2:
                raise _fail(line, "COPY needs a source and a destination")
            steps.append(Instruction(line, verb, raw, words))
        elif verb == "FROM":
            words = tuple(raw.split())
            if len(words) != 1:
                raise _fail(line, "FROM takes one image (no AS stages, no --platform)")
            steps.append(Instruction(line, verb, raw, words))
        elif verb == "EXPOSE":
            ports = []
            for word in raw.split():
                port, _, proto = word.partition("/")
                if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp"):
                    raise _fail(line, f"EXPOSE: invalid port {word!r}")
                ports.append(f"{int(port)}/{proto or 'tcp'}")
            steps.append(Instruction(line, verb, raw, tuple(ports)))
        else:  # WORKDIR
            steps.append(Instruction(line, verb, raw, (raw,)))
    if not steps:
        raise BadParameter("the Containerfile has no instructions")
    return steps
