"""Camera pans with a slow zoom across still photographs: colour clips in which new content keeps entering.

They test what talking heads cannot: colour that must follow the motion,
and colour for what enters the frame, which only a model can give. Made
from the held-out split of a photo folder (`training.scenes.split_photos`),
so the scene model never saw them:

    python -m colorstream.stream.pan_clips ../shared/data/scenes -o runs/pans
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from colorstream.stream.video_io import VideoWriter


def pan_frames(photo: np.ndarray, frames: int, size: tuple[int, int], rng: np.random.Generator,
               travel: float = 0.6) -> list[np.ndarray]:
    """`frames` BGR views of `size` (width, height): a window that slides across `travel` of the room the photo
    leaves it, while it narrows."""
    height, width = photo.shape[:2]
    out_width, out_height = size
    start = min(width, height * out_width / out_height) * rng.uniform(0.55, 0.65)  # window width at frame 0
    end = start * rng.uniform(0.8, 0.9)  # a slow zoom in
    direction = 1 if rng.random() < 0.5 else -1
    views = []
    for index in range(frames):
        t = index / max(frames - 1, 1)
        window = start + (end - start) * t
        window_height = window * out_height / out_width
        # the window's centre travels across most of the free width, and drifts a little vertically
        free_x, free_y = width - window, height - window_height
        cx = window / 2 + free_x * (0.5 + direction * (t - 0.5) * travel)
        cy = window_height / 2 + free_y * (0.5 + 0.3 * np.sin(np.pi * t))
        scale = out_width / window
        matrix = np.array([[scale, 0.0, out_width / 2 - cx * scale], [0.0, scale, out_height / 2 - cy * scale]])
        views.append(cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT))
    return views


def write_clip(path: Path, frames: list[np.ndarray], rate: int = 25) -> None:
    from colorstream import imageops
    from colorstream.stream.evaluation import chroma_planes

    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, Fraction(rate), Fraction(1, rate), crf=12, overwrite=False) as writer:
        for index, frame in enumerate(frames):
            writer.write(imageops.gray_to_luma(imageops.to_gray(frame)), chroma_planes(frame), index)


def main(argv: list[str] | None = None) -> None:
    from colorstream.training.scenes import read_images, split_photos

    parser = argparse.ArgumentParser(prog="python -m colorstream.stream.pan_clips",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="a folder of colour photos")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for pan_<n>.mp4")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"],
                        help="which split of the folder (as the scene model's training splits it)")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="256x192", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--travel", type=float, default=0.6, help="share of the free width the window travels")
    args = parser.parse_args(argv)
    size = tuple(int(part) for part in args.size.split("x"))
    rng = np.random.default_rng(args.seed)
    paths = split_photos(args.photos, 10, 10)[args.split]
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), min(args.count, len(paths)), replace=False))]
    args.output.mkdir(parents=True, exist_ok=True)
    for number, (path, photo) in enumerate(zip(chosen, read_images(chosen))):
        target = args.output / f"pan_{number}_{path.stem}.mp4"
        write_clip(target, pan_frames(photo, args.frames, size, rng, args.travel))
        print(target)


if __name__ == "__main__":
    main()
