"""Workers: one loaded set of models that colorizes whole files, segments of long ones, and joins segments.

The same `Worker` runs in this process (`InlineEngine`, one file at a time), in each process of a local
pool (`ProcessEngine`, `--workers N`), and in each Ray actor (`stream.ray_runner`). An engine takes tasks
and returns `concurrent.futures.Future`s of their reports; `stream.batch` decides what runs when.

A task's expected failure (an unreadable input, an unwritable output) comes back as a report with an
"error", the same from every engine; a worker process that dies loses its task, which the batch retries.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import cv2
from tqdm import tqdm

from colorstream.files import OutputError
from colorstream.imageops import IMAGE_SUFFIXES
from colorstream.model.checkpoint import CheckpointError
from colorstream.stream import segments
from colorstream.stream.jobs import Models, Options, colorize_image, colorize_video
from colorstream.stream.keyframes import KeyframeError
from colorstream.stream.pipeline import PipelineError
from colorstream.stream.segments import Span
from colorstream.stream.video_io import MediaError

CORES_PER_FILE = 2  # a worker's share of the cores by default: on 2 cores, a second worker was slower (README)
EXPECTED = (MediaError, OutputError, PipelineError, CheckpointError, KeyframeError)  # one line, not a bug


@dataclass(frozen=True)
class FileTask:
    """A whole image or video."""

    source: Path
    target: Path
    overwrite: bool


@dataclass(frozen=True)
class SegmentTask:
    """One segment of a long video, into a part file of its own."""

    source: Path
    part: Path
    span: Span


@dataclass(frozen=True)
class JoinTask:
    """A long video's parts, joined into its output."""

    source: Path
    target: Path
    parts: tuple[Path, ...]
    overwrite: bool


Task = FileTask | SegmentTask | JoinTask


class Worker:
    """Models loaded once; `run` does one task at a time.

    `cores` is this worker's share of the machine: inference gets half of it (unless `Options.threads`
    says otherwise), as a lone run gets half of all the cores, and OpenCV's own pool gets all of it.
    Whatever the share, the output is the same (README, "Whole folders").
    """

    def __init__(self, models: Models, options: Options, cores: int | None = None,
                 fingerprints: dict[str, str] | None = None, progress: bool = False):
        if cores:
            options = replace(options, threads=options.threads or max(1, cores // 2))
            cv2.setNumThreads(cores)
        self.models, self.options, self.progress = models, options, progress
        self.predictor, self.scene, self.palette = models.load(options.scope)
        self.keyframes = models.keyframe_paths()
        found = models.fingerprints(options.scope)
        self.mismatch = None if fingerprints in (None, found) else (
            f"this worker's models ({found}) are not the ones the run was planned with ({fingerprints}): every "
            "machine needs the same colorstream and checkpoint files")

    @cached_property
    def stills_scene(self):
        """The whole-frame model for images, loaded at the first image: a batch of videos never needs it."""
        return self.models.load_stills_scene(self.options.scope, self.scene)

    def run(self, task: Task) -> dict:
        """The task's report, or {"error": one line} when the input or the output is at fault."""
        try:
            if self.mismatch:
                raise CheckpointError(self.mismatch)
            if isinstance(task, SegmentTask):
                return colorize_video(task.source, task.part, self.predictor, self.options, progress=False,
                                      scene=self.scene, palette=self.palette, span=task.span)
            if isinstance(task, JoinTask):
                return segments.join(task.source, task.target, list(task.parts), task.overwrite)
            if task.source.suffix.lower() in IMAGE_SUFFIXES:
                return colorize_image(task.source, task.target, self.predictor, self.options, task.overwrite,
                                      self.stills_scene, self.palette)
            return colorize_video(task.source, task.target, self.predictor, self.options, progress=self.progress,
                                  overwrite=task.overwrite, scene=self.scene, keyframes=self.keyframes,
                                  palette=self.palette)
        except EXPECTED as error:
            return {"error": str(error)}


def first_line(error: BaseException) -> str:
    """An error as one line for the user (Ray's errors carry whole tracebacks)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def done(report: dict) -> Future:
    future: Future = Future()
    future.set_result(report)
    return future


class InlineEngine:
    """Tasks run here, one at a time, as they are submitted: `--workers 1`."""

    lost: tuple[type[BaseException], ...] = ()
    name = "inline"

    def __init__(self, worker: Worker):
        self.worker, self.slots = worker, 1

    def submit(self, task: Task) -> Future:
        return done(self.worker.run(task))

    def close(self, abort: bool) -> None:
        pass


class ProcessEngine:
    """`slots` worker processes on this machine, each with its own models and its share of the cores.

    Processes are spawned, not forked (torch's threads do not survive a fork). Each ignores Ctrl-C, which
    the batch handles, ends its task cleanly on SIGTERM (its partial output removed) and gets SIGTERM when
    the batch's process dies, however it dies. A process that dies breaks the pool: its tasks fail with
    `BrokenProcessPool` (retried by the batch) and the next task starts a new pool.
    """

    lost = (BrokenProcessPool,)
    name = "processes"

    def __init__(self, slots: int, models: Models, options: Options, fingerprints: dict[str, str]):
        self.slots = slots
        cores = max(1, (os.cpu_count() or 1) // slots)
        self._args = (models, options, cores, fingerprints)
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=self._args)

    def submit(self, task: Task) -> Future:
        try:
            return self.pool.submit(_run, task)
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()
            return self.pool.submit(_run, task)

    def close(self, abort: bool) -> None:
        """Let the processes end; with `abort`, stop them first: tasks in flight end as on SIGTERM, removing
        their partial outputs."""
        if abort:
            for process in list(getattr(self.pool, "_processes", {}).values()):  # no public way before 3.14
                if process.is_alive():
                    process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


_worker: Worker | None = None
_busy = False  # a task is in hand
_stopping = False  # SIGTERM came: the task in hand is being unwound


def _start_worker(models: Models, options: Options, cores: int, fingerprints: dict[str, str]) -> None:
    global _worker
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the batch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    tqdm.set_lock(threading.RLock())  # not tqdm's default, a process-shared lock that an exit on SIGTERM would leak
    _worker = Worker(models, options, cores, fingerprints)


def _stop(signum: int, frame) -> None:
    """SIGTERM: unwind the task in hand (its writer removes the partial file), then exit; an idle worker exits
    at once. A second SIGTERM during the unwinding is ignored, so the clean-up is not cut short. The process
    always ends: a pool that is shutting down sends it no more work."""
    global _stopping
    if not _busy:
        os._exit(128 + signum)
    if not _stopping:
        _stopping = True
        raise KeyboardInterrupt(signal.Signals(signum).name)


def _run(task: Task) -> dict:
    global _busy
    _busy = True
    try:
        return _worker.run(task)
    finally:
        _busy = False
        if _stopping:
            os._exit(128 + signal.SIGTERM)
