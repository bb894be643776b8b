"""The draw app's HTTP server: the packaged page, and `POST /invert` from PNG sketch to PNG photo.

Standard library only (ThreadingHTTPServer): one local user, a handful of
requests a second. A request never touches the file system, never sees a
stack trace, and cannot stop the server; model calls are serialised, since
torch on a small CPU gains nothing from running two at once. Under a burst every
request still gets an answer: a deep listen backlog instead of connection
resets, and 503 with Retry-After once too many requests wait for the model.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from colorstream.draw.sketch import SketchError, apply_strictness, decode_sketch
from colorstream.model.inference import Predictor

MAX_BODY = 5 * 1024 * 1024
MAX_WAITING = 16  # ~50 ms a model call: 16 queued drain in under a second, within RETRY_AFTER_S
RETRY_AFTER_S = 1
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:"}


class ModelBusy(Exception):
    """Too many requests already wait for the model: the client should retry later."""


def load_static() -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type) for every file of the page, read once from the package."""
    folder = resources.files("colorstream.draw") / "static"
    pages = {}
    for item in folder.iterdir():
        suffix = PurePosixPath(item.name).suffix
        if suffix in STATIC_TYPES:
            pages["/" + item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    pages["/"] = pages["/index.html"]
    return pages


class DrawServer(ThreadingHTTPServer):
    """Holds what every request shares: the predictor, its lock, the model's queue and the page."""

    request_queue_size = 128  # socketserver's 5 resets connections when a burst of clients connects at once

    def __init__(self, address: tuple[str, int], predictor: Predictor, max_waiting: int = MAX_WAITING):
        """Binds at once (port 0 picks a free port: see `server_address`); `serve_forever` serves.

        At most `max_waiting` requests wait while another one uses the model;
        more get 503 at once rather than a reply too late to be worth having.
        """
        if max_waiting < 0:
            raise ValueError(f"max_waiting {max_waiting}: expected 0 or more")
        self.predictor = predictor
        self.model_lock = threading.Lock()
        self.max_waiting = max_waiting
        self.model_queue = threading.BoundedSemaphore(max_waiting + 1)  # the one at the model, and those waiting
        self.pages = load_static()
        super().__init__(address, DrawHandler)
        predictor.predict([np.full((64, 64), 255, np.uint8)])  # torch's first call is slow; not on the first stroke

    def invert_png(self, body: bytes, strictness: float) -> tuple[bytes, float]:
        """A PNG sketch -> (the PNG photo of the same size, seconds spent waiting for the model lock).

        Raises ModelBusy, before decoding, when `max_waiting` requests already wait.

        The page's canvas is framed like the model's training crop, so it is
        inverted whole: on held-out FS2K pairs framed that way, looking for
        the face first (`Predictor.invert`) scored lower and took 1.8 times
        as long (`python -m colorstream.draw.measure`).
        """
        if not self.model_queue.acquire(blocking=False):
            raise ModelBusy(f"busy: {self.max_waiting} requests are already waiting for the model")
        try:
            sketch = apply_strictness(decode_sketch(body), strictness)
            queued = time.perf_counter()
            with self.model_lock:
                waited = time.perf_counter() - queued
                photo = self.predictor.predict([sketch])[0]
        finally:
            self.model_queue.release()
        ok, encoded = cv2.imencode(".png", photo, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # speed over bytes on localhost
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return encoded.tobytes(), waited

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-response is routine: one line on the console, not a traceback."""
        print(f"colorstream draw: {client_address[0]}: {sys.exc_info()[1]!r}", file=sys.stderr)


class DrawHandler(BaseHTTPRequestHandler):
    server: DrawServer
    server_version = "colorstream-draw"
    protocol_version = "HTTP/1.1"  # keep-alive: a drawing session sends several requests a second
    timeout = 30  # seconds a client may stall mid-request before its connection is dropped

    def route(self) -> None:
        """Every method comes here: 404 for unknown paths, 405 for a known path's wrong method."""
        path = urlsplit(self.path).path
        allowed = ("POST",) if path == "/invert" else ("GET", "HEAD") if path in self.server.pages else ()
        if not allowed:
            self.send_json_error(HTTPStatus.NOT_FOUND, f"no such path: {path}")
        elif self.command not in allowed:
            self.send_json_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed on {path}",
                                 {"Allow": ", ".join(allowed)})
        elif self.command == "POST":
            self.invert()
        else:
            body, content_type = self.server.pages[path]
            self.send_body(HTTPStatus.OK, body, content_type, {"Cache-Control": "no-cache"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = route

    def invert(self) -> None:
        try:
            strictness = float(parse_qs(urlsplit(self.path).query).get("strictness", ["1"])[-1])
        except ValueError:
            self.send_json_error(HTTPStatus.BAD_REQUEST, "strictness must be a number from 0 to 1")
            return
        body = self.read_png_body()
        if body is None:
            return
        started = time.perf_counter()
        try:
            photo, waited = self.server.invert_png(body, strictness)
        except ModelBusy as error:  # after the body is read: closing on unread bytes would reset the connection
            self.send_json_error(HTTPStatus.SERVICE_UNAVAILABLE, str(error), {"Retry-After": str(RETRY_AFTER_S)})
            return
        except ValueError as error:  # a SketchError, or strictness out of range
            too_large = isinstance(error, SketchError) and error.too_large
            self.send_json_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_large else HTTPStatus.BAD_REQUEST,
                                 str(error))
            return
        except Exception as error:  # noqa: BLE001 - whatever goes wrong, the client gets JSON, the server lives on
            self.log_error("inversion failed: %r", error)
            self.send_json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "inversion failed")
            return
        inference_ms = (time.perf_counter() - started - waited) * 1000.0
        self.send_body(HTTPStatus.OK, photo, "image/png",
                       {"X-Inference-Ms": f"{inference_ms:.1f}", "X-Queue-Wait-Ms": f"{waited * 1000.0:.1f}"})

    def read_png_body(self) -> bytes | None:
        """The request body, or None once a 4xx has been sent; nothing is read unless it is a PNG of fair size."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "image/png":
            self.send_json_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                 f"Content-Type must be image/png, not {content_type or 'missing'}")
            return None
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.send_json_error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return None
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self.send_json_error(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}")
            return None
        if length > MAX_BODY:
            self.send_json_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                 f"body is {length} bytes; at most {MAX_BODY} are accepted")
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.send_json_error(HTTPStatus.BAD_REQUEST, "body is shorter than its Content-Length")
            return None
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, unknown method, ...) as JSON too."""
        self.send_json_error(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def send_json_error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        """Any error before the body is read also closes the connection: the unread body is no next request."""
        self.close_connection = True
        body = json.dumps({"error": message}).encode()
        self.send_body(status, body, "application/json", {"Connection": "close", **(headers or {})})

    def send_body(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)),
                            **SECURITY_HEADERS, **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: a drawing session sends several requests a second."""

    def log_error(self, format: str, *args) -> None:
        """Idle keep-alive connections time out all the time: not worth a line."""
        if not format.startswith("Request timed out"):
            self.log_message(format, *args)

    def log_message(self, format: str, *args) -> None:
        print(f"colorstream draw: {self.address_string()}: {format % args}", file=sys.stderr)

