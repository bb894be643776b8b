"""Video quality against ground truth: a colour clip is made gray, colorized, and compared with itself.

The grayscale clip (audio kept) is written with the same writer `colorize`
uses, then colorized through the real pipeline, so the scores cover the
whole product path: decode, detect, sketchify, infer, smooth, composite,
encode. The gray clip itself is scored too, as the baseline to beat.
"""

from __future__ import annotations

import tempfile
from itertools import chain
from pathlib import Path

import av
import numpy as np

from colorstream import imageops, metrics
from model.inference import Predictor
from stream.jobs import Options, colorize_video
from stream.video_io import VideoReader, VideoWriter


def make_gray_clip(source: Path, target: Path, options: Options) -> None:
    """The clip with its colour removed, timestamps, rotation and audio kept."""
    reader = VideoReader(source)
    try:
        frames = reader.frames()
        first = next(frames, None)
        if first is None:
            raise ValueError(f"{source}: no decodable video frames")
        with VideoWriter.like(reader, target, options.codec, options.crf, options.preset) as writer:
            for frame in chain([first], frames):  # lazily: a long clip never sits in memory
                writer.write(frame.luma, None, frame.pts)
    finally:
        reader.close()


def _decoded(path: Path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def face_ab_error(image: np.ndarray, truth: np.ndarray, faces: list[imageops.Box]) -> tuple[float, int]:
    """Summed Euclidean Lab a/b distance over the face boxes' pixels, and the pixel count."""
    total, count = 0.0, 0
    height, width = truth.shape[:2]
    for box in faces:
        x0, y0 = max(0, int(box.x)), max(0, int(box.y))
        x1, y1 = min(width, int(box.x + box.w)), min(height, int(box.y + box.h))
        if x1 <= x0 or y1 <= y0:
            continue
        ab_image = imageops.bgr_to_lab(image[y0:y1, x0:x1])[:, :, 1:]
        ab_truth = imageops.bgr_to_lab(truth[y0:y1, x0:x1])[:, :, 1:]
        total += float(np.linalg.norm(ab_image - ab_truth, axis=2).sum())
        count += (x1 - x0) * (y1 - y0)
    return total, count


def evaluate_video(source: Path, predictor: Predictor, options: Options, workdir: Path | None = None) -> dict:
    """Scores of the colorized clip and of its grayscale input against the original colour clip."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        gray_path = Path(scratch) / f"gray{source.suffix or '.mp4'}"
        out_path = Path(scratch) / f"colorized{source.suffix or '.mp4'}"
        make_gray_clip(source, gray_path, options)
        run = colorize_video(gray_path, out_path, predictor, options, progress=False)
        sums = {"psnr_output": 0.0, "psnr_gray": 0.0, "ab_output": 0.0, "ab_gray": 0.0, "face_pixels": 0}
        frames = 0
        for truth, gray, output in zip(_decoded(source), _decoded(gray_path), _decoded(out_path)):
            frames += 1
            sums["psnr_output"] += metrics.psnr(output, truth)
            sums["psnr_gray"] += metrics.psnr(gray, truth)
            faces = imageops.detect_faces(truth, min_face=options.min_face)
            error_output, pixels = face_ab_error(output, truth, faces)
            error_gray, _ = face_ab_error(gray, truth, faces)
            sums["ab_output"] += error_output
            sums["ab_gray"] += error_gray
            sums["face_pixels"] += pixels
    pixels = max(sums["face_pixels"], 1)
    report = {
        "clip": source.name, "frames": frames,
        "psnr_output": round(sums["psnr_output"] / max(frames, 1), 3),
        "psnr_gray": round(sums["psnr_gray"] / max(frames, 1), 3),
        "face_ab_error_output": round(sums["ab_output"] / pixels, 3),
        "face_ab_error_gray": round(sums["ab_gray"] / pixels, 3),
        "fps": run["fps"], "frames_with_faces": run["frames_with_faces"],
    }
    report["face_ab_error_ratio"] = round(report["face_ab_error_output"] / max(report["face_ab_error_gray"], 1e-9), 3)
    return report
