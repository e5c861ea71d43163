"""The viewer's web app (Starlette): the JSON API, the static page, and the guards in front of them.

    from convscope.viewer.app import create_app
    app = create_app(session)                         # loopback: no token needed
    app = create_app(session, token="s3cret")         # every request must carry it
    # served by convscope.viewer.server under uvicorn; tests drive it with starlette.testclient

Routes (README, "Live viewer", documents them for scripts):
    GET  /                      the page (static/index.html)
    GET  /static/{name}         its script and style, from the package's static folder only
    GET  /figures/{name}        a run's plots/*.png, by exact name only
    GET  /api/model             layers, shapes, classes, first-layer filters, test set
    POST /api/predict           image bytes (or JSON) in; probabilities, every layer, Grad-CAM, saliency out
    POST /api/explain           one feature-map cell: its receptive field, and the first convolution's worked sum
    GET  /api/test-images       test images: all, errors only, or one confusion-matrix cell

Guards, in order: the Host header must name this machine (DNS rebinding: a
foreign name is refused), a request with an Origin must come from the page's
own origin, and when a token is set every request must carry it (query
``token=``, or header ``Authorization: token ...``). Bodies are capped in
bytes before they are read whole; images in pixels by the loaders' rule.
Every refusal is a 4xx with ``{"error": "<one line>"}``; the server keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

from convscope.errors import ConvscopeError
from convscope.viewer.session import RequestError, ViewSession

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 8 * 1024 * 1024  # an 8 MB photo; a drawn 28x28 PNG is under 1 kB
LOOPBACK_NAMES = ("localhost",)
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: a bind that only this machine can reach."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a Host header or an origin's authority: 'example.com:80' -> 'example.com', '[::1]:80' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(host: str, allowed_names: frozenset[str]) -> bool:
    """A numeric address, localhost, or a name given at start-up (the machine's own name on a public bind).

    DNS rebinding needs a name the attacker controls in the Host header; a numeric
    address cannot be rebound, so only names are checked.

    Args:
        host: the Host header's host part, lower case (``host_of``).
        allowed_names: lower-case host names allowed besides localhost.

    Returns:
        True when the request may go on.
    """
    if host in LOOPBACK_NAMES or host in allowed_names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def error_response(message: str, status: int) -> JSONResponse:
    """Every refusal: the status and one line."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


class Guard:
    """ASGI middleware: Host allowlist, same-origin requests, and the token when one is set."""

    def __init__(self, app, token: str | None, allowed_names: frozenset[str]):
        self.app = app
        self.token = token
        self.allowed_names = allowed_names

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # no route takes one; refused here so a future one cannot skip the checks below
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":  # lifespan
            return await self.app(scope, receive, send)
        refusal = self.refusal(Request(scope))
        if refusal is not None:
            return await error_response(refusal, 403)(scope, receive, send)
        return await self.app(scope, receive, send)

    def refusal(self, request: Request) -> str | None:
        """Why this request is refused, or None."""
        header = request.headers.get("host", "")
        host = host_of(header)
        if not host_allowed(host, self.allowed_names):
            return (f"Host header {header!r} is not this machine's; open the page at the address the server printed "
                    "(a foreign name can be a DNS-rebinding attack)")
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1].lower() != header.strip().lower():
            return f"cross-origin request from {origin!r} refused; use the page the server serves"
        if self.token is not None:
            given = request.query_params.get("token") or _authorization_token(request.headers.get("authorization", ""))
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return "missing or wrong token; open the URL the server printed at start-up (it ends in ?token=...)"
        return None


def _authorization_token(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (the declared length is checked first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {int(declared)} bytes is too large; the limit is {limit} bytes; send a smaller image", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body is too large (over {limit} bytes); send a smaller image", 413)
        chunks.append(chunk)
    if size == 0:
        raise RequestError("empty request body; send image file bytes (PNG, JPEG, ...) or JSON")
    return b"".join(chunks)


def parse_json(body: bytes) -> dict:
    """A request body as a JSON object.

    Args:
        body: the request's bytes.

    Returns:
        The decoded object.

    Raises:
        RequestError: malformed JSON, or JSON that is not an object (400).
    """
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestError(f"malformed JSON ({error}); send a JSON object, e.g. {{\"test_index\": 0}}") from None
    if not isinstance(value, dict):
        raise RequestError(f"JSON body is a {type(value).__name__}; expected an object, e.g. {{\"test_index\": 0}}")
    return value


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON.

    Args:
        request: the request; its Content-Type header, without parameters, is compared.

    Returns:
        True for application/json.
    """
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def input_from_json(session: ViewSession, fields: dict):
    """The one input a JSON body names: a test image, raw pixel values, or base64 image file bytes.

    Args:
        session: the opened model, which prepares the input.
        fields: the JSON object; exactly one of "test_index", "pixels", "image" (base64, a data: URL too).

    Returns:
        The session's (model input, pixels) for that input.

    Raises:
        RequestError: none or several of those keys, or "image" that is not a base64 string.
    """
    given = [key for key in ("test_index", "pixels", "image") if key in fields]
    if len(given) != 1:
        raise RequestError('JSON names no input or several; give exactly one of "test_index", "pixels" (0-255 values) or "image" (base64 file bytes)')
    if given[0] == "test_index":
        return session.input_from_test(fields["test_index"])
    if given[0] == "pixels":
        return session.input_from_pixels(fields["pixels"])
    text = fields["image"]
    if not isinstance(text, str):
        raise RequestError('"image" must be a base64 string of image file bytes')
    try:
        data = base64.b64decode(text.split(",", 1)[1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError('"image" is not valid base64; send the image file\'s bytes base64-encoded') from None
    return session.input_from_png(data)


def integer(value, name: str) -> int | None:
    """A query parameter as an integer.

    Args:
        value: the parameter's text, or None when absent.
        name: the parameter, for the message.

    Returns:
        The integer, or None for an absent or empty parameter.

    Raises:
        RequestError: text that is not an integer (400).
    """
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name}={value!r} is not an integer") from None


def create_app(session: ViewSession, token: str | None = None, allowed_names: tuple[str, ...] = ()) -> Starlette:
    """The app serving ``session``.

    Args:
        session: the opened model.
        token: when set, every request must carry it (``?token=`` or ``Authorization: token ...``).
        allowed_names: host names besides numeric addresses and localhost that may appear in the Host header.

    Returns:
        A Starlette app for uvicorn (or starlette.testclient).
    """
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    static_files = {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in STATIC_TYPES}
    token_query = f"?token={token}" if token else ""

    async def index(request: Request):
        return HTMLResponse(page.replace("{{token_query}}", token_query), headers={"Cache-Control": "no-store"})

    async def static(request: Request):
        path = static_files.get(request.path_params["name"])
        if path is None:
            raise RequestError(f"no static file {request.path_params['name']!r}", 404)
        return FileResponse(path, media_type=STATIC_TYPES[path.suffix])

    async def figure(request: Request):
        name = request.path_params["name"]
        if name not in session.figure_names():  # exact names of plots/*.png: no path reaches further
            raise RequestError(f"no figure {name!r}; GET /api/model lists the figures", 404)
        return FileResponse(session.figures_dir / name, media_type="image/png")

    async def model(request: Request):
        return JSONResponse(session.describe())

    async def predict(request: Request):
        class_index = session.class_index(request.query_params.get("class"))
        body = await read_body(request)
        fields = parse_json(body) if is_json(request) else None  # JSON names its input; otherwise the body is image bytes
        if fields is not None and "class" in fields:
            class_index = session.class_index(fields["class"])

        def work():
            x, pixels = input_from_json(session, fields) if fields is not None else session.input_from_png(body)
            return session.predict(x, pixels, class_index)

        return JSONResponse(await run_in_threadpool(work))

    async def explain(request: Request):
        fields = parse_json(await read_body(request))
        if not isinstance(fields.get("layer"), str):
            raise RequestError('"layer" (a layer name) is required; GET /api/model lists them')

        def work():
            x, _ = input_from_json(session, fields)
            return session.explain(x, fields["layer"], fields.get("channel"), fields.get("row"), fields.get("column"))

        return JSONResponse(await run_in_threadpool(work))

    async def test_images(request: Request):
        query = request.query_params
        arguments = dict(
            which=query.get("filter", "all"), true=integer(query.get("true"), "true"), predicted=integer(query.get("predicted"), "predicted"),
            offset=integer(query.get("offset"), "offset") or 0, limit=integer(query.get("limit"), "limit") or 48,
        )
        return JSONResponse(await run_in_threadpool(session.test_images, **arguments))

    async def request_error(request: Request, error: RequestError):
        return error_response(str(error), error.status)

    async def user_error(request: Request, error: ConvscopeError):
        return error_response(str(error), 400)

    async def http_error(request: Request, error: HTTPException):
        message = {404: f"no such page {request.url.path!r}", 405: f"{request.method} is not allowed on {request.url.path}"}.get(error.status_code, error.detail)
        return error_response(message, error.status_code)

    async def server_error(request: Request, error: Exception):
        logger.exception("viewer: %s %s failed", request.method, request.url.path)
        return error_response(f"internal error ({type(error).__name__}: {error}); the server keeps running; see its log", 500)

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/figures/{name}", figure),
        Route("/api/model", model),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/explain", explain, methods=["POST"]),
        Route("/api/test-images", test_images),
    ]
    handlers = {RequestError: request_error, ConvscopeError: user_error, HTTPException: http_error, Exception: server_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(Guard, token=token, allowed_names=frozenset(name.lower() for name in allowed_names))
    return app
