"""`colorstream bench`: what colorizing costs, measured against the floor of merely re-encoding the clip.

For each clip, in one run:
- the floor: a plain PyAV decode -> BGR ndarray -> encode, with the encoder
  settings `colorize` uses, and again at libx264's default preset;
- `colorize` end to end, run as users run it (a fresh `colorstream colorize`
  process), giving fps, time per stage and peak RSS;
and once per run: inference alone in ms/face at several batch sizes, and the
live latency of `colorstream live --source CLIP --realtime --no-window`.

Timings on shared machines are noisy, so each figure is the median over
repeats, and colorize is reported as a ratio to the floor measured in the
same run. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from colorstream.model.inference import Predictor
from colorstream.stream.jobs import Options, use_threads
from colorstream.stream.video_io import (OUTPUT_CONTAINERS, REFINED_MOTION_PIXELS, MediaError, VideoReader,
                                         encoder_options)

REFERENCE_PRESET = "medium"  # libx264's default: the reference the issue compares against


@dataclass
class BenchConfig:
    repeats: int = 3
    batches: tuple[int, ...] = (1, 8, 32)
    live_size: tuple[int, int] = (640, 480)
    model: str = "video"  # a bundled model's name or a checkpoint file
    scene_model: str = "scene"  # the same, for the whole frame (with --scope frame)
    device: str = "auto"


def options_argv(options: Options) -> list[str]:
    """The command-line flags that rebuild `options` (each field has a flag of the same name); defaults are left
    to the command, since some of them ("0: automatic") are no value a user may type."""
    defaults = Options()
    return [text for field in fields(options) if getattr(options, field.name) != getattr(defaults, field.name)
            for text in (f"--{field.name.replace('_', '-')}", str(getattr(options, field.name)))]


def clip_facts(path: Path) -> dict:
    reader = VideoReader(path)
    try:
        frames = sum(1 for _ in reader.frames())
        seconds = frames / float(reader.rate)
        return {"clip": path.name, "size": f"{reader.width}x{reader.height}", "frames": frames,
                "fps": round(float(reader.rate), 3), "seconds": round(seconds, 2)}
    finally:
        reader.close()


def floor_fps(path: Path, options: Options, preset: str) -> float:
    """Frames per second of decode -> BGR ndarray -> encode, nothing else."""
    with tempfile.TemporaryDirectory() as scratch, av.open(str(path)) as source, \
            av.open(str(Path(scratch) / "floor.mp4"), "w") as target:
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        encoder = target.add_stream(options.codec, rate=video.average_rate or 25)
        encoder.time_base = encoder.codec_context.time_base = video.time_base
        encoder.width, encoder.height = video.codec_context.width, video.codec_context.height
        encoder.pix_fmt = "yuv420p" if encoder.width % 2 == 0 and encoder.height % 2 == 0 else "yuv444p"
        encoder.options = {"crf": str(options.crf), "preset": preset}
        count, started = 0, time.perf_counter()
        for frame in source.decode(video):
            image = frame.to_ndarray(format="bgr24")
            encoded = av.VideoFrame.from_ndarray(image, format="bgr24")
            encoded.pts, encoded.time_base = frame.pts, frame.time_base
            for packet in encoder.encode(encoded):
                target.mux(packet)
            count += 1
        for packet in encoder.encode(None):
            target.mux(packet)
        return count / (time.perf_counter() - started)


def run_cli(argv: list[str]) -> tuple[dict, float]:
    """Run `colorstream ARGV --stats-json ...` in a fresh process: its statistics and its peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch) / "stats.json"
        command = [sys.executable, "-m", "colorstream.cli", *argv, "--stats-json", str(stats)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: the child must not run on, and it cleans up its own partial files
            process.terminate()
            process.wait()
            process.stderr.close()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        error = process.stderr.read().strip().splitlines()
        process.stderr.close()
        if process.returncode != 0:
            raise MediaError(f"{' '.join(argv[:2])}: failed ({error[-1] if error else process.returncode})")
        return json.loads(stats.read_text()), usage.ru_maxrss / 1024.0  # Linux reports KiB


def model_argv(config: BenchConfig) -> list[str]:
    return ["--model", config.model, "--scene-model", config.scene_model, "--device", config.device]


def bench_clip(path: Path, facts: dict, options: Options, config: BenchConfig) -> dict:
    floors, references, runs = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(config.repeats):  # interleaved, so a slow spell of the machine touches all three alike
            floors.append(floor_fps(path, options, options.preset))
            references.append(floor_fps(path, options, REFERENCE_PRESET))
            suffix = path.suffix.lower() if path.suffix.lower() in OUTPUT_CONTAINERS else ".mkv"
            report, rss = run_cli(["colorize", str(path), "-o", str(Path(scratch) / f"out{suffix}"), "--overwrite",
                                   "--quiet", *options_argv(options), *model_argv(config)])
            runs.append((report["files"][0], rss))
    fps = statistics.median(run["fps"] for run, _ in runs)
    floor, reference = statistics.median(floors), statistics.median(references)
    stages = {name: round(statistics.median(run["ms_per_frame"][name] for run, _ in runs), 1)
              for name in runs[0][0]["ms_per_frame"]}
    return {**facts, "floor_fps": round(floor, 1), "reference_floor_fps": round(reference, 1),
            "colorize_fps": round(fps, 1), "ratio_to_floor": round(fps / floor, 2),
            "ratio_to_reference_floor": round(fps / reference, 2),
            "realtime_factor": round(fps / facts["fps"], 2) if facts["fps"] else None,
            "ms_per_frame": stages, "frames_with_faces": runs[0][0]["frames_with_faces"],
            "peak_rss_mib": round(max(rss for _, rss in runs))}


def bench_live(path: Path, options: Options, config: BenchConfig) -> dict:
    width, height = config.live_size
    reports = [run_cli(["live", "--source", str(path), "--realtime", "--no-window", "--size", f"{width}x{height}",
                        *options_argv(options), *model_argv(config)])[0] for _ in range(config.repeats)]
    return {"clip": path.name, "size": f"{width}x{height}",
            "p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in reports), 1),
            "p95_ms": round(statistics.median(r["latency_ms"]["p95"] for r in reports), 1),
            "dropped": statistics.median(r["dropped"] for r in reports),
            "frames_captured": reports[0]["frames_captured"],
            "fps": round(statistics.median(r["fps"] for r in reports), 2)}


def inference_ms_per_face(predictor: Predictor, batch: int, repeats: int) -> float:
    """Median ms per face of `predict_prepared` on random sketches, after a warm-up batch."""
    sketches = np.random.default_rng(0).integers(0, 256, (batch, predictor.resolution, predictor.resolution),
                                                 dtype=np.uint8)
    predictor.predict_prepared(sketches, batch)
    times = []
    for _ in range(max(repeats, 64 // batch)):
        started = time.perf_counter()
        predictor.predict_prepared(sketches, batch)
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times) / batch


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "pyav": av.__version__, "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "opencv": cv2.__version__, "numpy": np.__version__}


def run(clips: list[Path], live: Path | None, options: Options, config: BenchConfig, command: str) -> dict:
    """Every measurement, printed as it comes, and returned for the report."""
    from colorstream.model.inference import load

    facts = [clip_facts(clip) for clip in clips]  # a bad clip fails now, not after minutes of measuring
    use_threads(options)  # inference alone is timed with the threads it gets inside the pipeline
    results = {"command": command, "repeats": config.repeats, "batches": list(config.batches),
               "machine": machine(), "options": asdict(options), "clips": [], "inference_ms_per_face": {}}
    for clip, clip_fact in zip(clips, facts):
        c = bench_clip(clip, clip_fact, options, config)
        results["clips"].append(c)
        print(f"{clip.name}: colorize {c['colorize_fps']} fps, floor {c['floor_fps']} fps ({c['ratio_to_floor']}x), "
              f"real time {c['realtime_factor']}x, peak RSS {c['peak_rss_mib']} MiB", flush=True)
    devices = ["cpu"] + (["cuda"] if config.device in ("auto", "cuda") and torch.cuda.is_available() else [])
    for device in devices:
        predictor = load(config.model, device)
        per_batch = {str(b): round(inference_ms_per_face(predictor, b, 5 * config.repeats), 2) for b in config.batches}
        results["inference_ms_per_face"][device] = per_batch
        print(f"inference on {device}: " + ", ".join(f"batch {b} {ms} ms/face" for b, ms in per_batch.items()),
              flush=True)
    if live is not None:
        results["live"] = bench_live(live, options, config)
        r = results["live"]
        print(f"live {r['size']}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, dropped {r['dropped']}", flush=True)
    return results


def markdown(results: dict) -> str:
    m, o = results["machine"], results["options"]
    extra = encoder_options(o["codec"], o["crf"], o["preset"], 1, 1).get("x264-params")  # what small frames add
    refined = f" (with {extra} on frames of up to {REFINED_MOTION_PIXELS:,} pixels)" if extra else ""
    lines = [
        "# Benchmarks", "",
        "Made by the command below; every figure is the median of "
        f"{results['repeats']} runs. Nothing here is asserted by the tests.", "",
        "```", results["command"], "```", "",
        f"- Machine: {m['cores']} cores, {m['cpu']}; GPU: {m['gpu'] or 'none'}.",
        f"- Inference threads: {m['torch_threads']} (torch), as inside the pipeline.",
        f"- Versions: Python {m['python']}, torch {m['torch']}, PyAV {m['pyav']} (libavcodec {m['libavcodec']}), "
        f"OpenCV {m['opencv']}, NumPy {m['numpy']}.",
        f"- Encoder: {o['codec']} crf {o['crf']}, preset {o['preset']}{refined} for colorize and the floor; the "
        f"reference floor uses libx264's default preset, {REFERENCE_PRESET}.", "",
        "## End to end, file mode", "",
        "| clip | size | frames | floor fps | floor fps (medium) | colorize fps | vs floor | vs medium floor "
        "| real-time factor | peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in results["clips"]:
        lines.append(f"| {c['clip']} | {c['size']} | {c['frames']} | {c['floor_fps']} | {c['reference_floor_fps']} "
                     f"| {c['colorize_fps']} | {c['ratio_to_floor']}x | {c['ratio_to_reference_floor']}x "
                     f"| {c['realtime_factor']}x | {c['peak_rss_mib']} |")
    stages = list(results["clips"][0]["ms_per_frame"]) if results["clips"] else []
    lines += ["", "## Per stage, ms/frame", "",
              "Each stage runs in its own thread, so these overlap: they add up to more than the wall time per frame.",
              "", "| clip | faces found in | " + " | ".join(stages) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in stages) + " |"]
    for c in results["clips"]:
        lines.append(f"| {c['clip']} | {c['frames_with_faces']}/{c['frames']} frames | "
                     + " | ".join(str(c["ms_per_frame"].get(s, "")) for s in stages) + " |")
    lines += ["", "## Inference alone", "", "| device | " + " | ".join(f"batch {b}" for b in results["batches"])
              + " |", "| --- | " + " | ".join("---:" for _ in results["batches"]) + " |"]
    for device, per_batch in results["inference_ms_per_face"].items():
        lines.append(f"| {device} | " + " | ".join(f"{per_batch[str(b)]} ms/face" for b in results["batches"]) + " |")
    if results.get("live"):
        live = results["live"]
        lines += ["", "## Live", "",
                  f"`live --source {live['clip']} --realtime --no-window --size {live['size']}`: capture-to-render "
                  f"latency p50 {live['p50_ms']} ms, p95 {live['p95_ms']} ms; {live['dropped']} of "
                  f"{live['frames_captured']} frames dropped; {live['fps']} fps rendered."]
    return "\n".join(lines) + "\n"
