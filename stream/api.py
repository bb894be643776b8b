"""colorstream from Python, for video: one file, a whole batch, or frames you decode or capture yourself.

    from colorstream.stream import api
    from colorstream.stream.jobs import Options

    report = api.colorize_file("film.mp4", "film_colour.mp4", Options(crf=20))  # what --stats-json says of it
    stats = api.colorize_batch(["archive/"], "colour/", resume=True, workers=2)  # what --stats-json writes
    colorizer = api.FrameColorizer(fps=25)
    for colour in colorizer.stream(frames):  # numpy gray or BGR in, BGR out, in order, none dropped
        ...
    colour = colorizer(frame)  # or one frame at a time, e.g. from a capture callback

Each call uses the same pipeline, options (`stream.jobs.Options`) and models (`stream.jobs.Models`) as
`colorstream colorize`, and the same safety: outputs go to a temporary name and are renamed when whole,
and an existing output is only replaced with `overwrite`.
"""

from __future__ import annotations

from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from colorstream.stream import batch
from colorstream.stream.frames import Frame
from colorstream.stream.inputs import collect
from colorstream.stream.jobs import Models, Options, build_stages, use_threads
from colorstream.stream.pipeline import Pipeline
from colorstream.stream.video_io import MediaError


def colorize_file(source: str | Path, target: str | Path, options: Options | None = None,
                  models: Models | None = None, overwrite: bool = False, segment_seconds: float = 0.0,
                  workers: int = 1, progress: bool = False) -> dict:
    """One video or image into `target`; its report (frames, fps, ms per stage...). A file that cannot be
    colorized raises `MediaError` (a ValueError) with the one-line reason."""
    stats = colorize_batch([source], target, options, models, overwrite=overwrite, segment_seconds=segment_seconds,
                           workers=workers, progress=progress, folder=False)
    if stats["failures"]:
        raise MediaError(stats["failures"][0])
    return stats["files"][0]


def colorize_batch(inputs: Iterable[str | Path], out_dir: str | Path, options: Options | None = None,
                   models: Models | None = None, *, resume: bool = False, overwrite: bool = False,
                   workers: int | None = 1, segment_seconds: float = 0.0, ray: str | None = None,
                   progress: bool = False, echo: bool = False, folder: bool = True) -> dict:
    """Files and folders (walked, their tree mirrored) into `out_dir`, with its journal: the statistics
    `--stats-json` writes ("files", "failures", "skipped", and the "batch" totals). `workers` None is the
    command's default (one per 2 cores); `ray` is a cluster address or "local"."""
    collection = collect([Path(source) for source in inputs], out_dir, folder=folder)
    settings = batch.BatchOptions(workers=workers, resume=resume, overwrite=overwrite,
                                  segment_seconds=segment_seconds, ray=ray, progress=progress, echo=echo)
    return batch.run(collection, models or Models(), options or Options(), settings)


class FrameColorizer:
    """Frames in, frames out: uint8 gray (H, W) or BGR (H, W, 3) arrays, colorized by the models and stages
    `colorize` uses, with their state (face tracks, smoothing) carried from frame to frame.

    `fps` spaces the frames in time, for the face boxes' filter. Call it on one frame at a time, or hand
    `stream` an iterable: it runs the stages in threads with batched inference, as a file is colorized.
    Either way the frames come back in order, none dropped, and the same.
    """

    def __init__(self, options: Options | None = None, models: Models | None = None, fps: float = 25.0):
        self.options = options or Options()
        self.predictor, self.scene, self.palette = (models or Models()).load(self.options.scope)
        self.time_base = 1 / Fraction(fps).limit_denominator(1001)
        self.stages = build_stages(self.predictor, self.options, live=True, scene=self.scene, palette=self.palette)
        self.count = 0
        use_threads(self.options)

    def _frame(self, index: int, image: np.ndarray) -> Frame:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"frame {index} is not a uint8 gray (H, W) or BGR (H, W, 3) array")
        return Frame.from_bgr(index, image, pts=index, time_base=self.time_base)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        frames = [self._frame(self.count, image)]
        self.count += 1
        for stage in self.stages:
            frames = stage.process(frames)
        return frames[0].output_bgr()

    def stream(self, images: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Every image colorized, in order; the stream starts afresh, apart from frames given to `__call__`."""
        frames = (self._frame(index, image) for index, image in enumerate(images))
        pipeline = Pipeline(frames, build_stages(self.predictor, self.options, live=False, scene=self.scene,
                                                 palette=self.palette),
                            leaky=False, queue_size=self.options.batch_frames * 2, source_name="frames")
        with closing(pipeline.run()) as results:
            for frame in results:
                yield frame.output_bgr()
