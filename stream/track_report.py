"""Which face tracks a clip gets, with and without the second cascade that confirms new tracks.

    python -m colorstream.stream.track_report CLIP [CLIP ...] [--sheet tracks.png]

For each clip it prints every track (first frame, last frame, frames) both
ways, and `--sheet` writes a contact sheet of each track's first face, marked
with whether the confirming tracker kept it, to judge by eye which are faces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

from colorstream import imageops
from colorstream.stream.tracking import FaceTracker, iou

TILE = 120


def tracks_of(path: Path) -> dict[bool, tuple[dict[int, dict[int, imageops.Box]], dict[int, np.ndarray]]]:
    """For the tracker without (False) and with (True) the second cascade, from one decode of the clip:
    track id -> {frame index: its box there}, and each track's first face as a tile."""
    trackers = {False: FaceTracker(confirm_cascade=None), True: FaceTracker()}
    found: dict[bool, tuple[dict, dict]] = {confirm: ({}, {}) for confirm in trackers}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            gray = imageops.luma_to_gray(frame.to_ndarray(format="gray"))
            seconds = float(frame.time) if frame.time is not None else index / 25.0
            for confirm, tracker in trackers.items():
                frames, tiles = found[confirm]
                for track in tracker.update(gray, seconds):
                    if track.id not in tiles:
                        tiles[track.id] = imageops.crop_square(gray, imageops.square_box(track.box, 1.6), TILE)
                    frames.setdefault(track.id, {})[index] = track.box
    return found


def is_kept(boxes: dict[int, imageops.Box], confirmed: dict[int, dict[int, imageops.Box]]) -> bool:
    """Whether a confirmed track shows the same face (IoU > 0.5) in some frame."""
    return any(iou(box, other[index]) > 0.5 for other in confirmed.values()
               for index, box in boxes.items() if index in other)


def span(boxes: dict[int, imageops.Box]) -> str:
    return f"frames {min(boxes)}-{max(boxes)} ({len(boxes)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m colorstream.stream.track_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path, metavar="CLIP")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet of every track's first face")
    args = parser.parse_args(argv)
    tiles = []
    for clip in args.clips:
        found = tracks_of(clip)
        (unconfirmed, faces), (confirmed, _) = found[False], found[True]
        print(f"{clip.name}: {len(unconfirmed)} tracks without the second cascade, {len(confirmed)} with it")
        for track, boxes in unconfirmed.items():
            verdict = "kept" if is_kept(boxes, confirmed) else "dropped"
            print(f"  {span(boxes)}: {verdict}")
            tile = cv2.cvtColor(faces[track], cv2.COLOR_GRAY2BGR)
            cv2.putText(tile, f"{clip.stem[:10]} {min(boxes)} {verdict}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 255, 255) if verdict == "kept" else (0, 0, 255), 1)
            tiles.append(tile)
        for boxes in confirmed.values():
            print(f"  with it: {span(boxes)}")
    if args.sheet and tiles:
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 6)
        cv2.imwrite(str(args.sheet), np.vstack([np.hstack(tiles[i:i + 6]) for i in range(0, len(tiles), 6)]))


if __name__ == "__main__":
    main()
