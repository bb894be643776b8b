"""The two jobs built from the pipeline: file to file (`colorize`) and camera to window (`live`)."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from colorstream.files import write_image_atomic
from colorstream.model.checkpoint import STILLS_OBJECTIVE, VIDEO_OBJECTIVE
from colorstream.model.inference import Predictor, ScenePredictor, checkpoint_file, load
from colorstream.stream.frames import Frame
from colorstream.stream.keyframes import KeyframeColour, KeyframeStage, propagate, read_keyframe
from colorstream.stream.palette import Palette
from colorstream.stream.pipeline import Pipeline, PipelineError, Stage
from colorstream.stream.segments import Span, span_frames
from colorstream.stream.smoothing import DEFAULT_SMOOTHING, FlowSmoothing, still_weight
from colorstream.stream.stages import BackgroundSceneColour, Composite, Detect, Infer, SceneColour, Sketchify, Smooth
from colorstream.stream.tracking import FaceTracker
from colorstream.stream.video_io import MediaError, VideoReader, VideoWriter


@dataclass
class Options:
    smoothing: str = DEFAULT_SMOOTHING
    window: int = 5
    detect_every: int = 3
    detect_side: int = 480  # full-frame scans run on the frame downscaled to this longer side
    min_face: int = 40
    reach: float = 1.3  # face square fed to the model and coloured, relative to the checkpoint's crop; docs/HISTORY.md
    batch_frames: int = 8  # frames per inference batch in file mode
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    saturation: float = 0.0  # chroma gain of the model's output; 0: the gain the checkpoint fitted for video
    threads: int = 0  # torch threads for inference; 0: one per two cores, since the other stages need the rest
    scope: str = "frame"  # "frame": the scene model colours the whole frame, the face model the faces; "faces"
    scene_every: int = 3  # the scene model runs on every k-th frame; flow carries its colour between (README)


VIDEO_SCENE_MODEL, STILLS_SCENE_MODEL = "scene", "scene-stills"  # the bundled whole-frame models of each use


@dataclass(frozen=True)
class Models:
    """Where a video's colour comes from: the models, by bundled name or checkpoint file, and where they run;
    a `--reference` image's palette; a video's keyframes (frame index, colour image).

    Only names travel to worker processes and Ray actors: each loads its own copy once, and checks that
    it loaded the same files as the run that planned the work (`fingerprints`).
    """

    model: str = "video"  # the face model (VIDEO_MODEL_CARD.md)
    scene_model: str | None = None  # the whole-frame model, used with `Options.scope` "frame"; None: each use's own
    device: str = "auto"
    reference: str | None = None  # a colour image whose palette steers the scene model's colour
    keyframes: tuple[tuple[int, str], ...] = ()  # for a single video: colour images of some of its frames

    def files(self, scope: str) -> dict[str, Path]:
        paths = {"model": checkpoint_file(self.model, "video")}
        if scope == "frame":
            paths["scene_model"] = checkpoint_file(self.scene_name(still=False))
            paths["stills_scene_model"] = checkpoint_file(self.scene_name(still=True))
        if self.reference:
            paths["reference"] = Path(self.reference)
        paths.update({f"keyframe {index}": Path(path) for index, path in self.keyframes})
        return paths

    def load(self, scope: str) -> tuple[Predictor, ScenePredictor | None, Palette | None]:
        """The face model, the scene model when the whole frame is coloured (`scope` "frame"), the palette."""
        predictor = load(self.model, self.device, default="video")
        scene = load(self.scene_name(still=False), self.device, task="scene") if scope == "frame" else None
        return predictor, scene, Palette.read(Path(self.reference)) if self.reference else None

    def scene_name(self, still: bool) -> str:
        """The whole-frame model of images (`still`) or of video: the one given, else the bundled one for that use."""
        return self.scene_model or (STILLS_SCENE_MODEL if still else VIDEO_SCENE_MODEL)

    def load_stills_scene(self, scope: str, video_scene: ScenePredictor | None) -> ScenePredictor | None:
        """The whole-frame model for images; `video_scene` (from `load`) again when it is the same file."""
        if scope != "frame":
            return None
        if self.scene_name(still=True) == self.scene_name(still=False):
            return video_scene
        return load(self.scene_name(still=True), self.device, task="scene")

    def keyframe_paths(self) -> dict[int, Path] | None:
        return {index: Path(path) for index, path in self.keyframes} or None

    def fingerprints(self, scope: str) -> dict[str, str]:
        """The SHA-256 of each checkpoint file in use: what the journal compares, and what a worker checks."""
        return {name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for name, path in self.files(scope).items()}


def use_threads(options: Options) -> None:
    """Give inference its share of the cores: the stage threads, the decoder and the encoder share the rest."""
    torch.set_num_threads(options.threads or max(1, (os.cpu_count() or 2) // 2))


def build_stages(predictor: Predictor, options: Options, live: bool, scene: ScenePredictor | None = None,
                 still: bool = False, keyframes: KeyframeColour | None = None,
                 palette: Palette | None = None, realtime: bool = False) -> list[Stage]:
    """The elements in order; `scene` colours the whole frame (with `options.scope` "frame"), decoded with
    the gain and temperature of its use: a `still` image or video; `keyframes` is the keyframes' colour,
    carried beforehand.
    `realtime` (the live session) runs the scene model beside the pipeline, so that no frame waits for it."""
    tracker = FaceTracker(detect_every=options.detect_every, min_face=options.min_face,
                          detect_side=options.detect_side)
    per_frame = options.smoothing == "flow"  # after compositing, in frame coordinates
    batch = 1 if live else options.batch_frames
    stages = [Stage("detect", Detect(tracker, predictor.crop_margin, options.reach))]
    if keyframes is not None:  # first: where their colour covers a frame or a face, no model is run
        stages.append(Stage("keyframes", KeyframeStage(keyframes)))
    if scene is not None and options.scope == "frame":
        use = STILLS_OBJECTIVE if still else VIDEO_OBJECTIVE
        gain, temperature = scene.saturation_gains[use], scene.temperatures[use]
        colour = (BackgroundSceneColour(scene, gain, options.scene_every, palette, temperature) if realtime else
                  SceneColour(scene, gain, options.scene_every, palette, still, temperature))
        stages.append(Stage("scene", colour, batch=batch))
    stages += [
        Stage("sketchify", Sketchify(predictor)),
        Stage("inference", Infer(predictor, options.saturation or predictor.saturation_gains[VIDEO_OBJECTIVE]),
              batch=batch),
        Stage("smoothing", Smooth("none" if per_frame else options.smoothing, options.window)),
        Stage("composite", Composite()),
    ]
    if per_frame:
        stages.append(Stage("flow smoothing", FlowSmoothing(still_weight(options.window))))
    return stages


def stage_report(pipeline: Pipeline, frames: int, seconds: float) -> dict:
    per_frame = {name: round(1000.0 * spent / max(frames, 1), 2) for name, spent in pipeline.seconds.items()}
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2) if seconds else 0.0,
            "ms_per_frame": per_frame, "dropped": pipeline.dropped}


def colorize_still(image: np.ndarray, predictor: Predictor, options: Options,
                   scene: ScenePredictor | None = None, palette: Palette | None = None) -> Frame:
    """One gray or colour image through the same stages as a video frame; `output_bgr()` gives the result."""
    frames = [Frame.from_bgr(0, image)]
    for stage in build_stages(predictor, options, live=False, scene=scene, still=True, palette=palette):
        frames = stage.process(frames)
    return frames[0]


def colorize_image(source: Path, target: Path, predictor: Predictor, options: Options,
                   overwrite: bool = True, scene: ScenePredictor | None = None,
                   palette: Palette | None = None) -> dict:
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{source}: not a readable image")
    frame = colorize_still(image, predictor, options, scene, palette)
    try:
        write_image_atomic(target, frame.output_bgr(), overwrite)
    except OSError as error:
        raise MediaError(f"{target}: cannot write ({error.strerror})") from None
    return {"input": str(source), "output": str(target), "frames": 1, "frames_with_faces": int(bool(frame.faces))}


def colorize_video(source: Path, target: Path, predictor: Predictor, options: Options,
                   progress: bool = True, overwrite: bool = True, scene: ScenePredictor | None = None,
                   keyframes: dict[int, Path] | None = None, palette: Palette | None = None,
                   span: Span | None = None) -> dict:
    """Every frame of `source`, colorized, into `target` with its timestamps, rotation and audio.

    With `keyframes` (frame index -> colour image of that frame), their colour is carried through their
    shots by a pass beside the pipeline (`stream.keyframes.propagate`), and leads wherever it reached;
    `palette` (`--reference`) steers the scene model's colour. With a `span`, only that segment of the
    video, without rotation or audio (`stream.segments` joins the segments and adds them); an empty span
    writes nothing and reports 0 frames.
    """
    use_threads(options)
    started = time.perf_counter()
    carried = propagate(source, keyframes, wait=False) if keyframes else None
    try:
        if carried is not None and palette is None and scene is not None:  # what the keyframes cannot reach
            # (another shot, what enters the frame) is usually of the same film: their palette steers the scene there
            palette = Palette.from_images(read_keyframe(path) for path in keyframes.values())
        setup_seconds = time.perf_counter() - started
        report = _colorize_video(source, target, predictor, options, progress, overwrite, scene, carried, palette,
                                 span)
    except PipelineError as error:  # the pass's own failure (a keyframe past the end, a full disk), as it was
        if carried is not None and carried.error is not None and error.__cause__ is carried.error:
            raise carried.error from None
        raise
    finally:
        if carried is not None:
            carried.close()
    if carried is not None:  # the pass ran beside the pipeline: its own time, and the setup before both
        per_frame = 1000.0 * carried.seconds / max(report["frames"], 1)
        report["ms_per_frame"]["keyframe propagation"] = round(per_frame, 2)
        report["seconds"] = round(report["seconds"] + setup_seconds, 3)
        report["fps"] = round(report["frames"] / report["seconds"], 2) if report["seconds"] else 0.0
        report["keyframes"] = sorted(keyframes)
    return report


def _colorize_video(source: Path, target: Path, predictor: Predictor, options: Options, progress: bool,
                    overwrite: bool, scene: ScenePredictor | None, keyframes: KeyframeColour | None,
                    palette: Palette | None, span: Span | None) -> dict:
    reader = VideoReader(source)
    try:
        frames = reader.frames() if span is None else span_frames(reader, span)
        first = next(frames, None)  # decoding one frame tells the rotation and proves the stream decodes
        if first is None:
            if span is not None and span.start is not None:
                return {"input": str(source), "output": None, "frames": 0}
            raise MediaError(f"{source}: no decodable video frames")
        pipeline = Pipeline(chain([first], frames), build_stages(predictor, options, live=False, scene=scene,
                                                                 keyframes=keyframes, palette=palette), leaky=False,
                            queue_size=options.batch_frames * 2, source_name="decode")
        if keyframes is not None:
            keyframes.stop_readers_with(pipeline.stop)
        count = with_faces = 0
        last = first
        started = time.perf_counter()
        bar = tqdm(total=reader.frame_count if span is None else None, unit="frame", desc=source.name,
                   disable=not progress, dynamic_ncols=True, leave=False)
        with VideoWriter.like(reader, target, options.codec, options.crf, options.preset, overwrite,
                              whole=span is None) as writer, closing(pipeline.run()) as results, bar:
            for frame in results:
                encode_started = time.perf_counter()
                writer.write(frame.luma, frame.chroma, frame.pts)
                pipeline.seconds["encode"] = pipeline.seconds.get("encode", 0.0) + time.perf_counter() - encode_started
                count += 1
                with_faces += bool(frame.faces)
                last = frame
                bar.update()
            if keyframes is not None:  # before the output is kept: a keyframe past the last frame is found at the end
                keyframes.wait()
    finally:
        reader.close()
    report = stage_report(pipeline, count, time.perf_counter() - started)
    audio_bad = writer.audio.bad_packets if writer.audio is not None else 0  # damaged audio is counted too
    report.update(frames_with_faces=with_faces, bad_packets=reader.bad_packets + audio_bad,
                  frames_expected=reader.frame_count, truncated=span is None and reader.ended_early(),
                  dropped_streams=reader.dropped_streams, input=str(source), output=str(target))
    if span is not None:  # what the joined file's checks need: where this segment lies
        report.update(first_seconds=first.seconds, last_seconds=last.seconds, stated_seconds=reader.stated_seconds)
    return report


class CameraSource:
    """Frames from `cv2.VideoCapture(index)` with a one-frame buffer, so what we read is fresh."""

    def __init__(self, index: int, size: tuple[int, int] | None = None):
        self.index = index
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            raise MediaError(f"camera {index} could not be opened")
        self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if size is not None:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        self.rate = Fraction(self.capture.get(cv2.CAP_PROP_FPS) or 30).limit_denominator(1001)

    def frames(self) -> Iterator[Frame]:
        started = time.perf_counter()
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            now = time.perf_counter()
            yield Frame.from_bgr(index, image, pts=int((now - started) * 1000), time_base=Fraction(1, 1000),
                                 captured=now)
            index += 1

    def close(self) -> None:
        self.capture.release()


def paced(frames: Iterable[Frame]) -> Iterator[Frame]:
    """Release frames at their own timestamps, so a file behaves like a camera (`--realtime`)."""
    origin = None
    for frame in frames:
        if origin is None:
            origin = (time.perf_counter(), frame.seconds)
        delay = origin[0] + frame.seconds - origin[1] - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        frame.captured = time.perf_counter()
        yield frame


def fitted(frames: Iterable[Frame], size: tuple[int, int]) -> Iterator[Frame]:
    """Frames scaled to cover `size` (width, height) and centre-cropped: a file standing in for a camera."""
    width, height = size

    def fit(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = max(width / w, height / h)
        scaled = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))),
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y0, x0 = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
        return np.ascontiguousarray(scaled[y0:y0 + height, x0:x0 + width])

    for frame in frames:
        frame.gray, frame.luma = fit(frame.gray), fit(frame.luma)
        if frame.image is not None:
            frame.image = fit(frame.image)
        yield frame


class LatestIndex:
    """Remembers the newest captured frame index, so rendering can skip stale frames."""

    def __init__(self, frames: Iterable[Frame]):
        self.frames, self.value = frames, -1

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames:
            self.value = frame.index
            yield frame


def open_window(name: str) -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise MediaError("cannot open a window: no display found (use --no-window)")
    try:
        cv2.namedWindow(name, cv2.WINDOW_NORMAL)
    except cv2.error as error:
        raise MediaError(f"cannot open a window ({str(error).strip()[:80]}); use --no-window") from None


def overlay(image: np.ndarray, lines: list[str]) -> None:
    for row, text in enumerate(lines):
        y = 22 + 22 * row
        cv2.putText(image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


def run_live(frames: Iterable[Frame], rate: Fraction, predictor: Predictor, options: Options, window: bool,
             record: Path | None = None, snapshot_dir: Path = Path("."), overwrite: bool = True,
             scene: ScenePredictor | None = None, palette: Palette | None = None) -> dict:
    """Colorize frames as they come, dropping stale ones; show and/or record them.

    Ctrl-C (or SIGTERM, which the CLI raises the same way) is how a session
    without a window ends: it stops the loop like q does, so the recording
    is finalised and kept and the report is returned.
    """
    use_threads(options)
    window_name = "colorstream: original | colorized"
    if window:
        open_window(window_name)
    latest = LatestIndex(frames)
    stages = build_stages(predictor, options, live=True, scene=scene, palette=palette, realtime=True)
    pipeline = Pipeline(latest, stages, leaky=True, queue_size=1)
    latencies: list[float] = []
    stale = snapshots = 0
    stopped_by = None
    started = time.perf_counter()
    with ExitStack() as stack:
        if window:
            stack.callback(cv2.destroyAllWindows)
        for stage in stages:  # the scene model's own thread
            if hasattr(stage.process, "close"):
                stack.callback(stage.process.close)
        results = stack.enter_context(closing(pipeline.run()))
        writer = None
        try:
            for frame in results:
                if latest.value - frame.index > 2:  # never show a frame more than 2 frames old
                    stale += 1
                    continue
                if record is not None and writer is None:  # the first frame tells the size
                    height, width = frame.gray.shape
                    # encoded in the render thread: the finer motion search would cost every frame latency
                    writer = stack.enter_context(VideoWriter(record, width, height, rate, Fraction(1, 1000),
                                                             options.codec, options.crf, options.preset,
                                                             overwrite=overwrite, finer_motion=False))
                if writer is not None:
                    writer.write(frame.luma, frame.chroma, int(round((frame.captured - started) * 1000)))
                latencies.append((time.perf_counter() - frame.captured) * 1000.0)
                if window:
                    elapsed = time.perf_counter() - started
                    view = np.hstack([frame.input_bgr(), frame.output_bgr()])
                    overlay(view, [f"{len(latencies) / elapsed:.1f} fps", f"latency {latencies[-1]:.0f} ms",
                                   f"dropped {pipeline.dropped + stale}"])
                    cv2.imshow(window_name, view)
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27):
                        stopped_by = "key"
                        break
                    if key == ord("s"):
                        snapshots += 1
                        cv2.imwrite(str(snapshot_dir / f"colorstream_snapshot_{snapshots:03d}.png"), view)
        except KeyboardInterrupt as interrupt:  # the user's way to stop: finish cleanly, keep what was made
            stopped_by = str(interrupt) or "SIGINT"
    report = stage_report(pipeline, len(latencies), time.perf_counter() - started)
    report.update(dropped=pipeline.dropped + stale, frames_captured=latest.value + 1, stopped_by=stopped_by)
    if latencies:
        report["latency_ms"] = {"p50": round(float(np.percentile(latencies, 50)), 1),
                                "p95": round(float(np.percentile(latencies, 95)), 1),
                                "max": round(float(np.max(latencies)), 1)}
    return report
