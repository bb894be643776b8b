"""The `colorstream` command: one entry point, one subcommand per job.

Every expected failure (bad input, bad checkpoint, unwritable output, a bad
flag value) ends as one line on stderr and a non-zero exit status, never a
traceback. SIGINT, SIGTERM and SIGHUP stop a run the same way: partial
outputs are removed, and a live session is finalised. Heavy modules (torch,
OpenCV, PyAV) load inside the commands, after the signal handlers are set, so
even an interrupt during start-up is one line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from colorstream.files import (OutputError, check_report_path, ensure_writable_dir, held_folder, inside_package,
                               refuse_existing, refuse_inputs, refuse_package_path, write_bytes_atomic,
                               write_image_atomic)

EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 1, 2, 3  # argparse itself exits 2 on bad usage


class UserError(Exception):
    """A failure caused by the user's input; reported as one line."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C's KeyboardInterrupt so that every cleanup path runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def let_threads_finish(deadline_s: float = 3.0) -> None:
    """After an interrupt, give the stage threads a moment to see the stop and leave their C calls.

    The main thread unwinds at once; an interpreter that shuts down while a
    daemon thread is still inside torch, PyAV or OpenCV can crash (SIGSEGV or
    SIGABRT instead of exit 130/143, seen under load in the signal tests).
    """
    deadline = time.monotonic() + deadline_s
    for thread in threading.enumerate():
        # tqdm's monitor only sleeps (10 s at a time) and touches nothing native: waiting for it made every
        # interrupt take the whole deadline
        if thread is not threading.current_thread() and thread.name != "tqdm_monitor":
            try:
                thread.join(max(0.0, deadline - time.monotonic()))
            except (AssertionError, RuntimeError):  # a thread started outside Python cannot be joined
                pass


def end_process(status: int) -> NoReturn:
    """Leave at once after an interrupt, once the cleanup has run: skip the interpreter's shutdown.

    The shutdown tears down modules while a daemon stage thread may still be
    inside torch, PyAV or OpenCV, and frees PyAV generators and containers in
    no fixed order: under load, an interrupted run now and then died with
    SIGSEGV or SIGABRT instead of exiting 130/143 (three times in the signal
    tests over the last few full runs), even after `let_threads_finish`.
    Everything that matters is done by now: partial outputs and temporary
    folders were removed as the exception unwound, and Ray was shut down.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream has nothing left to flush
            pass
    os._exit(status)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP end a run as Ctrl-C does, and Ctrl-C itself works even from a background shell."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _raise_interrupted)


# ---------------------------------------------------------------------------- flag values, checked at parse time


def int_in(low: int, high: int | None = None):
    """An argparse type: an integer from `low` to `high` (no upper bound if None)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {value}")
        return value

    return parse


def float_in(low: float, high: float, low_open: bool = False):
    """An argparse type: a finite number in [low, high], or (low, high] with `low_open`."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text}")
        return value

    return parse


def frame_size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT, each from 16 to 8192."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with each side from 16 to 8192, got {text!r}")
    return width, height


# ---------------------------------------------------------------------------- shared helpers


def read_image(path: Path):
    import cv2
    import numpy as np

    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not an image")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UserError(f"{path}: not a readable image")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF scans
        image = (image / 257.0 if image.dtype == np.uint16 else np.clip(image, 0, 255)).astype(np.uint8)
    return image


def check_reports(paths: list[str | None], taken: list[Path]) -> None:
    """Report files (--stats-json, --markdown) are checked before the run, not found unwritable after it."""
    reports = [Path(path) for path in paths if path]
    for index, report in enumerate(reports):
        check_report_path(report, taken + reports[:index])


def folder_files(*folders: str | None) -> list[Path]:
    """Every file under the given data folders: a run's inputs, which none of its outputs may replace."""
    return [path for folder in folders if folder for path in Path(folder).rglob("*") if path.is_file()]


def user_checkpoint(model: str | None, action: str) -> Path:
    """A checkpoint file named by the user that this command may rewrite: never a bundled model."""
    from colorstream.model.inference import BUNDLED

    if model is None or model in BUNDLED or inside_package(Path(model)):
        raise UserError(f"{action} rewrites a checkpoint, and the bundled models are never rewritten: give "
                        "--model PATH of a checkpoint of your own (copy a bundled one first to start from it)")
    return Path(model)


def cmd_invert(args: argparse.Namespace) -> int:
    from colorstream.model.inference import load

    out_dir = Path(args.output)
    sources = [Path(name) for name in args.sketches]
    paths, taken, failures = [], {}, []
    for path in sources:  # two inputs with one stem would overwrite each other's output
        if path.stem in taken:
            failures.append(f"{path}: output {path.stem}.png is already taken by {taken[path.stem]}")
        else:
            taken[path.stem] = path
            paths.append(path)
    targets = {path: out_dir / f"{path.stem}.png" for path in paths}
    refuse_inputs(list(targets.values()), sources)
    for target in targets.values():
        refuse_existing(target, args.overwrite)
    refuse_package_path(out_dir)
    predictor = load(args.model, args.device)  # a bad checkpoint fails before any folder is made
    if args.saturation:
        predictor.saturation_gain = args.saturation
    created = not out_dir.exists()
    ensure_writable_dir(out_dir)
    written = 0
    try:
        for start in range(0, len(paths), args.batch_size):
            batch = []
            for path in paths[start:start + args.batch_size]:  # read per batch: any number of inputs fits in memory
                try:
                    batch.append((path, read_image(path)))
                except UserError as error:
                    failures.append(str(error))
            for (path, _), photo in zip(batch, predictor.invert([image for _, image in batch])):
                write_image_atomic(targets[path], photo, overwrite=args.overwrite)
                print(targets[path])
                written += 1
    finally:
        if created and not written:  # a failed run leaves no empty folder behind
            _remove_empty(out_dir)
    for failure in failures:
        print(f"colorstream invert: {failure}", file=sys.stderr)
    if failures:
        print(f"colorstream invert: {written} written, {len(failures)} failed", file=sys.stderr)
        return EXIT_PARTIAL if written else EXIT_FAILED
    return 0


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty after all, or gone
        pass


def cmd_train(args: argparse.Namespace) -> int:
    from colorstream.model.inference import checkpoint_file
    from colorstream.model.net import ModelConfig
    from colorstream.training.data import AugmentConfig
    from colorstream.training.train import TrainConfig, command_line, log_dir_of, train

    scene = args.task == "scene"
    model = ModelConfig(arch=args.arch or ("scene" if scene else "unet"), base_channels=args.base_channels,
                        levels=args.levels or (4 if scene else 3), res_blocks=args.res_blocks)
    for folder in [args.faces] + [folder for folder in (args.pairs, args.scenes) if folder]:
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    out = Path(args.out)
    refuse_package_path(out)
    init = checkpoint_file(args.init) if args.init else None
    refuse_inputs([out], folder_files(args.faces, args.pairs, args.scenes) + ([init] if init else []))
    if not args.resume:
        refuse_existing(out, args.overwrite)
    ensure_writable_dir(out.parent)
    input_kind = "gray" if scene else args.input_kind
    config = TrainConfig(faces=args.faces, out=args.out, task=args.task, scenes=args.scenes, pairs=args.pairs,
                         real_fraction=args.real_fraction,
                         holdout_sources=tuple(dict.fromkeys(args.holdout_source)),
                         holdout_styles=tuple(dict.fromkeys(args.holdout_style)), model=model,
                         augment=AugmentConfig(shade_probability=args.shading),
                         resolution=args.resolution or (256 if scene else 96), crop_margin=args.crop_margin,
                         input_kind=input_kind, normalize_sketch=input_kind != "gray",
                         batch_size=args.batch_size, steps=args.steps, lr=args.lr, schedule=args.schedule,
                         loss=args.loss, edge_weight=args.edge_weight,
                         adversarial_weight=args.adversarial_weight,
                         init=str(init) if init else None, eval_every=args.eval_every,
                         eval_images=args.eval_images, seed=args.seed,
                         device=args.device, threads=args.threads, cache_dir=args.cache_dir, limit=args.limit,
                         calibrate=not args.no_calibrate)
    logs = log_dir_of(out)
    with held_folder(logs, f"{out}: another colorstream train is writing it (its {logs.name} folder is held); "
                           "wait for it, or choose another --out"):
        metadata = train(config, resume=args.resume, command=command_line())
    print(json.dumps(metadata["metrics"], indent=2))
    print(args.out)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from colorstream.imageops import SKETCH_KINDS
    from colorstream.model import checkpoint
    from colorstream.model.inference import checkpoint_path, load
    from colorstream.training import data
    from colorstream.training.evaluate import evaluate_faces, evaluate_generalisation, evaluate_pairs, held_out

    path = user_checkpoint(args.model, "evaluate --record") if args.record else checkpoint_path(args.model)
    for folder in filter(None, (args.faces, args.pairs, args.photos)):
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    check_reports([args.stats_json], [path, *folder_files(args.faces, args.pairs, args.photos)])
    report: dict = {}
    if args.faces or args.pairs:
        predictor = load(path, args.device)
        if args.pairs and predictor.input_kind not in SKETCH_KINDS:
            raise UserError(f"{path}: a {predictor.input_kind}-input model cannot be scored on sketch pairs; "
                            "drop --pairs")
        predictor.flip_average = not args.no_flip_average
        unseen = held_out(predictor.metadata)
        if unseen["sources"] or unseen["styles"]:  # the collections and styles whose scores are of unseen data
            report["held_out_in_training"] = unseen
        if args.saturation:
            predictor.saturation_gain = args.saturation
        if args.faces:
            faces = data.load_faces(Path(args.faces), predictor.crop_margin, Path(args.cache_dir))
            if args.split == "all":
                faces = data.with_all_split(faces)
            if not len(faces.crops[args.split]):
                found = faces.n_images - faces.n_no_face
                raise UserError(f"{args.faces}: no face to score in its {args.split} split (Haar finds one in {found} "
                                f"of its {faces.n_images} images{'; --split all scores them all' if found else ''})")
            report["faces_" + args.split] = evaluate_faces(predictor, faces.crops[args.split][:args.limit])
            if predictor.input_kind != "gray":  # sketches of other recipes, and each collection on its own
                report[f"faces_{args.split}_generalisation"] = evaluate_generalisation(predictor, faces, args.split,
                                                                                      args.limit)
        if args.pairs:
            pairs = data.load_sketch_pairs(Path(args.pairs))  # the train split's photos: more people to tell apart
            report["pairs_test"] = evaluate_pairs(predictor, pairs["test"][:args.limit],
                                                  distractors=[pair.photo for pair in pairs["train"]][:args.limit])
    if args.photos:
        report["photos"] = evaluate_photo_folder(args)
    if not report:
        raise UserError("nothing to score: give --faces, --pairs or --photos")
    if args.faces or args.pairs:
        report = {"checkpoint": str(path), **report}
    print(json.dumps(report, indent=2))
    if args.stats_json:
        write_json(Path(args.stats_json), report)
    if args.record:
        payload = checkpoint.read(path)
        payload["metadata"]["metrics"].update(report)
        checkpoint.save(path, checkpoint.build_from(payload, str(path)), payload["metadata"])
        print(f"recorded in {path}")
    return 0


def evaluate_photo_folder(args: argparse.Namespace) -> dict:
    """Each colour photo of a folder made gray, colorized as `colorize` colours a still, and scored against itself."""
    from colorstream.imageops import IMAGE_SUFFIXES
    from colorstream.model.inference import checkpoint_path, load
    from colorstream.stream.jobs import Models, Options, colorize_still
    from colorstream.training.evaluate import evaluate_photos
    from colorstream.training.scenes import split_photos

    if args.photos_split:  # the part of our own folder that training held out, as the scene model splits it
        paths = split_photos(Path(args.photos), 10, 10)[args.photos_split]
    else:
        paths = sorted(path for path in Path(args.photos).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    photos = []
    for path in paths[:args.limit]:
        image = read_image(path)
        if image.ndim == 3 and image.shape[2] == 3:  # gray or odd images cannot be scored for colour
            photos.append(image)
    if not photos:
        raise UserError(f"{args.photos}: no colour photos to score")
    predictor = load(args.model or VIDEO_MODEL, args.device)
    scene_model = Models(scene_model=args.scene_model).scene_name(still=True)
    scene = load(scene_model, args.device, task="scene") if args.scope == "frame" else None
    options = Options(scope=args.scope)
    scores = evaluate_photos(lambda gray: colorize_still(gray, predictor, options, scene).output_bgr(), photos)
    scene_path = checkpoint_path(scene_model) if scene else None
    return {"face_model": str(checkpoint_path(args.model or VIDEO_MODEL)), "scene_model": scene_path and str(scene_path), **scores}


def stream_options(args: argparse.Namespace):
    from colorstream.stream.jobs import Options

    return Options(smoothing=args.smoothing, window=args.window, detect_every=args.detect_every,
                   detect_side=args.detect_side,
                   min_face=args.min_face, reach=args.reach, batch_frames=args.batch_frames, codec=args.codec,
                   crf=args.crf, preset=args.preset, saturation=args.saturation, threads=args.threads,
                   scope=args.scope, scene_every=args.scene_every)


def models_of(args: argparse.Namespace):
    """Where the colour comes from, as the workers take it: models by name, the --reference, the keyframes."""
    from colorstream.stream.jobs import Models
    from colorstream.stream.keyframes import keyframe_paths

    if getattr(args, "reference", None) and args.scope != "frame":
        raise UserError("--reference steers the whole frame's colour: it needs --scope frame")
    keyframes = keyframe_paths(getattr(args, "keyframe", None) or [],
                               Path(args.keyframes) if getattr(args, "keyframes", None) else None)
    return Models(model=args.model, scene_model=args.scene_model, device=args.device, reference=args.reference,
                  keyframes=tuple((index, str(path)) for index, path in sorted(keyframes.items())))


def load_models(args: argparse.Namespace):
    """The face model, the scene model when the whole frame is coloured (`--scope frame`), the `--reference`'s
    palette."""
    return models_of(args).load(args.scope)


def cmd_colorize(args: argparse.Namespace) -> int:
    from colorstream.stream import batch
    from colorstream.stream.inputs import collect
    from colorstream.stream.journal import NAME

    collection = collect([Path(name) for name in args.inputs], args.output)
    jobs = collection.jobs
    keyframes = models_of(args).keyframes
    if keyframes and (len(jobs) != 1 or jobs[0].is_image or args.segment_seconds):
        raise UserError("keyframes belong to one video colorized in one piece: give --keyframe/--keyframes with "
                        "a single video input and no --segment-seconds")
    colour_sources = [Path(path) for _, path in keyframes] + ([Path(args.reference)] if args.reference else [])
    refuse_inputs([job.target for job in jobs], colour_sources)
    journal = [collection.out_dir / NAME] if collection.out_dir is not None else []
    check_reports([args.stats_json], [job.source for job in jobs] + [job.target for job in jobs] + journal +
                  colour_sources)
    options = batch.BatchOptions(workers=args.workers, resume=args.resume, overwrite=args.overwrite,
                                 segment_seconds=args.segment_seconds, ray=args.ray, progress=not args.quiet)
    stats = batch.run(collection, models_of(args), stream_options(args), options)
    if args.stats_json:
        write_json(Path(args.stats_json), stats)
    totals = stats["batch"]
    if totals["failed"]:
        print(f"colorstream colorize: {totals['done']} done, {totals['skipped_done_before']} done before, "
              f"{totals['failed']} failed", file=sys.stderr)
        return EXIT_PARTIAL if totals["done"] or totals["skipped_done_before"] else EXIT_FAILED
    return 0


def write_json(path: Path, data: dict) -> None:
    try:
        write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror})") from None


def cmd_keyframes(args: argparse.Namespace) -> int:
    from colorstream.stream.keyframes import export_keyframes

    clip, folder = Path(args.clip), Path(args.output)
    refuse_inputs([folder], [clip])
    refuse_package_path(folder)
    created = not folder.exists()
    ensure_writable_dir(folder)
    written = []
    try:
        written = export_keyframes(clip, folder, args.every, overwrite=args.overwrite)
    finally:
        if created and not written:
            _remove_empty(folder)
    for path in written:
        print(path)
    print(f"colorstream keyframes: {len(written)} frames to colour in {folder}; then colorize {clip} "
          f"--keyframes {folder}", file=sys.stderr)
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from colorstream.stream.jobs import CameraSource, fitted, paced, run_live
    from colorstream.stream.video_io import OUTPUT_CONTAINERS, VideoReader

    record = Path(args.record) if args.record else None
    if record is not None:
        if record.suffix.lower() not in OUTPUT_CONTAINERS:
            raise UserError(f"{record}: give the recording one of the extensions {', '.join(OUTPUT_CONTAINERS)}")
        refuse_inputs([record], [Path(name) for name in (args.source, args.reference) if name])
        refuse_package_path(record)
        refuse_existing(record, args.overwrite)
        ensure_writable_dir(record.parent)
    check_reports([args.stats_json], ([Path(args.source)] if args.source else []) + ([record] if record else []))
    predictor, scene, palette = load_models(args)
    if args.source:
        reader = VideoReader(Path(args.source))
        frames, rate, close = reader.frames(), reader.rate, reader.close
        if args.realtime:  # a file stands in for a camera: at its own pace, or most frames are dropped as stale
            frames = paced(frames)
        if args.size:
            frames = fitted(frames, args.size)
    else:
        camera = CameraSource(args.camera, args.size)
        frames, rate, close = camera.frames(), camera.rate, camera.close
    try:
        report = run_live(frames, rate, predictor, stream_options(args), window=not args.no_window, record=record,
                          overwrite=args.overwrite, scene=scene, palette=palette)
    finally:
        close()
    latency = report.get("latency_ms", {})
    print(f"{report['frames']} frames rendered at {report['fps']} fps, dropped {report['dropped']}, "
          f"latency p50 {latency.get('p50', 'n/a')} ms, p95 {latency.get('p95', 'n/a')} ms"
          + (f"; stopped by {report['stopped_by']}" if report.get("stopped_by") else ""))
    if record is not None and report["frames"]:
        print(record)
    if args.stats_json:
        write_json(Path(args.stats_json), report)
    return 0


def cmd_evaluate_video(args: argparse.Namespace) -> int:
    from colorstream.stream.evaluation import evaluate_video, mean_over_clips
    from colorstream.stream.pipeline import PipelineError
    from colorstream.stream.video_io import MediaError

    clips = [Path(clip) for clip in args.clips]
    plots = Path(args.plots) if args.plots else None
    if plots is not None:
        refuse_inputs([plots], clips)
        ensure_writable_dir(plots)
    check_reports([args.stats_json], clips)
    predictor, scene, palette = load_models(args)
    reports, failures = [], []
    for clip in clips:  # a bad clip is reported and skipped: the others are still scored
        strip = plots / f"{clip.stem}_{args.smoothing}_face_ab.png" if plots is not None else None
        try:
            refuse_inputs([strip] if strip else [], clips)
            report = evaluate_video(clip, predictor, stream_options(args), strip=strip, scene=scene,
                                    keyframes_every=args.truth_keyframes, palette=palette,
                                    reference_frame=args.truth_reference)
        except (MediaError, OutputError, PipelineError) as error:
            failures.append(str(error))
            print(f"colorstream evaluate-video: {error}", file=sys.stderr)
            continue
        reports.append(report)
        print(evaluation_line(report))
    if len(reports) > 1:
        print(evaluation_line({"clip": "mean over clips", **mean_over_clips(reports)}))
    if args.stats_json:
        write_json(Path(args.stats_json), {"clips": reports, "failures": failures,
                                           "mean_over_clips": mean_over_clips(reports) if reports else {}})
    if failures:
        print(f"colorstream evaluate-video: {len(reports)} scored, {len(failures)} failed", file=sys.stderr)
        return EXIT_PARTIAL if reports else EXIT_FAILED
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    import ipaddress
    import webbrowser

    from colorstream.draw.server import DrawServer
    from colorstream.model.inference import load

    predictor = load(args.model, args.device)
    try:
        server = DrawServer((args.host, args.port), predictor)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})") from None
    host, port = server.server_address[:2]
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        print(f"colorstream draw: warning: listening on {host}, so anyone who can reach this machine over the "
              "network can use the app", file=sys.stderr)
    url = f"http://{'127.0.0.1' if address.is_unspecified else host}:{port}/"
    print(f"colorstream draw: serving on {url} (Ctrl-C stops)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    interrupted = False
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # the way to stop it: not a failure
        interrupted = True
    finally:
        server.server_close()
    if interrupted and not args.from_python:  # as `end_process` says: the shutdown once died with SIGABRT here
        end_process(0)
    return 0


def evaluation_line(report: dict) -> str:
    return (f"{report['clip']}: PSNR {report['psnr_output']:.2f} dB (gray input {report['psnr_gray']:.2f}), "
            f"frame a/b error {report['frame_ab_error_output']:.2f} ({report['frame_ab_error_gray']:.2f}, ratio "
            f"{report['frame_ab_error_ratio']:.3f}), frame colourfulness {report['frame_colourfulness_output']:.1f} "
            f"(truth {report['frame_colourfulness_truth']:.1f}), last fifth ratio "
            f"{report['last_fifth_frame_ab_error_ratio']:.3f}, "
            + (f"paste baseline ratio {report['paste_frame_ab_error_ratio']:.3f} (last fifth "
               f"{report['paste_last_fifth_ratio']:.3f}), output vs paste {report['frame_ab_error_vs_paste']:.3f}, "
               if "paste_frame_ab_error_ratio" in report else "") +
            f"SSIM {report['ssim_output']:.4f} ({report['ssim_gray']:.4f}), "
            + (f"face a/b error {report['face_ab_error_output']:.2f} ({report['face_ab_error_gray']:.2f}, "
               f"ratio {report['face_ab_error_ratio']:.3f}), mean face a*/b* {report['face_a_output']:.1f}/"
               f"{report['face_b_output']:.1f} (truth {report['face_a_truth']:.1f}/{report['face_b_truth']:.1f}), "
               f"excess face chroma flicker {report['excess_face_chroma_flicker']:.3f}, "
               if report["face_ab_error_gray"] > 0 else "no faces to score, ") +  # Haar found none in the original
            f"warp error x1e3 {1e3 * report['warp_error_output']:.3f} "
            f"(truth {1e3 * report['warp_error_truth']:.3f}; chroma {1e3 * report['chroma_warp_error_output']:.3f}, "
            f"truth {1e3 * report['chroma_warp_error_truth']:.3f}), CDC {report['cdc_output']:.5f} "
            f"(truth {report['cdc_truth']:.5f}), smoothing {report['smoothing_ms_per_frame']:.2f} ms/frame, "
            f"{report['fps']} fps")


VIDEO_MODEL = "video"  # the bundled face model for colorize, live, evaluate-video and bench (VIDEO_MODEL_CARD.md)
# the bundled whole-frame models, for video and for images (SCENE_MODEL_CARD.md): stream.jobs's names, written
# again here so that the parser imports no torch
SCENE_MODEL, STILLS_SCENE_MODEL = "scene", "scene-stills"


def add_model_argument(p: argparse.ArgumentParser, default: str | None, note: str = "",
                       default_text: str | None = None) -> None:
    p.add_argument("--model", default=default, metavar="NAME|CKPT",
                   help=f"a bundled model (sketch, video or scene) or a checkpoint file{note} "
                        f"(default: {default_text or default})")


PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def video_encoder(name: str) -> str:
    """An argparse type: the name of a video encoder this FFmpeg has."""
    import av

    try:
        codec = av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        raise argparse.ArgumentTypeError(f"no video encoder named {name!r} in this FFmpeg (try libx264)") from None
    if codec.type != "video":
        raise argparse.ArgumentTypeError(f"{name!r} is a {codec.type} encoder, not a video one")
    return name


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    from colorstream.stream.smoothing import DEFAULT_SMOOTHING, SMOOTHING

    add_model_argument(p, VIDEO_MODEL, " for the faces")
    p.add_argument("--scene-model", metavar="NAME|CKPT",
                   help=f"the model that colours the whole frame (default: {SCENE_MODEL} for video, "
                        f"{STILLS_SCENE_MODEL} for images)")
    p.add_argument("--scope", default="frame", choices=["frame", "faces"],
                   help="colour the whole frame (the scene model, with the face model on faces), or only the "
                        "faces (default: frame)")
    p.add_argument("--scene-every", type=int_in(1, 30), default=3,
                   help="run the scene model on every k-th frame; the flow carries its colour between (1-30)")
    p.add_argument("--reference", metavar="IMAGE",
                   help="a colour image of similar content (the same street, the same costume): its palette steers "
                        "the whole frame's colour")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs")
    p.add_argument("--smoothing", default=DEFAULT_SMOOTHING, choices=SMOOTHING,
                   help=f"temporal smoothing of face colour (default: {DEFAULT_SMOOTHING})")
    p.add_argument("--window", type=int_in(1, 120), default=5, help="frames the smoothing averages over (1-120)")
    p.add_argument("--detect-every", type=int_in(1, 100), default=3, help="run face detection every k-th frame")
    p.add_argument("--detect-side", type=int_in(64, 8192), default=480,
                   help="full-frame face scans run on the frame downscaled to this longer side (64-8192)")
    p.add_argument("--min-face", type=int_in(12, 8192), default=40, help="smallest face side in pixels (12-8192)")
    p.add_argument("--reach", type=float_in(0.5, 3.0), default=1.3,
                   help="how far the colour reaches: the face square the model colours, relative to its "
                        "training crop (1.3 takes in ears, hair and neck; 0.5-3)")
    p.add_argument("--batch-frames", type=int_in(1, 256), default=8,
                   help="frames per inference batch in file mode (1-256)")
    p.add_argument("--saturation", type=float_in(0.0, 4.0, low_open=True), default=0.0,
                   help="chroma gain of the model's colours, in (0, 4] (default: the gain the checkpoint fitted "
                        "for video)")
    p.add_argument("--codec", type=video_encoder, default="libx264", help="video encoder (default libx264)")
    p.add_argument("--crf", type=int_in(0, 51), default=18, help="quality for libx264/libx265, 0 (lossless) to 51")
    p.add_argument("--preset", default="veryfast", choices=PRESETS, help="encoder preset (libx264/libx265)")
    p.add_argument("--threads", type=int_in(1, 1024), default=0,
                   help="torch threads for inference (default: half the cores)")
    p.add_argument("--stats-json", metavar="PATH", help="write the run's statistics as JSON")


def cmd_bench(args: argparse.Namespace) -> int:
    from colorstream import bench
    from colorstream.imageops import IMAGE_SUFFIXES

    clips = [Path(clip) for clip in args.clips]
    for clip in clips + ([Path(args.live)] if args.live else []):
        if clip.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{clip}: is an image; bench measures video clips")
    if not clips and not args.live and not args.no_live:
        raise UserError("give clips to measure, --live CLIP, or --no-live (inference alone)")
    check_reports([args.markdown, args.stats_json], clips + ([Path(args.live)] if args.live else []))
    config = bench.BenchConfig(repeats=args.repeats, model=args.model, scene_model=args.scene_model or SCENE_MODEL,
                               device=args.device, live_size=args.live_size)
    live = None if args.no_live else Path(args.live) if args.live else clips[0]
    results = bench.run(clips, live, stream_options(args), config, command="colorstream " + " ".join(args.argv))
    if args.markdown:
        try:
            write_bytes_atomic(Path(args.markdown), bench.markdown(results).encode())
        except OSError as error:
            raise UserError(f"{args.markdown}: cannot write ({error.strerror})") from None
    if args.stats_json:
        write_json(Path(args.stats_json), results)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from colorstream.model import checkpoint
    from colorstream.model.inference import ScenePredictor, load
    from colorstream.training import data
    from colorstream.training.evaluate import (STILLS_MIN_COLOURFULNESS, calibrate_saturations,
                                                  calibrate_scene_decoding)
    from colorstream.training.scenes import read_images, split_photos

    path = user_checkpoint(args.model, "calibrate")
    folder = Path(args.faces or args.scenes or "")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory")
    predictor = load(path, args.device, task=None)
    if isinstance(predictor, ScenePredictor):
        if not args.scenes:
            raise UserError(f"{path}: is a scene model: give --scenes, a folder of everyday photos")
        photos = read_images(split_photos(folder, 10, 10)["val"][:args.limit])
        if not photos:
            raise UserError(f"{folder}: no readable photo in its val split (a tenth of the folder, by name) to fit on")
        decoding = calibrate_scene_decoding(predictor, photos)
        uses = (args.only,) if args.only else checkpoint.SATURATION_OBJECTIVES
        fitted = {use: decoding["saturation_gains"][use] for use in uses}
        temperatures = {use: decoding["decode_temperatures"][use] for use in uses}
        what = f"{len(photos)} val photos"
    else:
        if not args.faces:
            raise UserError(f"{path}: is a face model: give --faces, a folder of face photos")
        crops = data.load_faces(folder, predictor.crop_margin, Path(args.cache_dir)).crops["val"][:args.limit]
        if not len(crops):
            raise UserError(f"{folder}: no face in its val split (a twentieth of the identities, by name) to fit on")
        fitted = calibrate_saturations(predictor, crops, (args.only,) if args.only else checkpoint.SATURATION_OBJECTIVES)
        what = f"{len(crops)} val faces"
    payload = checkpoint.read(path)
    gains = {**checkpoint.saturation_gains(payload["metadata"]), **fitted}
    for legacy in ("saturation_gain", "saturation_objective"):  # superseded by one gain per use
        payload["metadata"].pop(legacy, None)
    payload["metadata"]["saturation_gains"] = gains
    if isinstance(predictor, ScenePredictor):
        temperatures = {**checkpoint.decode_temperatures(payload["metadata"]), **temperatures}
        payload["metadata"]["decode_temperatures"] = temperatures
    checkpoint.save(path, checkpoint.build_from(payload, str(path)), payload["metadata"])
    print(f"saturation gains {gains[checkpoint.STILLS_OBJECTIVE]} for stills ({checkpoint.STILLS_OBJECTIVE}) and "
          f"{gains[checkpoint.VIDEO_OBJECTIVE]} for video ({checkpoint.VIDEO_OBJECTIVE}); "
          f"{' and '.join(fitted)} fitted on {what}; recorded in {path}")
    if isinstance(predictor, ScenePredictor):
        print(f"decode temperatures {temperatures[checkpoint.STILLS_OBJECTIVE]} for stills and "
              f"{temperatures[checkpoint.VIDEO_OBJECTIVE]} for video; the best of each temperature, gain: a/b error "
              f"over the gray input's (stills: at >= {STILLS_MIN_COLOURFULNESS} of the photos' colourfulness):")
        for row in decoding["search"]:
            video, stills = row[checkpoint.VIDEO_OBJECTIVE], row[checkpoint.STILLS_OBJECTIVE]
            print(f"  {row['temperature']}: video {video[1]}: {video[2]:.4f}; stills " +
                  (f"{stills[1]}: {stills[2]:.4f} at {stills[3]:.3f}" if stills else "never colourful enough"))
    return 0


def package_version() -> str:
    """The installed distribution's version: pyproject.toml is its one source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("colorstream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorstream", description="Colorize grayscale video and "
                                     "turn face sketches into photos.")
    parser.add_argument("--version", action="version", version=f"colorstream {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    device = dict(default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs")
    overwrite = dict(action="store_true", help="replace outputs that already exist (default: refuse)")
    count = int_in(1)

    p = commands.add_parser("invert", help="turn face sketches into colour photos")
    p.add_argument("sketches", nargs="+", metavar="SKETCH", help="sketch images, any size")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="writes OUT_DIR/<stem>.png")
    add_model_argument(p, "sketch")
    p.add_argument("--device", **device)
    p.add_argument("--batch-size", type=int_in(1, 1024), default=16, help="sketches per batch (1-1024)")
    p.add_argument("--saturation", type=float_in(0.0, 4.0, low_open=True), default=0.0,
                   help="chroma gain of the photos, in (0, 4] (default: the checkpoint's stills gain; lower is paler "
                        "and, on average, closer to the truth: the model card)")
    p.add_argument("--overwrite", **overwrite)
    p.set_defaults(run=cmd_invert)

    p = commands.add_parser("train", help="train a sketch-inversion, gray-face or whole-frame (scene) colour model")
    p.add_argument("faces", help="folder of face photos")
    p.add_argument("--task", default="face", choices=["face", "scene"],
                   help="face: a framed face crop -> colour; scene: a whole gray frame -> colour (needs --scenes)")
    p.add_argument("--scenes", help="folder of everyday colour photos, for --task scene")
    p.add_argument("--input-kind", default="pencil", choices=["pencil", "line", "gray"],
                   help="what the model is fed: a pencil or line sketch, or the gray face itself (video)")
    p.add_argument("--pairs", help="folder of real sketch/photo pairs (pairs.csv, photos/, sketches/)")
    p.add_argument("--real-fraction", type=float_in(0.0, 1.0), default=0.2,
                   help="share of samples from the real pairs (0-1)")
    p.add_argument("--shading", type=float_in(0.0, 1.0), default=0.3,
                   help="share of synthetic sketches given an artist's tonal shading, flat or hatched (0-1)")
    p.add_argument("--holdout-source", action="append", default=[], metavar="NAME",
                   help="leave a face collection (a file-name prefix: celeba, utk) out of training and validation, "
                        "to score on it as an unseen source (repeatable)")
    p.add_argument("--holdout-style", action="append", default=[], type=int_in(0), metavar="N",
                   help="leave the real pairs of one drawing style out of training (repeatable)")
    p.add_argument("--out", default="runs/model.pt", help="the checkpoint to write (refused if it exists)")
    p.add_argument("--overwrite", **overwrite)
    p.add_argument("--arch", choices=["unet", "paper", "scene"], help="default: scene for --task scene, else unet")
    p.add_argument("--base-channels", type=int_in(1, 256), default=16)
    p.add_argument("--levels", type=int_in(1, 6), help="downsamplings (default: 4 for --task scene, else 3)")
    p.add_argument("--res-blocks", type=int_in(0, 16), default=2)
    p.add_argument("--resolution", type=int_in(16, 2048),
                   help="face crop side (default 96), or a scene model's working longer side (default 256)")
    p.add_argument("--crop-margin", type=float_in(1.0, 4.0), default=1.4, help="face square / Haar box (1-4)")
    p.add_argument("--batch-size", type=int_in(1, 4096), default=32)
    p.add_argument("--steps", type=count, default=3000)
    p.add_argument("--lr", type=float_in(0.0, 1.0, low_open=True), default=1e-3)
    p.add_argument("--schedule", default="halving", choices=["halving", "cosine"])
    p.add_argument("--loss", default="mse", choices=["mse", "l1", "mse+ssim", "l1+ssim"])
    p.add_argument("--edge-weight", type=float_in(0.0, 100.0), default=0.0,
                   help="weight of an L1 on luma gradients, for sharp strokes (face models; default 0)")
    p.add_argument("--adversarial-weight", type=float_in(0.0, 100.0), default=0.0,
                   help="weight of a PatchGAN loss, pix2pix's recipe (face models; default 0: none)")
    p.add_argument("--init", metavar="CKPT",
                   help="start from this checkpoint's weights (a bundled name or a file; same architecture)")
    p.add_argument("--eval-every", type=count, default=250)
    p.add_argument("--eval-images", type=count, default=200, help="validation images scored at each evaluation")
    p.add_argument("--seed", type=int_in(0), default=0)
    p.add_argument("--threads", type=int_in(1, 1024), help="torch CPU threads")
    p.add_argument("--limit", type=count, help="use only the first N photos")
    p.add_argument("--cache-dir", default=".cache", help="where face crops are cached between runs")
    p.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    p.add_argument("--no-calibrate", action="store_true",
                   help="skip fitting the saturation gains on the val split after training")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("evaluate", help="score a checkpoint on held-out faces and real sketch pairs, or "
                                             "colorize a folder of colour photos and score it")
    add_model_argument(p, None, "; --record needs a checkpoint file of your own",
                       "sketch, or video for --photos")
    p.add_argument("--faces", help="folder of face photos; its test split is scored")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="the split of --faces to score; all: every face, for a folder from a source training "
                        "never saw")
    p.add_argument("--pairs", help="folder of real sketch/photo pairs; its held-out part is scored")
    p.add_argument("--photos", help="folder of colour photos: each is made gray, colorized as `colorize` does, and "
                                    "scored against itself")
    p.add_argument("--photos-split", choices=["train", "val", "test"],
                   help="score only this split of --photos, as the scene model's training splits a folder "
                        "(default: every photo)")
    p.add_argument("--scene-model", metavar="NAME|CKPT",
                   help=f"the whole-frame model for --photos (default: {STILLS_SCENE_MODEL})")
    p.add_argument("--scope", default="frame", choices=["frame", "faces"],
                   help="for --photos: colour the whole image, or only the faces")
    p.add_argument("--limit", type=count, help="score only the first N of each set")
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--record", action="store_true", help="store the results in the checkpoint's metadata")
    p.add_argument("--stats-json", metavar="PATH", help="also write the scores as JSON")
    p.add_argument("--no-flip-average", action="store_true", help="invert each sketch once, not also mirrored")
    p.add_argument("--saturation", type=float_in(0.0, 4.0, low_open=True), default=0.0,
                   help="chroma gain of the model's colours, in (0, 4] (default: the checkpoint's stills gain)")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("calibrate", help="fit a checkpoint's saturation gains (and a scene model's decode "
                                              "temperatures), for stills and for video, on the val split of a face "
                                              "folder (face models) or a photo folder (scene models)")
    p.add_argument("--model", required=True, metavar="CKPT",
                   help="the checkpoint file to update (your own: the bundled models are never rewritten)")
    folders = p.add_mutually_exclusive_group(required=True)
    folders.add_argument("--faces", help="folder of face photos, for a face model; its val split is used")
    folders.add_argument("--scenes", help="folder of everyday photos, for a scene model; its val split is used")
    p.add_argument("--limit", type=count, default=200, help="val faces (or photos) to fit on")
    p.add_argument("--only", choices=["colourfulness", "ab_error"],
                   help="refit only this use's gain (and temperature), for stills (colourfulness) or video (ab_error), "
                        "and keep the other's")
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_calibrate)

    p = commands.add_parser("colorize", help="colorize grayscale videos or images, file to file, or whole folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video (any FFmpeg format) or image files, or folders of them (walked recursively)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file, or a folder (for several inputs or a folder: the tree is mirrored there, "
                        "with a journal of the run)")
    p.add_argument("--overwrite", **overwrite)
    p.add_argument("--resume", action="store_true",
                   help="skip the inputs whose output the folder's journal shows done with the same settings and "
                        "models, and redo the rest")
    p.add_argument("--workers", type=int_in(1, 1024),
                   help="files colorized at once, each in a process of its own (default: one per 2 cores; with "
                        "--ray, actors on the cluster, by default one per 2 of its cores)")
    p.add_argument("--segment-seconds", type=float_in(0.0, 86400.0), default=0.0, metavar="S",
                   help="split a video at least twice this long into segments of at least S seconds at scene cuts, "
                        "colorized apart and joined without re-encoding (default 0: never)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the batch on a Ray cluster (its address, e.g. 10.0.0.1:6379), or 'local' to start "
                        "Ray on this machine; needs pip install 'colorstream[ray]'")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keyframe", action="append", metavar="INDEX=IMAGE",
                   help="a colour image of frame INDEX (decode order, from 0), coloured by hand or a colour still "
                        "of the shot; its colour is carried through its shot (repeatable)")
    p.add_argument("--keyframes", metavar="DIR", help="a folder of keyframes named <frame index>.png "
                   "(as `colorstream keyframes` exports them, coloured)")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_colorize)

    p = commands.add_parser("keyframes", help="export one gray frame per shot (and one every N seconds in long "
                                              "shots) as PNG, to colour by hand for colorize --keyframes")
    p.add_argument("clip", metavar="CLIP", help="a video")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="writes DIR/<frame index>.png")
    p.add_argument("--every", type=float_in(0.5, 3600.0), default=10.0, metavar="SECONDS",
                   help="in a shot longer than this, also every this many seconds (default 10)")
    p.add_argument("--overwrite", **overwrite)
    p.set_defaults(run=cmd_keyframes)

    p = commands.add_parser("live", help="colorize a camera (or a file standing in for one) live")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int_in(0, 1024), default=0, metavar="INDEX", help="camera index (default 0)")
    source.add_argument("--source", metavar="PATH", help="a video file instead of a camera")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="pace --source at its own frame rate, as a camera would deliver it (default: on; "
                        "--no-realtime feeds it as fast as it decodes, and most frames are then dropped as stale)")
    p.add_argument("--record", metavar="OUT.mp4", help="also record the colorized stream")
    p.add_argument("--overwrite", **overwrite)
    p.add_argument("--no-window", action="store_true",
                   help="no window; for headless runs and measurements (Ctrl-C or SIGTERM ends the session)")
    p.add_argument("--size", type=frame_size, metavar="WxH",
                   help="capture size of the camera; a --source is scaled and cropped to it")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_live)

    p = commands.add_parser("draw", help="a local web page that turns a face sketch into a photo as you draw")
    add_model_argument(p, "sketch")
    p.add_argument("--device", **device)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int_in(0, 65535), default=8765, help="port to listen on; 0 picks a free one")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in the default browser")
    p.set_defaults(run=cmd_draw)

    p = commands.add_parser("evaluate-video", help="make colour clips gray, colorize them, score against the original")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="colour video clips with faces")
    p.add_argument("--plots", metavar="DIR", help="write a strip plot of face colour over time per clip "
                   "(DIR/<clip>_<smoothing>_face_ab.png)")
    p.add_argument("--truth-reference", type=int_in(0, 1_000_000), metavar="INDEX",
                   help="take the true colour of frame INDEX as the --reference")
    p.add_argument("--truth-keyframes", type=int_in(0, 1_000_000), metavar="N",
                   help="give the true colour of frame 0 (and of every N-th frame after it; 0: frame 0 only) as "
                        "keyframes, and score the baseline of frame 0's colour pasted on every frame beside")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_evaluate_video)

    p = commands.add_parser("bench", help="measure colorize against the decode+encode floor, per stage, live")
    p.add_argument("clips", nargs="*", metavar="CLIP",
                   help="video clips to measure on; none, with --no-live, times inference alone")
    p.add_argument("--repeats", type=int_in(1, 100), default=3, help="runs per figure; the median is reported")
    p.add_argument("--live", metavar="CLIP", help="clip for the live-latency run (default: the first clip)")
    p.add_argument("--live-size", type=frame_size, default=(640, 480), metavar="WxH",
                   help="frame size of the live run (default 640x480)")
    p.add_argument("--no-live", action="store_true", help="skip the live-latency run")
    p.add_argument("--markdown", metavar="PATH", help="write the results as a Markdown report, e.g. BENCHMARKS.md")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn every expected failure and every interrupt into one line and an exit status."""
    install_signal_handlers()
    argv_given = argv is not None  # called from Python, not as the program: an interrupt returns its status
    argv = sys.argv[1:] if argv is None else argv
    command = "colorstream"
    try:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return EXIT_USAGE
        args = parser.parse_args(argv)
        args.argv, args.from_python = argv, argv_given
        command = f"colorstream {args.command}"
        from colorstream.model.checkpoint import CheckpointError
        from colorstream.stream.pipeline import PipelineError

        try:
            return args.run(args)
        except (UserError, CheckpointError, ValueError, PipelineError) as error:
            print(f"{command}: {error}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as error:  # what the file system refused that no check foresaw: a name too long, a full disk
            where = f"{error.filename}: " if error.filename else ""
            print(f"{command}: {where}{error.strerror or error}", file=sys.stderr)
            return EXIT_FAILED
    except KeyboardInterrupt as interrupt:
        signum = getattr(interrupt, "signum", signal.SIGINT)
        print(f"{command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        let_threads_finish()
        if argv_given:
            return 128 + signum
        end_process(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
