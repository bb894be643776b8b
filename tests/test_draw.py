"""`colorstream draw`: the sketch ops, the HTTP API against a running server, and the command."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from colorstream.draw.measure import sample_canvas
from colorstream.draw.server import MAX_BODY, DrawServer
from colorstream.draw.sketch import MAX_SIDE, SketchError, apply_strictness, decode_sketch
from conftest import serving
from test_cli import assert_one_line_error, default_sigint, run


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def post(server, body: bytes, content_type: str | None = "image/png", query: str = ""):
    """(status, headers, body) of one POST /invert."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request("POST", "/invert" + query, body, headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw_request(server, request: bytes) -> tuple[int, dict]:
    """Bytes as written, for what http.client will not send; -> (status, JSON body)."""
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read())


def burst(server, body: bytes, count: int) -> list:
    """`count` POST /invert released at once from as many threads -> their (status, headers, body)."""
    start = threading.Barrier(count)

    def one(_):
        start.wait()
        return post(server, body)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def decode_photo(body: bytes) -> np.ndarray:
    photo = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert photo is not None
    return photo


def colour_spread(photo: np.ndarray) -> float:
    return float((photo.max(axis=2).astype(int) - photo.min(axis=2)).mean())


@pytest.fixture(scope="module")
def canvas(draw_server) -> bytes:
    return sample_canvas(draw_server.predictor)


# ---------------------------------------------------------------------------- sketch ops


def test_transparent_canvas_is_read_as_white_paper():
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:30, 20:25] = (85, 85, 85, 255)  # opaque gray strokes on a transparent canvas
    rgba[10:30, 40:45] = (0, 0, 0, 128)  # half-transparent black reads as mid gray
    sketch = decode_sketch(png(rgba))
    assert sketch.shape == (40, 60) and sketch.dtype == np.uint8
    assert sketch[0, 0] == 255 and sketch[20, 22] == 85 and abs(int(sketch[20, 42]) - 127) <= 1
    assert np.array_equal(decode_sketch(png(np.full((8, 8), 200, np.uint16) * 257)), np.full((8, 8), 200))


def test_bad_uploads_are_refused_before_decoding():
    with pytest.raises(SketchError, match="not a PNG"):
        decode_sketch(b"GIF89a" + bytes(100))
    huge = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", MAX_SIDE + 1, 10, 8, 0, 0, 0, 0)
    with pytest.raises(SketchError, match="at most") as raised:
        decode_sketch(huge)
    assert raised.value.too_large
    with pytest.raises(SketchError, match="not a readable PNG"):
        decode_sketch(png(np.zeros((10, 10), np.uint8))[:40])


def test_strictness_blends_strokes_with_their_blur():
    sketch = np.full((100, 100), 255, np.uint8)
    sketch[:, 48:52] = 60
    assert apply_strictness(sketch, 1.0) is sketch
    blurred = apply_strictness(sketch, 0.0)
    assert blurred[50, 50] > 150 and blurred[50, 43] < 240  # the line spreads out
    half = apply_strictness(sketch, 0.5).astype(int)
    assert np.abs(half - (sketch.astype(int) + blurred) / 2).max() <= 1
    with pytest.raises(ValueError, match="outside 0..1"):
        apply_strictness(sketch, 1.5)


# ---------------------------------------------------------------------------- the API


def test_invert_returns_a_colour_photo_the_size_of_the_canvas(draw_server, canvas):
    status, headers, body = post(draw_server, canvas)
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert float(headers["X-Inference-Ms"]) > 0
    photo = decode_photo(body)
    assert photo.shape == (512, 512, 3)
    assert colour_spread(photo) > 10


def test_strictness_changes_the_photo_and_must_be_a_fraction(draw_server, canvas):
    strict = decode_photo(post(draw_server, canvas, query="?strictness=1")[2])
    loose = decode_photo(post(draw_server, canvas, query="?strictness=0.4")[2])
    assert np.abs(strict.astype(int) - loose).mean() > 1
    for bad in ("abc", "1.5", "-0.1", "nan"):
        status, _, body = post(draw_server, canvas, query=f"?strictness={bad}")
        assert status == 400 and "strictness" in json.loads(body)["error"]


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(draw_server, canvas, content_type):
    status, headers, body = post(draw_server, canvas, content_type=content_type)
    assert status == 415 and headers["Content-Type"] == "application/json"
    assert "image/png" in json.loads(body)["error"]


def test_oversized_body_is_refused_unread_with_413(draw_server):
    # Headers only: the server must answer from Content-Length alone, or this would hang.
    head = (f"POST /invert HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode()
    status, reply = raw_request(draw_server, head)
    assert status == 413 and "at most" in reply["error"]


def test_body_without_length_is_411(draw_server, canvas):
    head = b"POST /invert HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, reply = raw_request(draw_server, head + b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411 and "Content-Length" in reply["error"]


def test_non_image_bytes_are_400_and_huge_images_413(draw_server):
    status, _, body = post(draw_server, b"definitely not a picture")
    assert status == 400 and "not a PNG" in json.loads(body)["error"]
    bomb = np.full((4, MAX_SIDE + 4), 255, np.uint8)
    status, _, body = post(draw_server, png(bomb))
    assert status == 413 and "at most" in json.loads(body)["error"]


def test_unknown_paths_are_404_and_wrong_methods_405(draw_server):
    for request, expected in [(b"GET /nothing HTTP/1.1", 404), (b"GET /../pyproject.toml HTTP/1.1", 404),
                              (b"GET /static/app.js HTTP/1.1", 404), (b"GET /invert HTTP/1.1", 405),
                              (b"DELETE /invert HTTP/1.1", 405), (b"POST / HTTP/1.1", 405),
                              (b"PUT /app.js HTTP/1.1", 405)]:
        status, reply = raw_request(draw_server, request + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert status == expected, request
        assert "error" in reply and "Traceback" not in reply["error"]


def test_serves_only_its_page(draw_server):
    base = "http://{}:{}".format(*draw_server.server_address[:2])
    with urllib.request.urlopen(base + "/") as response:
        assert response.headers["Content-Type"].startswith("text/html")
        page = response.read().decode()
    assert 'src="/app.js"' in page and 'href="/style.css"' in page
    for name, kind in [("/app.js", "text/javascript"), ("/style.css", "text/css")]:
        with urllib.request.urlopen(base + name) as response:
            assert response.headers["Content-Type"].startswith(kind) and response.read()
    head = urllib.request.Request(base + "/", method="HEAD")
    with urllib.request.urlopen(head) as response:
        assert int(response.headers["Content-Length"]) == len(page.encode()) and response.read() == b""


def test_concurrent_requests_all_get_their_own_answer(draw_server, canvas):
    blank = png(np.full((300, 200), 255, np.uint8))
    jobs = [canvas, blank, b"junk", canvas, blank, canvas, b"junk", canvas] * 2
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda body: post(draw_server, body), jobs))
    for body, (status, _, reply) in zip(jobs, results):
        if body == b"junk":
            assert status == 400
        else:
            assert status == 200
            assert decode_photo(reply).shape[:2] == ((512, 512) if body == canvas else (300, 200))
    photos = [decode_photo(reply).astype(int) for body, (_, _, reply) in zip(jobs, results) if body == canvas]
    assert all(np.abs(photo - photos[0]).max() <= 2 for photo in photos)  # no request got another's photo


def test_a_burst_of_fifty_requests_gets_photos_or_503_and_never_a_reset(draw_server, canvas):
    statuses = [status for status, _, _ in burst(draw_server, canvas, 50)]  # a reset would raise here
    assert set(statuses) <= {200, 503} and 200 in statuses


def test_requests_beyond_the_wait_limit_get_503_with_retry_after(draw_server, canvas):
    with serving(DrawServer(("127.0.0.1", 0), draw_server.predictor, max_waiting=1)) as narrow:
        results = burst(narrow, canvas, 20)
    refused = [(headers, json.loads(body)) for status, headers, body in results if status == 503]
    assert refused and len(refused) < len(results)
    assert {status for status, _, _ in results} == {200, 503}
    for headers, reply in refused:
        assert headers["Retry-After"] == "1" and headers["Content-Type"] == "application/json"
        assert "waiting for the model" in reply["error"]


def test_inference_time_leaves_out_the_wait_for_the_model(draw_server, canvas):
    with ThreadPoolExecutor(1) as pool:
        with draw_server.model_lock:  # another request at the model for 600 ms
            reply = pool.submit(post, draw_server, canvas)
            time.sleep(0.6)
        status, headers, _ = reply.result()
    assert status == 200
    assert float(headers["X-Inference-Ms"]) < 300
    assert float(headers["X-Queue-Wait-Ms"]) >= 400  # less what it took the request to reach the lock


def test_a_failing_model_or_a_vanished_client_does_not_stop_the_server(draw_server, canvas, monkeypatch):
    with socket.create_connection(draw_server.server_address[:2], timeout=10) as sock:
        sock.sendall(b"POST /invert HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
                     + canvas[:100])  # then hangs up mid-body
    monkeypatch.setattr(draw_server.predictor, "predict", lambda *args, **kwargs: 1 / 0)
    status, _, body = post(draw_server, canvas)
    assert status == 500 and json.loads(body) == {"error": "inversion failed"}
    monkeypatch.undo()
    assert post(draw_server, canvas)[0] == 200


# ---------------------------------------------------------------------------- the command


def test_draw_warns_when_it_listens_beyond_this_machine(tiny_checkpoint):
    process = subprocess.Popen([sys.executable, "-m", "colorstream.cli", "draw", "--port", "0", "--no-browser",
                                "--host", "0.0.0.0", "--model", str(tiny_checkpoint)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        line = process.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, process.stderr.read() if not line else line
        url = re.search(r"http://\S+", line).group()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        stderr = process.stderr.read()
    finally:
        process.kill()
        process.communicate()
    assert "warning" in stderr and "network" in stderr and "Traceback" not in stderr


def test_draw_with_a_bad_checkpoint_or_a_busy_port_is_a_one_line_error(tmp_path, tiny_checkpoint):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    result = run("draw", "--no-browser", "--port", "0", "--model", str(junk))
    assert_one_line_error(result, "not a readable checkpoint")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("draw", "--no-browser", "--port", str(taken.getsockname()[1]), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "cannot listen on 127.0.0.1:")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
