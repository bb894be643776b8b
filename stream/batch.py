"""A batch: every input of a `colorize` run, in this process, in local worker processes, or on Ray.

- Planning: with an output folder, its journal (`stream.journal`) says which outputs are done with these
  settings and models (`--resume` skips them) and which existing ones are the journal's own to redo;
  any other existing output stops the run before any work unless `--overwrite` is given.
- Running: one task at a time per worker, never more files in flight than workers, so a crash or a
  signal loses at most those. A long video with `--segment-seconds` becomes segment tasks and a join.
- Every input is journaled "started" when its work begins and "done" or "failed" when it ends; a failure
  stays with its input and the batch goes on. A lost worker process's task is retried.
- Stopping: Ctrl-C, SIGTERM or SIGHUP stop the workers (their partial outputs are removed) and keep the
  journal; what a killed process left (temporary files, segment folders) is removed at the end of a run,
  or at the start of the next one.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from colorstream import files
from colorstream.files import OutputError
from colorstream.stream import journal as journals
from colorstream.stream import segments
from colorstream.stream.inputs import Collection, Job
from colorstream.stream.jobs import Models, Options
from colorstream.stream.workers import (CORES_PER_FILE, FileTask, InlineEngine, JoinTask, ProcessEngine,
                                       SegmentTask, Task, Worker, first_line)

PREFIX = "colorstream colorize"
SPEED_ONLY = ("threads", "batch_frames")  # options that change the speed, never the output (README)


@dataclass
class BatchOptions:
    workers: int | None = None  # files at once; None: one per CORES_PER_FILE cores (of the cluster with `ray`)
    resume: bool = False  # skip inputs the journal shows done with the same settings and models
    overwrite: bool = False  # redo and replace every existing output
    segment_seconds: float = 0.0  # split videos at least twice this long into segments at scene cuts; 0: never
    ray: str | None = None  # a Ray cluster's address, or "local" to start one here
    progress: bool = True  # progress bars: over files, and over frames when files run one at a time here
    echo: bool = True  # a line per file on stdout, errors and warnings on stderr
    retries: int = 2  # how often a task whose local worker process died is run again


def default_workers() -> int:
    """One file at a time per CORES_PER_FILE cores of this machine (README, "Whole folders")."""
    return max(1, (os.cpu_count() or 1) // CORES_PER_FILE)


def output_settings(options: Options, fingerprints: dict[str, str]) -> dict:
    """What decides an output, as the journal records it: every option but the speed ones, and the models."""
    settings = {name: value for name, value in asdict(options).items() if name not in SPEED_ONLY}
    return {**settings, "models": fingerprints}


@dataclass
class Entry:
    """One input's way through a run."""

    job: Job
    overwrite: bool
    stages: list[list[Task]] = field(default_factory=list)  # what is left to run, stage by stage
    current: list[Task] = field(default_factory=list)  # the stage running now
    reports: dict[Task, dict] = field(default_factory=dict)  # the current stage's results so far
    segment_reports: list[dict] = field(default_factory=list)
    pending: int = 0  # its tasks queued or in flight
    parts: Path | None = None  # the folder of a segmented video's parts
    identity: dict | None = None
    started: float = 0.0
    settled: bool = False


def run(collection: Collection, models: Models, options: Options, batch: BatchOptions) -> dict:
    """Colorize every job of `collection`; the statistics that `--stats-json` writes.

    An expected failure of the whole run (an existing output, a bad checkpoint, a locked journal) is an
    `OutputError`, `CheckpointError` or `MediaError` raised before any input is started.
    """
    return Run(collection, models, options, batch).execute()


class Run:
    def __init__(self, collection: Collection, models: Models, options: Options, batch: BatchOptions):
        self.collection, self.models, self.options, self.batch = collection, models, options, batch
        self.jobs = collection.jobs
        self.journal = journals.Journal(collection.out_dir) if collection.out_dir is not None else None
        self.reports: list[dict] = []
        self.failures: list[str] = list(collection.failures)
        self.skipped: list[Job] = []
        self.redone = 0  # outputs made before with other settings, from another input, or left unfinished
        self.entries: list[Entry] = []
        self.created: list[Path] = []  # output folders this run made, outermost first
        self.bar: tqdm | None = None
        self.engine = None

    # ------------------------------------------------------------------------ console

    def say(self, text: str) -> None:
        if self.batch.echo:
            tqdm.write(text, file=sys.stdout)

    def warn(self, text: str) -> None:
        if self.batch.echo:
            tqdm.write(f"{PREFIX}: {text}", file=sys.stderr)

    # ------------------------------------------------------------------------ planning

    def plan(self, settings: dict) -> None:
        """Split the jobs into skipped (done before) and entries to run; existing outputs nobody said to
        replace stop the run, all named at once."""
        blocked = []
        for job in self.jobs:
            if self.batch.resume and self.journal.finished(job.source, job.target, settings):
                self.skipped.append(job)
            elif self.batch.overwrite or not os.path.lexists(job.target):
                # in a folder whose journal this run holds, whatever appears at an output later is this run's own
                # (a worker lost after writing it): replacing it is safe; a lone output never replaces another run's
                self.entries.append(Entry(job, self.batch.overwrite or self.journal is not None))
            elif self.batch.resume and self.journal.made_here(job.target):
                self.entries.append(Entry(job, overwrite=True))
                self.redone += 1
            else:
                blocked.append(job.target)
        if not blocked:
            return
        names = ", ".join(str(target) for target in blocked[:3]) + (
            f" and {len(blocked) - 3} more" if len(blocked) > 3 else "")
        if self.journal is None:
            raise OutputError(f"{names}: already exists; not replaced (pass --overwrite to replace it)")
        if self.batch.resume:
            raise OutputError(f"{names}: already exist{'s' if len(blocked) == 1 else ''} but the journal in "
                              f"{self.journal.folder} does not show them made there; not replaced (pass "
                              "--overwrite to redo them)")
        raise OutputError(f"{names}: already exist{'s' if len(blocked) == 1 else ''}; not replaced: pass --resume "
                          "to skip the outputs made with these settings and redo the rest, or --overwrite to "
                          "redo them all")

    def make_folder(self, folder: Path, root: bool = False) -> None:
        """Create `folder` and the folders above it that are missing, remembering which were made; the
        output folder (`root`) must also take a new file."""
        missing, probe = [], folder
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        if root:
            files.ensure_writable_dir(folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)
        self.created.extend(reversed(missing))

    # ------------------------------------------------------------------------ the run

    def execute(self) -> dict:
        jobs = self.jobs
        if not jobs:
            raise OutputError("no video or image files to colorize")
        files.refuse_inputs([job.target for job in jobs], [job.source for job in jobs])
        for job in jobs:
            files.refuse_package_path(job.target)
        if self.batch.resume and self.journal is None:
            raise OutputError("--resume needs an output folder, where the journal is kept (-o FOLDER/)")
        fingerprints = self.models.fingerprints(self.options.scope)  # a missing checkpoint stops the run here
        settings = output_settings(self.options, fingerprints)
        self.plan(settings)
        root = self.collection.out_dir or jobs[0].target.parent
        started = time.perf_counter()
        try:
            self.make_folder(root, root=True)
            if self.journal is not None:
                self.journal.open()
                files.remove_partials(self.journal.in_flight())  # what a run that was killed left behind
            self.engine = self.start_engine(fingerprints) if self.entries else None
            for path in self.collection.not_media:
                self.warn(f"skipped {path}: not a video or image file")
            for failure in self.collection.failures:
                self.warn(failure)
            if self.skipped:
                self.say(f"{len(self.skipped)} of {len(jobs)} inputs already done with these settings and models; "
                         "skipped (--resume)")
            if self.redone:
                self.say(f"{self.redone} outputs made before with other settings or models, from an input changed "
                         "since, or left unfinished: made again (--resume)")
            self.bar = tqdm(total=len(self.entries), unit="file", desc="files", dynamic_ncols=True,
                            disable=not self.batch.progress or len(self.entries) < 2)
            with self.bar:
                self.loop(settings)
        except BaseException:
            self.stop(abort=True)
            raise
        self.stop(abort=False)
        return self.stats(time.perf_counter() - started)

    def start_engine(self, fingerprints: dict[str, str]):
        """The workers: Ray, local processes, or this process (which also proves the models load)."""
        tasks_at_most = len(self.entries) if self.batch.segment_seconds <= 0 else None
        if self.batch.ray is None:
            workers = min(self.batch.workers or default_workers(), tasks_at_most or sys.maxsize)
            if workers <= 1:
                worker = Worker(self.models, self.options, fingerprints=fingerprints, progress=self.batch.progress)
                return InlineEngine(worker)
        _, scene, _ = self.models.load(self.options.scope)  # a bad checkpoint is one error here, not one per worker
        self.models.load_stills_scene(self.options.scope, scene)
        if self.batch.ray is not None:
            from colorstream.stream.ray_runner import RayEngine

            return RayEngine(self.batch.ray, self.batch.workers, self.models, self.options, fingerprints)
        return ProcessEngine(workers, self.models, self.options, fingerprints)

    def loop(self, settings: dict) -> None:
        waiting = deque(self.entries)
        self.ready: deque[tuple[Entry, Task, int]] = deque()
        self.in_flight: dict[Future, tuple[Entry, Task, int]] = {}
        while waiting or self.ready or self.in_flight:
            while len(self.in_flight) < self.engine.slots and (self.ready or waiting):
                if self.ready:
                    entry, task, attempt = self.ready.popleft()
                    self.in_flight[self.engine.submit(task)] = (entry, task, attempt)
                else:
                    self.begin(waiting.popleft())
            finished, _ = wait(list(self.in_flight), return_when=FIRST_COMPLETED)
            for future in finished:
                self.settle(future, *self.in_flight.pop(future), settings)

    def begin(self, entry: Entry) -> None:
        """Journal the input as started and queue its first tasks."""
        job = entry.job
        entry.started = time.perf_counter()
        try:
            entry.identity = journals.identity(job.source)
        except OSError:
            pass  # the task says what is wrong with the input
        if self.journal is not None:
            self.journal.append(job.target, "started", input=str(job.source))
        try:
            self.make_folder(job.target.parent)
            spans = None if job.is_image else segments.plan(job.source, job.target, self.batch.segment_seconds,
                                                             self.options.codec)
            if spans:
                entry.parts = files.temporary_folder(job.target)
                parts = tuple(segments.part_path(entry.parts, index, job.target) for index in range(len(spans)))
                entry.stages = [[SegmentTask(job.source, part, span) for part, span in zip(parts, spans)],
                                [JoinTask(job.source, job.target, parts, entry.overwrite)]]
            else:
                entry.stages = [[FileTask(job.source, job.target, entry.overwrite)]]
        except OSError as error:
            self.fail(entry, f"{job.target}: cannot write there ({error.strerror or error})")
            return
        self.queue_stage(entry)

    def queue_stage(self, entry: Entry) -> None:
        """The entry's next stage, ahead of other files' work: a file in flight is finished first."""
        stage = entry.current = entry.stages.pop(0)
        entry.pending = len(stage)
        self.ready.extendleft((entry, task, 0) for task in reversed(stage))

    def settle(self, future: Future, entry: Entry, task: Task, attempt: int, settings: dict) -> None:
        error = future.exception()  # never raises it: an interrupt of this process must stay one
        if error is not None and isinstance(error, self.engine.lost) and attempt < self.batch.retries:
            again = replace(task, overwrite=True) if isinstance(task, (FileTask, JoinTask)) else task  # it may
            self.ready.appendleft((entry, again, attempt + 1))  # have finished before its worker was lost
            return
        entry.pending -= 1
        if entry.settled:
            self.clean_parts(entry)
            return
        report = future.result() if error is None else {
            "error": f"{entry.job.source}: worker failed: {first_line(error)}"}
        if "error" in report:
            self.fail(entry, report["error"])
            return
        entry.reports[task] = report
        if entry.pending:
            return
        if entry.stages:
            entry.segment_reports = [entry.reports[done] for done in entry.current]
            entry.reports = {}
            self.queue_stage(entry)
            return
        self.succeed(entry, report, settings)

    def succeed(self, entry: Entry, report: dict, settings: dict) -> None:
        job = entry.job
        if entry.segment_reports:
            report = segments.merge_reports(job.source, job.target, entry.segment_reports, report,
                                            time.perf_counter() - entry.started)
        entry.settled = True
        if self.journal is not None:
            self.journal.append(job.target, "done", **(entry.identity or {}), settings=settings,
                                frames=report["frames"], seconds=round(time.perf_counter() - entry.started, 3),
                                output_size=job.target.stat().st_size)
        self.reports.append(report)
        self.say(summary_line(report, job.target))
        for warning in colorize_warnings(report):
            self.warn(f"warning: {job.source}: {warning}")
        self.clean_parts(entry)
        self.bar.update()

    def fail(self, entry: Entry, message: str) -> None:
        entry.settled = True
        self.failures.append(message)
        self.warn(message)
        if self.journal is not None:
            self.journal.append(entry.job.target, "failed", error=message)
        queued = [item for item in self.ready if item[0] is entry]
        self.ready = deque(item for item in self.ready if item[0] is not entry)
        entry.pending -= len(queued)
        self.clean_parts(entry)
        if self.bar is not None:
            self.bar.update()

    def clean_parts(self, entry: Entry) -> None:
        if entry.parts is not None and not entry.pending:
            shutil.rmtree(entry.parts, ignore_errors=True)
            entry.parts = None

    def stop(self, abort: bool) -> None:
        """Stop the workers (at once on `abort`: an interrupt or an error), then remove what unfinished work
        left: parts, temporary files, and what this run created if nothing came of it."""
        if self.engine is not None:
            self.engine.close(abort)
        begun = [entry for entry in self.entries if entry.started]
        for entry in begun:
            entry.pending = 0
            self.clean_parts(entry)
        held = self.journal is not None and self.journal.locked  # then no other run works in this folder
        if held:
            files.remove_partials([entry.job.target for entry in begun])
            made_nothing = not self.reports and self.collection.out_dir in self.created
            if made_nothing or not self.journal.path.stat().st_size:
                self.journal.path.unlink()  # a run that made nothing leaves no folder (or empty journal) behind
            self.journal.close()
        if not self.reports:
            for folder in reversed(self.created):
                try:
                    folder.rmdir()
                except OSError:  # not empty after all, or gone
                    pass

    def stats(self, seconds: float) -> dict:
        frames = sum(report["frames"] for report in self.reports)
        totals = {"inputs": len(self.jobs) + len(self.collection.failures), "done": len(self.reports),
                  "skipped_done_before": len(self.skipped), "failed": len(self.failures),
                  "not_media": len(self.collection.not_media), "frames": frames, "seconds": round(seconds, 3),
                  "fps": round(frames / seconds, 2) if seconds else 0.0,
                  "files_per_hour": round(3600 * len(self.reports) / seconds, 1) if seconds else 0.0,
                  "engine": self.engine.name if self.engine else None,
                  "workers": self.engine.slots if self.engine else 0,
                  "segment_seconds": self.batch.segment_seconds}
        return {"files": self.reports, "failures": self.failures,
                "skipped": {"done_before": [str(job.source) for job in self.skipped],
                            "not_media": [str(path) for path in self.collection.not_media]},
                "batch": totals}


def colorize_warnings(report: dict) -> list[str]:
    """What a user should know about a video that was written: damage, a cut, streams left behind."""
    warnings = []
    if report.get("bad_packets"):
        warnings.append(f"{report['bad_packets']} damaged packets skipped")
    if report.get("truncated"):
        warnings.append(f"video ends after {report['frames']} of {report['frames_expected']} frames the file states")
    if report.get("dropped_streams"):
        counts = ", ".join(f"{count} {kind}" for kind, count in report["dropped_streams"].items())
        total = sum(report["dropped_streams"].values())
        warnings.append(f"dropped {total} stream{'s' if total > 1 else ''} ({counts}): only the first video stream "
                        "and the audio are kept")
    return warnings


def summary_line(report: dict, target: Path) -> str:
    if "ms_per_frame" not in report:
        return f"{target}: {report['frames']} image, {report['frames_with_faces']} with faces"
    stages = ", ".join(f"{name} {ms:.1f}" for name, ms in report["ms_per_frame"].items())
    pieces = f" in {report['segments']} segments" if report.get("segments", 1) > 1 else ""
    return (f"{target}: {report['frames']} frames ({report['frames_with_faces']} with faces){pieces} at "
            f"{report['fps']} fps; ms/frame: {stages}")
