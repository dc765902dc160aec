"""Docker's detach keys: the input sequence (ctrl-p,ctrl-q by default) that lets a client go.

A TTY session's input is scanned for the sequence; bytes that might begin it are held back
until they do not, so a lone ctrl-p still reaches the process once the next byte shows it
was not the start of a detach.
"""

from __future__ import annotations

from ..errors import BadParameter

DEFAULT = b"\x10\x11"  # ctrl-p, ctrl-q
CTRL_NAMED = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
MAX_KEYS = 32


def parse(text: str, field: str = "DetachKeys") -> bytes:
    """"ctrl-p,ctrl-q" -> b"\\x10\\x11"; each key is one character or ctrl-<letter or @[\\]^_>."""
    keys = bytearray()
    for key in text.split(","):
        lowered = key.lower()
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif lowered.startswith("ctrl-") and len(key) == 6 and "a" <= lowered[5] <= "z":
            keys.append(ord(lowered[5]) - ord("a") + 1)
        elif lowered.startswith("ctrl-") and len(key) == 6 and key[5] in CTRL_NAMED:
            keys.append(CTRL_NAMED[key[5]])
        else:
            raise BadParameter(f"Invalid detach keys ({text[:64]}) provided: {field} wants keys "
                               "like ctrl-p,ctrl-q (a character or ctrl-<a-z@[\\]^_> each)")
        if len(keys) > MAX_KEYS:
            raise BadParameter(f"{field}: at most {MAX_KEYS} detach keys")
    return bytes(keys)


class Scanner:
    """Feed input through; it says what to pass on, and when the sequence was typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes for the process, detached?). On a detach, what followed the keys is dropped."""
        if not self.keys:
            return data, False
        out = bytearray()
        for value in data:
            byte = bytes([value])
            if not self.keys.startswith(self.held + byte):
                out += self.held  # not the sequence after all: the held bytes were input
                self.held = b""
                if not self.keys.startswith(byte):
                    out += byte
                    continue
            self.held += byte
            if self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False
