"""HTTP plumbing: requests with query/body helpers, JSON replies, chunked streams, hijacks.

One thread per connection (ThreadingUnixStreamServer); a client that vanishes mid-stream
only ends its own thread.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from .. import API_VERSION, ENGINE_VERSION
from ..errors import BadParameter, EngineError

log = logging.getLogger(__name__)
JSON_LIMIT = 16 << 20


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode() + b"\n")


def error_response(message: str, status: int) -> Response:
    return json_response({"message": message}, status)


class StreamWriter:
    """A response body sent as it is produced (chunked for HTTP/1.1, raw after a hijack)."""

    def __init__(self, wfile: IO[bytes], chunked: bool) -> None:
        self.wfile = wfile
        self.chunked = chunked

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)
        self.wfile.flush()

    def close(self) -> None:
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


class Request:
    def __init__(self, handler: Handler, path: str, version: str | None) -> None:
        self.handler = handler
        self.method = handler.command
        self.path = path
        self.version = version
        self.headers = handler.headers
        query = parse_qs(urlsplit(handler.path).query, keep_blank_values=True)
        self.query = {k: v[-1] for k, v in query.items()}
        self.streamed = False
        self.hijacked = False
        self._body_done = self._body_length() == 0 and not self._chunked()

    # query ------------------------------------------------------------------------------
    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        return value.lower() in ("1", "true", "yes", "on")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.query.get(name, "")
        if value in ("", "all"):
            return default
        try:
            return int(value)
        except ValueError:
            raise BadParameter(f"invalid value for {name}: {value!r}") from None

    # body -------------------------------------------------------------------------------
    def _body_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadParameter("invalid Content-Length") from None

    def _chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    def body_chunks(self) -> Any:
        """Yield the request body in pieces, plain or chunked."""
        rfile = self.handler.rfile
        self._body_done = True
        if self._chunked():
            while True:
                size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline().strip():
                        pass
                    return
                yield from _read_exactly(rfile, size)
                rfile.readline()
        else:
            yield from _read_exactly(rfile, self._body_length())

    def body(self, limit: int = JSON_LIMIT) -> bytes:
        data = b""
        for chunk in self.body_chunks():
            data += chunk
            if len(data) > limit:
                raise BadParameter("request body too large")
        return data

    def json(self) -> Any:
        raw = self.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadParameter(f"invalid JSON body: {exc}") from None

    @property
    def body_consumed(self) -> bool:
        return self._body_done

    # replies that stream ----------------------------------------------------------------
    def stream(self, content_type: str, status: int = 200) -> StreamWriter:
        """Send headers now and the body as it comes (the held-open wait, logs -f)."""
        chunked = self.handler.request_version == "HTTP/1.1"
        self.handler.send_response(status)
        self.handler.standard_headers(content_type)
        if chunked:
            self.handler.send_header("Transfer-Encoding", "chunked")
        else:
            self.handler.close_connection = True
        self.handler.end_headers()
        self.handler.wfile.flush()
        self.streamed = True
        return StreamWriter(self.handler.wfile, chunked)

    def hijack(self, content_type: str) -> StreamWriter:
        """Docker's attach/exec: 101 UPGRADED if asked for, else 200 until the connection closes."""
        h = self.handler
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        if upgrade:
            h.wfile.write(b"HTTP/1.1 101 UPGRADED\r\n")
            h.wfile.write(f"Content-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n".encode())
            h.wfile.write(f"Api-Version: {API_VERSION}\r\n\r\n".encode())
        else:
            h.send_response(200)
            h.standard_headers(content_type)
            h.send_header("Connection", "close")
            h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        self.streamed = self.hijacked = True
        return StreamWriter(h.wfile, chunked=False)

    def client_gone(self) -> bool:
        """True once the peer has gone (checked while we hold a request open).

        After a hijack the docker CLI half-closes its side when it has no stdin to send, so
        there only a full close (POLLHUP) counts; before it, end-of-file means gone.
        """
        sock: socket.socket = self.handler.connection
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            events = poller.poll(0)
            revents = events[0][1] if events else 0
            if revents & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return True
            if not revents & select.POLLIN or self.hijacked:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: a reply's headers and body leave in one write, so the client wakes once,
    # not twice (on one vCPU each wake-up is a context switch). handle_one_request
    # flushes after every request; streams and hijacks flush each write themselves.
    wbufsize = 1 << 16
    server_version = f"lab-agent/{ENGINE_VERSION}"
    sys_version = ""

    def standard_headers(self, content_type: str = "", length: int | None = None) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))

    def send(self, response: Response) -> None:
        self.send_response(response.status)
        has_body = response.status not in (204, 304)
        self.standard_headers(response.content_type if has_body else "",
                              len(response.body) if has_body else None)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and has_body:
            self.wfile.write(response.body)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.debug("client went away: %s", exc)
            self.close_connection = True

    def _dispatch(self) -> None:
        from .router import dispatch  # late: the router imports the routes, which import us

        request, response = dispatch(self)
        if request is not None and not request.streamed and response is not None:
            self.send(response)
        if request is None or not request.body_consumed:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _dispatch

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class Server(socketserver.ThreadingUnixStreamServer):
    """One thread per connection, as ThreadingMixIn does, but threads are kept for reuse.

    Starting a thread cost about 2 ms under TCG, paid on every API call (the docker CLI
    opens a connection per request). A finished connection's thread waits IDLE_EXIT
    seconds for the next one; a connection that finds no idle thread starts a new one,
    so a held-open stream (logs -f, attach, wait) never blocks anyone else.
    """

    daemon_threads = True
    block_on_close = False
    IDLE_EXIT = 60.0

    def __init__(self, path: str, engine: Any) -> None:
        self.engine = engine
        self._work: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._idle = 0
        self._idle_lock = threading.Lock()
        super().__init__(path, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            spare = self._idle > 0
            if spare:
                self._idle -= 1
        self._work.put((request, client_address))
        if not spare:
            threading.Thread(target=self._worker, daemon=True).start()

    def _worker(self) -> None:
        while True:
            try:
                request, client_address = self._work.get(timeout=self.IDLE_EXIT)
            except queue.Empty:
                with self._idle_lock:
                    if self._idle > 0 and self._work.empty():
                        self._idle -= 1
                        return
                continue
            self.process_request_thread(request, client_address)
            with self._idle_lock:
                self._idle += 1


def engine_error_response(exc: EngineError) -> Response:
    if exc.status == 304:
        return Response(304)
    return error_response(exc.message, exc.status)


def _read_exactly(rfile: Any, size: int) -> Iterator[bytes]:
    """`size` bytes of a request body, in chunks; a client that stops early is gone."""
    remaining = size
    while remaining:
        data = rfile.read(min(remaining, 1 << 20))
        if not data:
            raise ConnectionResetError("request body cut short")
        remaining -= len(data)
        yield data
