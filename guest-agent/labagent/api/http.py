"""HTTP plumbing: requests with query/body helpers, JSON replies, chunked streams, hijacks.

One thread per connection (ThreadingUnixStreamServer); a client that vanishes mid-stream
only ends its own thread. Requests are read within limits.Limits: bounded heads and bodies
(wire.py), timeouts on a client that stalls (timedio.py), a cap on connections.

Connections persist (HTTP/1.1, or HTTP/1.0 with keep-alive) and pipelined requests are
answered in order; each reply says `Connection: close` when the server will close after it,
and a close is a half-close, then a short drain of the client's input, so the client reads
an end of file and never a reset (see Server.shutdown_request).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import queue
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .. import API_VERSION, ENGINE_VERSION
from ..errors import BadParameter, EngineError
from .limits import Limits
from .timedio import TimedReader
from .wire import body_length, read_chunked, read_exactly, read_head

if TYPE_CHECKING:
    from ..interface import EngineInterface

log = logging.getLogger(__name__)
# A closing connection reads what the client still sends for up to LINGER seconds and
# LINGER_BYTES bytes (see Server.shutdown_request); a client that reads our end of file
# closes at once, so this is only spent on one that keeps writing or keeps the socket.
LINGER = 2.0
LINGER_BYTES = 1 << 20


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


class Sink(Protocol):
    """The connection's buffered write side (socket.makefile("wb"))."""

    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> object: ...


class StreamWriter:
    """A response body sent as it is produced (chunked for HTTP/1.1, raw after a hijack)."""

    def __init__(self, wfile: Sink, chunked: bool) -> None:
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
        self.limits: Limits = handler.server.limits
        self.method = handler.command
        self.path = path
        self.version = version
        self.headers = handler.headers
        query = parse_qs(urlsplit(handler.path).query, keep_blank_values=True)
        self.query = {k: v[-1] for k, v in query.items()}
        self.streamed = False
        self.hijacked = False
        self._length = handler.body_length  # None: chunked
        self._body_done = self._length == 0
        self._body_started = False
        self._continued = False

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
    def body_chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The request body in pieces, plain or chunked, refused (413) past `limit` bytes.

        The default limit is the upload cap: the callers that take no limit (docker load, a
        build context) stream to disk. The body counts as consumed only once read to its end;
        otherwise the connection is closed after the reply.
        """
        limit = self.limits.max_upload if limit is None else limit
        if self._body_done:
            return
        if self._length is not None and self._length > limit:
            raise EngineError(f"request body of {self._length} bytes exceeds the limit of {limit} bytes", 413)
        if self._body_started:
            raise EngineError("the request body was already read in part", 500)
        self._body_started = True  # from here a body cut off midway cannot be resumed
        self._send_continue()
        rfile, length = self.handler.rfile, self._length
        pieces = read_chunked(rfile, self.limits, limit) if length is None else read_exactly(rfile, length)
        try:
            yield from pieces
        except TimeoutError:
            raise EngineError(f"the request body stalled for {self.limits.io_timeout:g} s", 408) from None
        self._body_done = True

    def _send_continue(self) -> None:
        """Answer `Expect: 100-continue` (curl's large uploads) once the body is wanted."""
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.handler.request_version == "HTTP/1.1" and not self._continued:
            self._continued = True
            self.handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.handler.wfile.flush()

    def body(self, limit: int | None = None) -> bytes:
        """The whole body in memory: for JSON documents, so bounded by max_json_body by default."""
        data = bytearray()
        for chunk in self.body_chunks(self.limits.max_json_body if limit is None else limit):
            data += chunk
        return bytes(data)

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

    def finish_body(self, limit: int) -> bool:
        """Read and drop what the endpoint left of the body, so the next request can follow.

        A 404 or 409 for a request whose body was never wanted is still an answer on an
        intact connection, as with Docker. False when the connection cannot be kept: more
        than `limit` bytes left, a client still waiting for `100 Continue`, broken framing.
        """
        if self._body_done:
            return True
        if self._body_started or (self._length is not None and self._length > limit):
            return False
        if (self.headers.get("Expect") or "").lower() == "100-continue" and not self._continued:
            return False
        try:
            for _ in self.body_chunks(limit):
                pass
        except (EngineError, OSError):
            return False
        return self._body_done

    # replies that stream ----------------------------------------------------------------
    def stream(self, content_type: str, status: int = 200) -> StreamWriter:
        """Send headers now and the body as it comes (the held-open wait, logs -f).

        From here the engine is the side that waits (for output, an exit), so the
        connection has no timeout: a stream that is quiet for an hour is still a stream.
        """
        chunked = self.handler.request_version == "HTTP/1.1"
        self.handler.reader.settle(None)
        self.handler.send_response(status)
        self.handler.standard_headers(content_type)
        if chunked:
            self.handler.send_header("Transfer-Encoding", "chunked")
        else:  # HTTP/1.0: the body ends where the connection does
            self.handler.close_connection = True
        self.handler.connection_header()
        self.handler.end_headers()
        self.handler.wfile.flush()
        self.streamed = True
        return StreamWriter(self.handler.wfile, chunked)

    def hijack(self, content_type: str) -> StreamWriter:
        """Docker's attach/exec: 101 UPGRADED if asked for, else 200 until the connection closes."""
        h = self.handler
        h.reader.settle(None)  # as for stream(): the engine waits on the container, not the client
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
    """One connection: requests read by wire.py within the server's Limits, then dispatched."""

    protocol_version = "HTTP/1.1"
    # Buffered: a reply's headers and body leave in one write, so the client wakes once,
    # not twice (on one vCPU each wake-up is a context switch). handle_one_request
    # flushes after every request; streams and hijacks flush each write themselves.
    wbufsize = 1 << 16
    server_version = f"lab-agent/{ENGINE_VERSION}"
    sys_version = ""
    body_length: int | None = 0
    server: Server  # the one that made this handler (socketserver types it as any BaseServer)

    def setup(self) -> None:
        """As StreamRequestHandler's, with the read side under the reader's two clocks."""
        self.connection = self.request
        self.reader = TimedReader(self.connection)
        self.rfile = io.BufferedReader(self.reader, 1 << 16)
        self.wfile = self.connection.makefile("wb", self.wbufsize)

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
        self.connection_header()
        self.end_headers()
        if self.command != "HEAD" and has_body:
            self.wfile.write(response.body)

    def connection_header(self) -> None:
        """Say what happens next: `close` before a close, `keep-alive` to an HTTP/1.0 client that asked."""
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A Docker-style JSON error, then the connection closes (what follows is not trusted)."""
        self.close_connection = True
        body = json.dumps({"message": message or HTTPStatus(code).phrase}).encode() + b"\n"
        try:
            self.reader.settle(self.server.limits.io_timeout)
            self.send_response(code)
            self.standard_headers("application/json", len(body))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError as exc:
            log.debug("cannot send %d: %s", code, exc)

    def handle_one_request(self) -> None:
        """Read one request head within bounds, settle its body's framing, dispatch it."""
        limits = self.server.limits
        self.close_connection = True  # until a whole head says otherwise
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
        self.reader.await_request(limits.idle_timeout, limits.head_timeout)
        try:
            head = read_head(self.rfile, limits)
            if head is None:
                return
            self.command, self.path, self.request_version = head.method, head.target, head.version
            self.requestline, self.headers = head.requestline, head.headers
            self.body_length = body_length(head.headers, limits)
        except EngineError as exc:
            self.send_error(exc.status, exc.message)
            return
        except TimeoutError:
            if self.reader.started:  # silence on an idle kept-alive connection is no error
                self.send_error(408, f"request head not received within {limits.head_timeout:g} s")
            return
        except (ConnectionResetError, BrokenPipeError) as exc:
            log.debug("client went away: %s", exc)
            return
        self.close_connection = not head.keep_alive
        self.reader.settle(limits.io_timeout)
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"unsupported method {self.command}")
            return
        try:
            method()
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.debug("client went away: %s", exc)
            self.close_connection = True

    def _dispatch(self) -> None:
        """Serve one request. Whether the connection stays is settled before the reply is
        sent, so the reply says it (a client told nothing reuses the connection)."""
        request, response = self.server.dispatch(self)
        if request is None or request.hijacked or self.close_connection:
            self.close_connection = True  # what is left of the body is drained at the close
        elif not request.finish_body(self.server.limits.max_json_body):
            self.close_connection = True
        if response is not None and (request is None or not request.streamed):
            self.send(response)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _dispatch

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# Serves one parsed request: the request (None if its head was unusable) and the reply to
# send (None once the endpoint streamed its own). The router's dispatch is one.
Dispatch = Callable[[Handler], tuple[Request | None, Response | None]]


class Server(socketserver.ThreadingUnixStreamServer):
    """One thread per connection, as ThreadingMixIn does, but threads are kept for reuse.

    Starting a thread cost about 2 ms under TCG, paid on every API call (the docker CLI
    opens a connection per request). A finished connection's thread waits IDLE_EXIT
    seconds for the next one; a connection that finds no idle thread starts a new one,
    so a held-open stream (logs -f, attach, wait) never blocks anyone else. At most
    limits.max_connections are served at once: one more gets a 503 from the accepting
    thread, without blocking it, and is closed.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    IDLE_EXIT = 60.0

    def __init__(self, path: str, engine: EngineInterface, dispatch: Dispatch, limits: Limits | None = None) -> None:
        self.engine = engine
        self.dispatch = dispatch
        self.limits = limits or Limits()
        self._work: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._idle = 0
        self._active = 0
        self._idle_lock = threading.Lock()
        super().__init__(path, Handler)

    @property
    def active(self) -> int:
        """Connections being served now."""
        return self._active

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            full = self._active >= self.limits.max_connections
            if not full:
                self._active += 1
                spare = self._idle > 0
                if spare:
                    self._idle -= 1
        if full:
            self._refuse(request)
            return
        self._work.put((request, client_address))
        if not spare:
            threading.Thread(target=self._worker, daemon=True).start()

    def shutdown_request(self, request: Any) -> None:
        """End a connection so the client reads an end of file, never a reset.

        The write side is shut first (the client sees the reply end), then what the client
        still sends is read and dropped for a moment: closing a socket with unread input makes
        the kernel report ECONNRESET to the peer in place of the end of file.
        """
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
        drain(request, LINGER, LINGER_BYTES)
        self.close_request(request)

    def _refuse(self, request: socket.socket) -> None:
        """503 without reading: the reply fits the socket buffer, so it never blocks accept()."""
        body = json.dumps({"message": f"the engine is serving {self.limits.max_connections} connections, "
                                      "its limit: retry later"}).encode() + b"\n"
        reply = (f"HTTP/1.1 503 Service Unavailable\r\nApi-Version: {API_VERSION}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                 "Connection: close\r\n\r\n").encode() + body
        try:
            request.setblocking(False)
            request.send(reply)
            request.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.debug("cannot send the 503: %s", exc)
        drain(request, 0.0, LINGER_BYTES)  # what already came, without blocking accept()
        self.close_request(request)

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
            try:
                self.process_request_thread(request, client_address)
            finally:
                with self._idle_lock:
                    self._active -= 1
                    self._idle += 1


def drain(sock: socket.socket, seconds: float, budget: int) -> None:
    """Read and drop the client's input until its end of file, `seconds` or `budget` bytes."""
    deadline = time.monotonic() + seconds
    try:
        while budget > 0:
            left = deadline - time.monotonic()
            if left > 0:
                sock.settimeout(left)
            else:
                sock.setblocking(False)
            data = sock.recv(min(budget, 1 << 16))
            if not data:
                return
            budget -= len(data)
    except OSError:  # timeout, nothing more without blocking, or the client is gone
        return


def engine_error_response(exc: EngineError) -> Response:
    if exc.status == 304:
        return Response(304)
    return error_response(exc.message, exc.status)
