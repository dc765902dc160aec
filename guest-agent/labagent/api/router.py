"""Matching requests to endpoints: the areas' route tables, API-version prefixes, error bodies.

Each area module (tables.py lists them) exports ROUTES, a table of
(method, pattern, endpoint); tables.py lists the tables, and a Router is built from that
list, so an endpoint is served only if a table names it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .. import API_VERSION, MIN_API_VERSION
from ..containers.lifecycle import ClientGone
from ..errors import EngineError
from .http import Request, Response, engine_error_response, error_response

if TYPE_CHECKING:
    from .http import Handler

log = logging.getLogger(__name__)
VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
# endpoint(engine, request, **path_parameters): a Response, or None once it streamed its own reply
Endpoint = Callable[..., Response | None]
Route = tuple[str, str, Endpoint]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`{name}` captures one path segment, `{name*}` the rest (image names have slashes)."""
    pattern = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def split_version(raw_path: str) -> tuple[str, str | None]:
    path = unquote(urlsplit(raw_path).path)
    match = VERSIONED.match(path)
    if match:
        return match.group(2), match.group(1)
    return path, None


def check_version(version: str | None) -> Response | None:
    if version is None:
        return None
    if _version_tuple(version) > _version_tuple(API_VERSION):
        return error_response(f"client version {version} is too new. Maximum supported API version "
                              f"is {API_VERSION}", 400)
    if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
        return error_response(f"client version {version} is too old. Minimum supported API version "
                              f"is {MIN_API_VERSION}, please upgrade your client to a newer version", 400)
    return None


class Router:
    """The routes of the given tables, tried in order: the first match serves."""

    def __init__(self, tables: Iterable[Sequence[Route]]) -> None:
        self.routes = [(method, compile_pattern(pattern), endpoint)
                       for table in tables for method, pattern, endpoint in table]

    def endpoints(self) -> list[Endpoint]:
        return [endpoint for _, _, endpoint in self.routes]

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for verb, regex, endpoint in self.routes:
            found = regex.match(path)
            if found and verb == method:
                return endpoint, found.groupdict()
        return None

    def dispatch(self, handler: Handler) -> tuple[Request | None, Response | None]:
        """Serve one request; Docker's JSON error bodies for what fails (none once streamed)."""
        path, version = split_version(handler.path)
        try:
            request = Request(handler, path, version)
        except EngineError as exc:
            return None, engine_error_response(exc)
        bad_version = check_version(version)
        if bad_version:
            return request, bad_version
        found = self.match("GET" if handler.command == "HEAD" else handler.command, path)
        if found is None:
            return request, error_response("page not found", 404)
        endpoint, params = found
        try:
            return request, endpoint(handler.server.engine, request, **params)
        except ClientGone:
            handler.close_connection = True
            return request, None
        except EngineError as exc:
            if request.streamed:
                handler.close_connection = True
                return request, None
            return request, engine_error_response(exc)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception("%s %s failed", handler.command, path)
            if request.streamed:
                handler.close_connection = True
                return request, None
            return request, error_response(str(exc) or exc.__class__.__name__, 500)
