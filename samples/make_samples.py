"""Make the bundled sample media from a public-domain source.

The source is NASA's portrait of astronaut Eileen Collins, public domain,
shipped with scikit-image as `skimage.data.astronaut()`. scikit-image is
needed by this script only:  pip install -e '.[samples]'
Run:  python samples/make_samples.py
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

from colorstream import imageops

HERE = Path(__file__).resolve().parent
FPS = 25
SECONDS = 3
CLIP_SIZE = (320, 240)  # width, height
TONE_HZ = 440.0
AUDIO_RATE = 48000


def camera_path(t: float) -> tuple[float, float, float]:
    """Centre (x, y) and zoom of a slow pan-and-zoom over the 512x512 portrait, t in [0, 1].

    The view rises as it zooms so the whole head stays in frame: a face cut
    at the forehead is no face to a Haar cascade.
    """
    return 230.0 + 40.0 * t, 190.0 - 40.0 * t + 10.0 * np.sin(np.pi * t), 1.0 + 0.35 * t


def write_clip(portrait_bgr: np.ndarray, path: Path) -> None:
    """A grayscale H.264 clip with camera motion and a quiet AAC tone."""
    width, height = CLIP_SIZE
    partial = path.with_name(path.name + ".partial.mp4")
    with av.open(str(partial), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "medium"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        gray = cv2.cvtColor(imageops.to_gray(portrait_bgr), cv2.COLOR_GRAY2BGR)
        for index in range(FPS * SECONDS):
            cx, cy, zoom = camera_path(index / (FPS * SECONDS - 1))
            scale = zoom * height / 300.0  # the view covers 300 / zoom source pixels vertically
            matrix = np.array([[scale, 0, width / 2 - cx * scale], [0, scale, height / 2 - cy * scale]], np.float32)
            frame = cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        samples_per_frame = 1024
        total = AUDIO_RATE * SECONDS
        for start in range(0, total, samples_per_frame):
            t = np.arange(start, min(start + samples_per_frame, total)) / AUDIO_RATE
            tone = (0.1 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            for packet in audio.encode(frame):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    partial.replace(path)


def main() -> None:
    portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512, public domain (NASA)
    cv2.imwrite(str(HERE / "astronaut.jpg"), cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    face = imageops.largest_face(portrait)
    box = imageops.square_box(face, 2.0)
    head = imageops.crop_square(portrait, box, 256)
    cv2.imwrite(str(HERE / "astronaut_pencil.png"), imageops.pencil_sketch(head, blur_sigma=8.0))
    cv2.imwrite(str(HERE / "astronaut_line.png"), imageops.line_sketch(head, sigma=2.0))
    write_clip(portrait, HERE / "astronaut_gray.mp4")
    for name in ("astronaut.jpg", "astronaut_pencil.png", "astronaut_line.png", "astronaut_gray.mp4"):
        print(HERE / name)


if __name__ == "__main__":
    main()
