"""The one place shared/ meets the web framework: routing, JSON bodies and problem+json.

A function module declares routes on a ``Router`` and its entry point calls
``router.handle(request)``. Paths are matched relative to the function, with or without the
function's own name in front (``/registry/skills`` and ``/skills`` are the same route), so the
same code serves behind the local dispatcher, ``functions-framework --target`` and Cloud Run.
"""

from __future__ import annotations

import contextlib
import enum
import re
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import flask
import orjson
from werkzeug.exceptions import HTTPException

from shared.errors import (
    ConfigurationError,
    InvalidQuery,
    LimitExceeded,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlantError,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from shared.integrity import canonical
from shared.logs import LoggedStream, RequestLine, configure, db_time, logged_url
from shared.rules import query_params
from shared.security.authenticators import authenticator
from shared.security.principal import Principal
from shared.web.bodies import MAX_BODY as MAX_BODY  # where callers have always found it
from shared.web.bodies import RequestBody

log = configure().getChild("http")

BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
JSON = "application/json"


def private_cache(seconds: int) -> dict[str, str]:
    """Headers letting the caller's own cache keep a response ``seconds``, never a shared one:
    every answer but healthz and the OpenAPI document is one tenant's (the Router adds
    ``Vary: Authorization`` to those)."""
    return {"Cache-Control": f"private, max-age={seconds}"}


class Body(enum.Enum):
    """What a route takes as its body."""

    NONE = "none"  # a body sent anyway is refused (400): nothing is silently ignored
    JSON = "json"  # required
    OPTIONAL_JSON = "optional json"  # None when absent
    RAW = "raw"  # the bytes as sent (a protocol of its own, e.g. C2SP tlog-witness)


class Call:
    """One request as a handler sees it: path parameters, query, body and caller.

    The Router authenticates the caller (and checks the route's roles) before it reads the
    body, and reads the body before the handler runs: ``body`` is the parsed JSON."""

    def __init__(self, request: flask.Request, params: dict[str, str]) -> None:
        self.request = request
        self.params = params
        self.headers = request.headers
        # Read from the environ: a header the request lacks costs werkzeug's Headers an
        # exception raised and caught.
        self.request_id = _request_id(request.environ.get("HTTP_X_REQUEST_ID"))
        self.body: Any = None
        self._principal: Principal | None = None

    @property
    def principal(self) -> Principal:
        if self._principal is None:
            self._principal = authenticator().authenticate(self.headers)
        return self._principal

    @property
    def query(self) -> dict[str, str]:
        if not self.request.environ.get("QUERY_STRING"):
            return {}  # nothing to parse: the common case skips building request.args
        return {k: v for k, v in self.request.args.items()}


def read_json(request: flask.Request, body: RequestBody) -> Any:
    """The body as strict I-JSON: 415 unless JSON, 413 over 1 MiB, 400 if malformed or cut
    short, 422 naming the field for an integer past +-(2**53-1) or nesting past the limit."""
    sent = request.environ.get("CONTENT_TYPE")
    # The exact common value needs no parsing; anything else goes through werkzeug's parser.
    mimetype = JSON if sent == JSON else (request.mimetype or "").lower()
    if mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")
    data = body.take()
    try:
        return canonical.loads(data)
    except canonical.DepthExceeded as exc:
        raise LimitExceeded(f"the body is {exc}", field="", limit=canonical.MAX_DEPTH) from exc
    except canonical.UnsafeInteger as exc:
        raise LimitExceeded(
            f"{exc}: integers must be within +-{canonical.MAX_SAFE_INTEGER}",
            field=exc.path,
            limit=canonical.MAX_SAFE_INTEGER,
        ) from exc
    except canonical.CanonicalError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from exc


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_id(value: str | None) -> str:
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


Handler = Callable[..., flask.Response]
# Held from before the body is read until the handler returns (a slot a batch waits for).
Admission = Callable[[Principal], AbstractContextManager[None]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    body: Body = Body.NONE
    roles: tuple[str, ...] = ()  # one of them needed, checked before the body is read
    public: bool = False  # answered without a token (healthz, the OpenAPI document)
    admit: Admission | None = None
    query: tuple[str, ...] = ()  # the query parameters it takes; any other is a 422


@dataclass
class Router:
    """Routes of one function, matched in the order they were declared."""

    name: str
    routes: list[Route] = field(default_factory=list)
    # The same routes by method, each list in declaration order: a request's own method's
    # patterns are tried first (the first that matches answers, as in ``routes``), the other
    # methods' only when none does (to name them in a 405).
    by_method: dict[str, list[Route]] = field(default_factory=dict)

    def route(
        self,
        method: str,
        path: str,
        *,
        body: Body = Body.NONE,
        roles: tuple[str, ...] = (),
        public: bool = False,
        admit: Admission | None = None,
        query: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a route (``<name>``: one path segment, ``<path:name>``: the rest of the
        path, slashes included); ``query`` names the query parameters it takes (those its OpenAPI
        operation documents): the Router refuses any other with a 422 naming it, so no
        parameter is silently ignored."""
        regex = re.sub(r"<path:(\w+)>", r"(?P<\1>.+)", path.rstrip("/") or "/")
        regex = re.sub(r"(?<!\?P)<(\w+)>", r"(?P<\1>[^/]+)", regex)
        pattern = re.compile(f"^{regex}$")

        def register(handler: Handler) -> Handler:
            route = Route(method, pattern, handler, body, roles, public, admit, query)
            self.routes.append(route)
            self.by_method.setdefault(method, []).append(route)
            return handler

        return register

    def _relative(self, path: str) -> str:
        prefix = "/" + self.name
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return path.rstrip("/") or "/"

    def handle(self, request: flask.Request) -> flask.Response:
        """Dispatch one request; every error leaves as problem+json, never a stack trace."""
        started = time.perf_counter()
        db_time.set(0.0)
        RequestBody.install(request.environ)
        try:
            response = self._dispatch(request)
        except PlantError as exc:
            response = problem_response(exc)
        except ConfigurationError as exc:
            # Configuration messages name settings and secrets, never their values.
            log.error("misconfigured: %s", exc)
            response = problem_response(ServiceUnavailable("the service is misconfigured"))
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = problem_response(PlantError("an internal error occurred"))
        total = (time.perf_counter() - started) * 1000
        database_ms = db_time.get() * 1000
        response.headers["Server-Timing"] = f"db;dur={database_ms:.1f}, total;dur={total:.1f}"
        line = RequestLine(
            request.method,
            self.logged_url(request),
            started,
            request.environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"),
        )
        if response.is_streamed:
            # Logged when the server closes the body: after its last byte, or when it stopped.
            response.response = LoggedStream(response.response, line, response.status_code)
        else:
            line.write(response.status_code, response.calculate_content_length() or 0)
        return response

    def logged_url(self, request: flask.Request) -> str:
        """The path the client asked for, the function's prefix included: behind the local
        dispatcher the prefix is in SCRIPT_NAME; where the function is reached at its own
        root (functions-framework, Cloud Functions) it is put back, so every function's lines
        name it. The query is kept, as Cloud Logging's requestUrl does (no token travels in
        one: tokens are headers), cut to MAX_LOGGED_URL characters."""
        path = request.script_root + request.path
        prefix = "/" + self.name
        if path != prefix and not path.startswith(prefix + "/"):
            path = prefix + path
        return logged_url(path, request.query_string)

    def _dispatch(self, request: flask.Request) -> flask.Response:
        path = self._relative(request.path)
        for route in self.by_method.get(request.method, ()):
            match = route.pattern.match(path)
            if match is not None:
                return self._call(route, request, match.groupdict())
        allowed = [r.method for r in self.routes if r.pattern.match(path) is not None]
        if allowed:
            raise MethodNotAllowed(
                f"use {', '.join(sorted(set(allowed)))}", allow=sorted(set(allowed))
            )
        raise NotFound(f"no route for {path}")

    def _call(self, route: Route, request: flask.Request, params: dict[str, str]) -> flask.Response:
        """Authenticate, authorise, check the query's names, admit, then read the body, in that
        order for every route: no body is parsed (or read) for a caller who may not send it,
        or not now; the handler checks the values of the parameters the route takes."""
        body = RequestBody.install(request.environ)  # installed already: the same reader
        call = Call(request, params)
        if not route.public:
            principal = call.principal
            if route.roles:
                principal.require(*route.roles)
        if request.environ.get("QUERY_STRING"):  # else there is no parameter to refuse
            unknown = query_params.unknown(request.args, route.query)
            if unknown:
                raise InvalidQuery(unknown)
        with route.admit(call.principal) if route.admit else contextlib.nullcontext():
            if route.body is Body.NONE:
                if body.present():
                    raise MalformedRequest(f"{request.method} {request.path} takes no body")
            elif route.body is Body.RAW:
                call.body = body.take()
            elif route.body is Body.JSON or body.present():
                call.body = read_json(request, body)
            response = route.handler(call, **params)
        if not route.public:
            if response.headers.getlist("Vary"):
                response.vary.add("Authorization")
            else:  # the usual case, without parsing and re-serialising an empty header set
                response.headers["Vary"] = "Authorization"
        return response


def _response(
    body: Any, status: int, content_type: str, headers: dict[str, str] | None
) -> flask.Response:
    """A response with the base headers, overridden or added to by ``headers`` (named as
    BASE_HEADERS names them), set as it is built instead of updated afterwards."""
    items = {**BASE_HEADERS, **headers} if headers else BASE_HEADERS
    return flask.Response(body, status=status, headers=items, content_type=content_type)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    """``body`` as compact UTF-8 JSON (orjson: several times faster than ``json.dumps``)."""
    return _response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status, JSON, headers)


def stream_response(
    chunks: Iterable[bytes], mimetype: str, headers: dict[str, str] | None = None
) -> flask.Response:
    """A response sent as ``chunks`` are produced (bounded memory for large exports)."""
    response = flask.Response(chunks, mimetype=mimetype)
    response.headers.update(BASE_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def bytes_response(body: bytes, headers: dict[str, str] | None = None) -> flask.Response:
    return _response(body, 200, "application/octet-stream", headers)


def text_response(
    body: str, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    return _response(body, status, "text/plain; charset=utf-8", headers)


# The framework's own refusals (a path its URL map cannot match, such as one holding a
# newline, or the runtime's /robots.txt) mapped onto our problem types.
FRAMEWORK_ERRORS: dict[int, type[PlantError]] = {
    400: MalformedRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def framework_problem(exc: HTTPException) -> flask.Response:
    """problem+json for an error the web framework raised before any Router saw the request."""
    code = exc.code or 500
    error_class = FRAMEWORK_ERRORS.get(code)
    if error_class is None:
        error_class = MalformedRequest if code < 500 else ServiceUnavailable
    error = error_class(exc.description or exc.name)
    error.status = code
    response = problem_response(error)
    request = flask.request
    unrouted_line(request.environ).write(code, response.calculate_content_length() or 0)
    return response


STARTED = "plant.started"  # the environ key holding when the request reached the app


def unrouted_line(environ: dict[str, Any]) -> RequestLine:
    """The line of a request no Router answered (a path under no function, the runtime's own
    refusals): its path as the client sent it."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return RequestLine(
        environ.get("REQUEST_METHOD", ""),
        logged_url(path, environ.get("QUERY_STRING", "").encode("latin-1")),
        environ.get(STARTED) or time.perf_counter(),
        environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"),
    )


def install_error_pages(app: flask.Flask) -> None:
    """Answer the framework's own HTTP errors with problem+json instead of its HTML pages, and
    bound what it reads of any request's body (see shared/web/bodies.py).

    Call it on the app a function is loaded into (main.py does, as functions_framework
    executes it inside that app's context); the 500 crash handler stays the runtime's.
    """
    app.register_error_handler(HTTPException, framework_problem)
    app.before_request(_bound_body)


def _bound_body() -> None:
    """Before routing: functions_framework reads the rest of every body after the response,
    after its own 404s (robots.txt) too."""
    environ = flask.request.environ
    environ.setdefault(STARTED, time.perf_counter())
    RequestBody.install(environ)


def problem_response(exc: PlantError) -> flask.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = "2"
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.extensions.get("allow", []))
    body = orjson.dumps(exc.problem(), option=orjson.OPT_NON_STR_KEYS)
    return _response(body, exc.status, "application/problem+json", headers)
