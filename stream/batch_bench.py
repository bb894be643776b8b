"""Measurements behind the README's "Whole folders and many machines": they time and print, and assert nothing.

    python -m colorstream.stream.batch_bench throughput FOLDER [--repeats 2] [colorize flags]
    python -m colorstream.stream.batch_bench ray-overhead [--files 12]
    python -m colorstream.stream.batch_bench long-clip CLIP... -o LONG.mp4 [--minutes 4]
    python -m colorstream.stream.batch_bench segments LONG.mp4 --segment-seconds 30 --workers 2

`throughput` runs `colorstream colorize FOLDER` as users run it (a fresh process each time) sequentially,
with `--workers 2` and with `--ray local`, alternating the modes over the repeats because the machine is
shared; it reports the median wall time, the ratios to sequential, the CPU time per wall second of a
sequential run (how many cores one file keeps busy: what `--workers` defaults from), and what a
1,000-hour archive would cost at the sequential rate. `ray-overhead` times Ray's start-up and what a file
costs on a Ray actor beyond what it costs in one process. `long-clip` concatenates clips into one long
gray video with a tone for audio; `segments` times it in one piece and in segments and compares the two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from colorstream.stream.jobs import Models, Options

ARCHIVE_HOURS = 1000
ARCHIVE_FPS = 24  # film
MODES = {"sequential": ["--workers", "1"], "--workers 2": ["--workers", "2"], "--ray local": ["--ray", "local"],
         "--ray local --workers 2": ["--ray", "local", "--workers", "2"]}


def timed_colorize(inputs: list[str], flags: list[str]) -> dict:
    """One `colorstream colorize` process into a fresh folder: wall time, CPU time, and its batch totals."""
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch) / "stats.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "colorstream.cli", "colorize", *inputs, "-o", f"{scratch}/out/",
                        "--quiet", "--stats-json", str(stats), *flags], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        totals = json.loads(stats.read_text())["batch"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "frames": totals["frames"], "files": totals["done"], "busy": totals["seconds"]}


def throughput(folder: Path, repeats: int, flags: list[str]) -> None:
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(repeats):
        for mode, mode_flags in MODES.items():  # alternated: the machine's load drifts
            runs[mode].append(timed_colorize([str(folder)], flags + mode_flags))
    sequential = statistics.median(run["wall"] for run in runs["sequential"])
    print(f"{runs['sequential'][0]['files']} files, {runs['sequential'][0]['frames']} frames; median of {repeats} "
          f"alternating runs; flags: {' '.join(flags) or '(defaults)'}\n")
    print("| mode | wall s | frames/s | files/hour | vs sequential |\n| --- | --- | --- | --- | --- |")
    for mode, made in runs.items():
        wall = statistics.median(run["wall"] for run in made)
        print(f"| {mode} | {wall:.1f} | {made[0]['frames'] / wall:.1f} | {3600 * made[0]['files'] / wall:.0f} | "
              f"{sequential / wall:.2f}x |")
    cores = statistics.median(run["cpu"] / run["wall"] for run in runs["sequential"])
    print(f"\nsequential: {cores:.2f} CPU-seconds per wall second (the cores one file at a time keeps busy)")
    fps = runs["sequential"][0]["frames"] / sequential
    frames = ARCHIVE_HOURS * 3600 * ARCHIVE_FPS
    machine_hours = frames / fps / 3600
    print(f"\n{ARCHIVE_HOURS:,} hours at {ARCHIVE_FPS} fps = {frames / 1e6:.1f} M frames; at {fps:.1f} frames/s per "
          f"machine like this one: {machine_hours:,.0f} machine-hours")
    for machines in (1, 10, 100, 1000):
        print(f"- {machines} machines: {machine_hours / machines:,.1f} hours")


def ray_overhead(files: int) -> None:
    """Ray's start-up, and the time a small file takes on an actor beyond its time in this process."""
    from colorstream.stream.ray_runner import RayEngine
    from colorstream.stream.workers import FileTask, InlineEngine, Worker

    options, models = Options(scope="faces"), Models()
    with tempfile.TemporaryDirectory() as scratch:
        clips = [Path(scratch) / f"clip{index:03d}.mp4" for index in range(files)]
        for index, clip in enumerate(clips):  # 10 frames of 160x120 each: the file's own work is small
            with av.open(str(clip), "w") as container:
                stream = container.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
                for number in range(10):
                    frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 10 * number + index, np.uint8), "bgr24")
                    frame.pts = number
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))

        def per_file(engine, name: str) -> float:
            started = time.perf_counter()
            for clip in clips:
                engine.submit(FileTask(clip, Path(scratch) / f"{name}_{clip.name}", True)).result()
            return (time.perf_counter() - started) / len(clips)

        fingerprints = models.fingerprints(options.scope)
        started = time.perf_counter()
        ray = RayEngine("local", 1, models, options, fingerprints)
        ready = time.perf_counter()
        ray.submit(FileTask(clips[0], Path(scratch) / "first.mp4", True)).result()  # waits for the actor's start
        warm = time.perf_counter()
        here = InlineEngine(Worker(models, options, cores=os.cpu_count(), fingerprints=fingerprints))
        passes = [(per_file(ray, "ray"), per_file(here, "here")) for _ in range(3)]  # alternated
        closing = time.perf_counter()
        ray.close(abort=False)
        stopped = time.perf_counter()
    on_ray, in_process = (statistics.median(times) for times in zip(*passes))
    print("| what | seconds |\n| --- | --- |")
    print(f"| `ray.init` of a local instance | {ready - started:.2f} |")
    print(f"| the first file: the actor starts, loads the models, colorizes | {warm - ready:.2f} |")
    print(f"| a 10-frame 160x120 file on a warm actor (median of 3 passes over {files}) | {on_ray:.4f} |")
    print(f"| the same file in this process | {in_process:.4f} |")
    print(f"| per-file overhead of Ray | {on_ray - in_process:.4f} |")
    print(f"| closing (actor killed, instance stopped) | {stopped - closing:.2f} |")


def long_clip(clips: list[Path], out: Path, minutes: float, size: tuple[int, int] = (640, 360)) -> None:
    """The clips, gray and letterboxed to one size at 25 fps, repeated to `minutes`, with a 440 Hz tone."""
    width, height = size
    images = []
    for clip in clips:
        with av.open(str(clip)) as container:
            for frame in container.decode(container.streams.video[0]):
                gray = frame.to_ndarray(format="gray")
                scale = min(width / gray.shape[1], height / gray.shape[0])
                small = cv2.resize(gray, (round(gray.shape[1] * scale) // 2 * 2, round(gray.shape[0] * scale) // 2 * 2),
                                   interpolation=cv2.INTER_AREA)
                canvas = np.zeros((height, width), np.uint8)
                y, x = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
                canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
                images.append(canvas)
    count = int(minutes * 60 * 25)
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(images[index % len(images)], format="gray")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(video.encode(frame.reformat(format="yuv420p")))
        container.mux(video.encode(None))
        samples = int(count / 25 * 48000)
        for start in range(0, samples, 1024):
            t = np.arange(start, min(start + 1024, samples)) / 48000
            tone = np.repeat((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], 2, axis=0)
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    print(f"{out}: {count} frames ({count / 25:.0f} s) at {width}x{height}, from {len(images)} frames of {len(clips)} "
          "clips")


def segments(clip: Path, seconds: float, workers: int, flags: list[str]) -> None:
    """One piece in one process against segments in `workers` processes: time, and whether the outputs agree."""
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for name, mode in (("one piece", ["--workers", "1"]),
                           (f"--segment-seconds {seconds:g} --workers {workers}",
                            ["--segment-seconds", str(seconds), "--workers", str(workers)])):
            out = Path(scratch) / f"{len(results)}.mp4"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "colorstream.cli", "colorize", str(clip), "-o", str(out), "--quiet",
                            *flags, *mode], check=True, stdout=subprocess.DEVNULL)
            results[name] = (time.perf_counter() - started, out)
        (one_time, one), (split_time, split) = results.values()
        with av.open(str(one)) as a, av.open(str(split)) as b:
            pts_a = [frame.pts for frame in a.decode(a.streams.video[0])]
            pts_b = [frame.pts for frame in b.decode(b.streams.video[0])]
            audio = [(float(c.streams.audio[0].duration * c.streams.audio[0].time_base)) for c in (a, b)]
    print("| run | wall s | vs one piece |\n| --- | --- | --- |")
    for name, (wall, _) in results.items():
        print(f"| {name} | {wall:.1f} | {one_time / wall:.2f}x |")
    print(f"\nframes {len(pts_a)} / {len(pts_b)}, timestamps equal: {pts_a == pts_b}, audio seconds {audio[0]:.3f} / "
          f"{audio[1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m colorstream.stream.batch_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("throughput")
    p.add_argument("folder", type=Path)
    p.add_argument("--repeats", type=int, default=2)
    p = commands.add_parser("ray-overhead")
    p.add_argument("--files", type=int, default=12)
    p = commands.add_parser("long-clip")
    p.add_argument("clips", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=4.0)
    p = commands.add_parser("segments")
    p.add_argument("clip", type=Path)
    p.add_argument("--segment-seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    args, flags = parser.parse_known_args()  # the rest are colorize's own flags, passed on
    if args.command == "throughput":
        throughput(args.folder, args.repeats, flags)
    elif args.command == "ray-overhead":
        ray_overhead(args.files)
    elif args.command == "long-clip":
        long_clip(args.clips, args.output, args.minutes)
    else:
        segments(args.clip, args.segment_seconds, args.workers, flags)


if __name__ == "__main__":
    main()
