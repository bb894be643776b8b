"""The README's pictures of whole-frame colour and of keyframes, made from the bundled public-domain samples.

    .venv/bin/python docs/pictures.py

- docs/whole_frame.png: a frame of the sample clip: gray input | faces only (`--scope faces`) | the whole frame.
- docs/keyframes.png: a colour pan across the sample portrait, made gray: frame 60 gray | the keyframe (the true
  colour of frame 0) | frame 60 colorized from it | frame 60's true colour.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from colorstream.model.inference import load
from colorstream.stream.evaluation import _decoded, make_gray_clip
from colorstream.stream.jobs import Options, colorize_video
from colorstream.stream.pan_clips import pan_frames, write_clip

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "samples"
FRAME = 60


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((26, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, image])


def whole_frame(scratch: Path, face, scene) -> np.ndarray:
    clip = SAMPLES / "astronaut_gray.mp4"
    faces = scratch / "faces.mp4"
    whole = scratch / "whole.mp4"
    colorize_video(clip, faces, face, Options(scope="faces"), progress=False)
    colorize_video(clip, whole, face, Options(), progress=False, scene=scene)
    views = [next(frame for index, frame in enumerate(_decoded(path)) if index == 40) for path in (clip, faces, whole)]
    return np.hstack([labelled(view, text) for view, text in
                      zip(views, ("gray input", "--scope faces", "whole frame (default)"))])


def keyframes(scratch: Path, face, scene) -> np.ndarray:
    portrait = cv2.imread(str(SAMPLES / "astronaut.jpg"))
    truth_frames = pan_frames(portrait, 75, (256, 192), np.random.default_rng(3), travel=0.6)
    truth, gray, out = scratch / "truth.mp4", scratch / "gray.mp4", scratch / "out.mp4"
    write_clip(truth, truth_frames)
    make_gray_clip(truth, gray, Options())
    keyframe = scratch / "0.png"
    cv2.imwrite(str(keyframe), truth_frames[0])
    colorize_video(gray, out, face, Options(), progress=False, scene=scene, keyframes={0: keyframe})
    pick = lambda path: next(frame for index, frame in enumerate(_decoded(path)) if index == FRAME)  # noqa: E731
    views = [pick(gray), truth_frames[0], pick(out), pick(truth)]
    texts = (f"frame {FRAME}, gray", "keyframe: frame 0", f"frame {FRAME}, colorized", f"frame {FRAME}, truth")
    return np.hstack([labelled(view, text) for view, text in zip(views, texts)])


def main() -> None:
    face, scene = load("video", "cpu"), load("scene", "cpu", task="scene")
    with tempfile.TemporaryDirectory() as scratch:
        cv2.imwrite(str(HERE / "whole_frame.png"), whole_frame(Path(scratch), face, scene))
        cv2.imwrite(str(HERE / "keyframes.png"), keyframes(Path(scratch), face, scene))
    print(HERE / "whole_frame.png", HERE / "keyframes.png")


if __name__ == "__main__":
    main()
