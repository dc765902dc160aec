"""A minimal Docker-API client over the engine's unix socket (http.client, stdlib only)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote, urlencode

from . import API_VERSION, contract
from .containers.logs import read_frames

DEFAULT_SOCKET = contract.SOCKET


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Client:
    def __init__(self, path: str | None = None, timeout: float | None = None) -> None:
        self.path = path or os.environ.get(contract.SOCKET_ENV, DEFAULT_SOCKET)
        self.timeout = timeout  # per socket operation; None waits as long as the engine takes

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                raw: bytes | IO[bytes] | None = None, length: int | None = None,
                close: bool = False) -> http.client.HTTPResponse:
        """Send a request; raise ApiError for Docker-style error replies.

        close=True asks the engine to close the connection after its reply, so its thread
        is free for the next connection at once (what a measurement of one request wants).
        """
        url = f"/v{API_VERSION}{path}"
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Host": "localhost"}
        if close:
            headers["Connection"] = "close"
        data: Any = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if length is not None:
            headers["Content-Length"] = str(length)
        conn = UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, url, body=data, headers=headers)
            response = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ApiError(0, f"cannot reach the engine at {self.path}: {exc.strerror}") from None
        if response.status >= 400:
            text = response.read()
            try:
                message = json.loads(text).get("message") or text.decode()
            except ValueError:
                message = text.decode(errors="replace").strip() or response.reason
            raise ApiError(response.status, message)
        return response

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        response = self.request(method, path, query, body)
        text = response.read()
        return json.loads(text) if text.strip() else None

    def frames(self, method: str, path: str, query: dict[str, Any] | None = None,
               body: Any = None) -> Iterator[tuple[int, bytes]]:
        """A multiplexed stream (logs, exec) as (stream, data) pairs, as they arrive."""
        response = self.request(method, path, query, body)
        yield from read_frames(response.read1 if hasattr(response, "read1") else response.read)

    @staticmethod
    def ref(name: str) -> str:
        return quote(name, safe="")
