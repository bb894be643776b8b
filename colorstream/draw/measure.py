"""The measurements behind the draw app's choices; README.md quotes their output.

    python -m colorstream.draw.measure strictness --pairs ../shared/data/sketch_pairs
    python -m colorstream.draw.measure latency

`strictness` frames held-out FS2K hand-drawn pairs like the app's canvas (the
model's crop around the face in the photo, 512x512), makes a rough copy of
each sketch (wobbled, a fifth of the strokes dropped, thickened, lighter),
and scores the outputs at several strictness values: SSIM to the photo at
100x100 and how often the Haar cascade finds a face in the output; also the
face-finding `Predictor.invert` against the whole-canvas `Predictor.predict`
the server uses. `latency` times `POST /invert` on a 512x512 canvas against a
server on this machine, and both ways of inverting it.
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from colorstream import imageops, metrics
from colorstream.cli import add_model_argument
from colorstream.draw.server import DrawServer
from colorstream.draw.sketch import SMOOTH_SIGMA, apply_strictness
from colorstream.model.inference import Predictor, load

SIDE = 512  # the app's canvas
STRICTNESS = (1.0, 0.7, 0.4)
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def framed_pairs(pairs: list, predictor: Predictor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sketch, photo) at SIDE x SIDE, framed as the model's crop around the photo's face; faceless pairs are skipped."""
    framed = []
    for pair in pairs:
        height, width = pair.photo.shape[:2]
        face = imageops.largest_face(pair.photo, min_face=min(height, width) // 5)
        if face is not None:
            box = imageops.square_box(face, predictor.crop_margin)
            framed.append((imageops.crop_square(pair.sketch, box, SIDE, fill=255),
                           imageops.crop_square(pair.photo, box, SIDE)))
    return framed


def smooth_noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A SIDE x SIDE random field with unit standard deviation and features about `sigma` pixels wide."""
    field = cv2.GaussianBlur(rng.standard_normal((SIDE, SIDE)).astype(np.float32), (0, 0), sigma)
    return field / max(float(field.std()), 1e-6)


def roughen(sketch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An untrained hand's copy of a sketch on the app's white canvas."""
    sketch = imageops.normalize_sketch(sketch)  # white paper, like the canvas
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    wobble = 0.015 * SIDE
    sketch = cv2.remap(sketch, cols + wobble * smooth_noise(rng, 0.05 * SIDE),
                       rows + wobble * smooth_noise(rng, 0.05 * SIDE), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    sketch = np.where(smooth_noise(rng, 0.03 * SIDE) > 0.85, 255, sketch).astype(np.uint8)  # drops ~20%
    sketch = cv2.erode(sketch, np.ones((3, 3), np.uint8))
    return (255.0 - (255.0 - sketch) * 0.7).astype(np.uint8)  # a gray pencil, not black ink


def score(outputs: list[np.ndarray], photos: list[np.ndarray]) -> tuple[float, float]:
    """Mean SSIM to the photos at 100x100, and the fraction of outputs in which a face is found."""
    small = [cv2.resize(image, (100, 100), interpolation=cv2.INTER_AREA) for image in outputs]
    ssim = float(np.mean([metrics.ssim(out, photo) for out, photo in zip(small, photos)]))
    faces = float(np.mean([imageops.largest_face(out, min_face=SIDE // 5) is not None for out in outputs]))
    return ssim, faces


def measure_strictness(predictor: Predictor, pairs: list, sigma: float, seed: int = 0) -> list[str]:
    framed = framed_pairs(pairs, predictor)
    rng = np.random.default_rng(seed)
    sketches = {"as drawn": [sketch for sketch, _ in framed],
                "rough": [roughen(sketch, rng) for sketch, _ in framed]}
    photos = [cv2.resize(photo, (100, 100), interpolation=cv2.INTER_AREA) for _, photo in framed]
    rows = [f"{len(framed)} framed pairs of {len(pairs)}; blur sigma {sigma} of the side",
            "| sketches | path | strictness | SSIM to photo | face found in output |", "| --- | --- | --- | --- | --- |"]
    for name, group in sketches.items():
        for path, strictness in [("predict", s) for s in STRICTNESS] + [("invert", 1.0)]:
            inputs = [apply_strictness(sketch, strictness, sigma) for sketch in group]
            outputs = predictor.predict(inputs) if path == "predict" else predictor.invert(inputs)
            ssim, faces = score(outputs, photos)
            rows.append(f"| {name} | {path} | {strictness} | {ssim:.4f} | {faces:.1%} |")
    return rows


def sample_canvas(predictor: Predictor) -> bytes:
    """The sample line sketch, framed like the canvas around the face in its photo, as a PNG."""
    face = imageops.largest_face(cv2.imread(str(SAMPLES / "astronaut.jpg")))
    box = imageops.square_box(face, predictor.crop_margin)
    sketch = cv2.imread(str(SAMPLES / "astronaut_line.png"), cv2.IMREAD_GRAYSCALE)
    return cv2.imencode(".png", imageops.crop_square(sketch, box, SIDE, fill=255))[1].tobytes()


def percentiles(values: list[float]) -> str:
    return " / ".join(f"{np.percentile(values, q):.1f}" for q in (50, 95))


def measure_latency(predictor: Predictor, requests: int) -> list[str]:
    """Round trips of `POST /invert`, then the two ways to invert the canvas, one sketch at a time as the server does."""
    server = DrawServer(("127.0.0.1", 0), predictor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    body = sample_canvas(predictor)
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    server_ms, total_ms = [], []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", "/invert", body, {"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            total_ms.append((time.perf_counter() - started) * 1000.0)
            server_ms.append(float(response.getheader("X-Inference-Ms")))
    finally:
        connection.close()
        server.shutdown()
        server.server_close()
    rows = [f"{requests} requests of a {SIDE}x{SIDE} canvas ({len(body)} bytes), ms p50 / p95:",
            f"server (X-Inference-Ms): {percentiles(server_ms)}; round trip: {percentiles(total_ms)}"]
    canvas = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)

    def timed(invert) -> list[float]:
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            invert([canvas])
            times.append((time.perf_counter() - started) * 1000.0)
        return times

    for name, invert in (("predict (the server's)", predictor.predict), ("invert (finds the face)", predictor.invert)):
        with ThreadPoolExecutor(1) as worker:  # a thread, as in the server: torch's main thread fares worse under load
            rows.append(f"Predictor.{name}: {percentiles(worker.submit(timed, invert).result())}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m colorstream.draw.measure", description=__doc__.split("\n\n")[0])
    add_model_argument(parser, "sketch")
    commands = parser.add_subparsers(dest="what", required=True)
    p = commands.add_parser("strictness", help="strictness and framing on held-out hand-drawn pairs")
    p.add_argument("--pairs", required=True, help="FS2K-layout folder (pairs.csv, photos/, sketches/)")
    p.add_argument("--split", default="test", choices=["train", "test"],
                   help="test: the held-out pairs; train: for choosing --sigma")
    p.add_argument("--limit", type=int, help="the first N pairs only")
    p.add_argument("--sigma", type=float, default=SMOOTH_SIGMA, help="blur sigma, as a fraction of the side")
    p = commands.add_parser("latency", help="POST /invert round trips on this machine")
    p.add_argument("--requests", type=int, default=50)
    args = parser.parse_args(argv)
    predictor = load(args.model, "cpu")
    if args.what == "strictness":
        from colorstream.training.data import load_sketch_pairs

        pairs = load_sketch_pairs(Path(args.pairs))[args.split][:args.limit]
        rows = measure_strictness(predictor, pairs, args.sigma)
    else:
        rows = measure_latency(predictor, args.requests)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
