"""Small synthetic videos made inside the tests with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def face_canvas(portrait: np.ndarray, width: int, height: int, positions: list[tuple[int, int]],
                face_size: int = 104) -> np.ndarray:
    """A gray canvas with the sample portrait's head pasted at each (x, y) top-left position."""
    # a textured backdrop, as real footage has: a flat one upsets histogram equalisation
    canvas = np.random.default_rng(len(positions)).integers(80, 140, (height, width, 3), dtype=np.uint8)
    head = cv2.resize(portrait[2:112, 57:167], (face_size, face_size), interpolation=cv2.INTER_AREA)
    for x, y in positions:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + face_size), min(height, y + face_size)
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = head[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas


def moving_face_frames(portrait: np.ndarray, count: int, width: int = 161, height: int = 121,
                       faces: int = 1) -> list[np.ndarray]:
    frames = []
    for index in range(count):
        shift = int(20 * index / max(count - 1, 1))
        positions = [(8 + shift + 110 * k, 8) for k in range(faces)]
        frames.append(face_canvas(portrait, width, height, positions))
    return frames


def write_video(path: Path, frames: list[np.ndarray], pts: list[int] | None = None,
                time_base: Fraction = Fraction(1, 1000), rate: int = 25, audio_seconds: float = 0.0,
                rotation: int = 0, codec: str = "libx264") -> Path:
    """Encode BGR frames; `pts` in `time_base` units allows variable frame rate; adds a 440 Hz AAC tone."""
    height, width = frames[0].shape[:2]
    pts = pts if pts is not None else [int(round(i / rate / time_base)) for i in range(len(frames))]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if (width % 2 or height % 2) else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base  # exact pts, variable rate too
        if rotation:
            video.set_display_rotation(rotation)
        audio = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
        for image, stamp in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = stamp, time_base
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            total = int(16000 * audio_seconds)
            for start in range(0, total, 1024):
                t = np.arange(start, min(start + 1024, total)) / 16000.0
                samples = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], list[float], dict]:
    """Frames (BGR), their presentation times in seconds, and facts about the streams."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times, rotation = [], [], 0
        for frame in container.decode(stream):
            if not frames:
                rotation = int(round(frame.rotation or 0))
            frames.append(frame.to_ndarray(format="bgr24"))
            times.append(float(frame.pts * frame.time_base))
        facts = {"width": stream.codec_context.width, "height": stream.codec_context.height, "rotation": rotation,
                 "audio": [(s.codec_context.name, float(s.duration * s.time_base) if s.duration else None)
                           for s in container.streams.audio]}
    return frames, times, facts
