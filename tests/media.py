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
                rotation: int = 0, codec: str = "libx264", audio_codec: str = "aac", audio_layout: str = "mono",
                container_options: dict[str, str] | None = None) -> Path:
    """Encode BGR frames; `pts` in `time_base` units allows variable frame rate; adds a 440 Hz tone."""
    height, width = frames[0].shape[:2]
    pts = pts if pts is not None else [int(round(i / rate / time_base)) for i in range(len(frames))]
    with av.open(str(path), "w", container_options=container_options or {}) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if (width % 2 or height % 2) else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base  # exact pts, variable rate too
        if rotation:
            video.set_display_rotation(rotation)
        audio = container.add_stream(audio_codec, rate=16000, layout=audio_layout) if audio_seconds else None
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
                tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
                samples = np.repeat(tone[None, :], audio.layout.nb_channels, axis=0)  # every channel alike
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=audio_layout)
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return path


def write_cut_video(folder: Path, count: int = 50) -> Path:
    """`cut.mp4`: an mp4 with its index first (faststart), which states all `count` frames, cut in half.

    Its frames are noise, so the media data, not the index, fills the file and about half the frames remain.
    """
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(count)]
    whole = write_video(folder / "whole.mp4", noise, audio_seconds=count / 25,
                        container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])
    return cut


def write_two_video_streams(path: Path, count: int = 5) -> Path:
    """A Matroska file with two video streams and an (empty) subtitle stream: more than colorize carries over."""
    with av.open(str(path), "w") as container:
        videos = [container.add_stream("libx264", rate=25) for _ in range(2)]
        for video in videos:
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        subtitles = container.add_stream("subrip")
        subtitles.codec_context.subtitle_header = b"[Script Info]\nScriptType: v4.00+\n"  # the encoder needs one
        for index in range(count):
            for video in videos:
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * index, np.uint8), format="bgr24")
                frame.pts = index
                container.mux(video.encode(frame))
        for video in videos:
            container.mux(video.encode(None))
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
