"""The `colorstream` command: one entry point, one subcommand per job.

Every expected failure (bad input, bad checkpoint, unwritable output) ends as
one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from colorstream.files import write_bytes_atomic, write_image_atomic

EXIT_FAILED, EXIT_PARTIAL, EXIT_INTERRUPTED = 1, 3, 130  # argparse itself exits 2 on bad usage


class UserError(Exception):
    """A failure caused by the user's input; reported as one line."""


def ensure_output_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create output directory ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: output directory is not writable")


def read_image(path: Path) -> np.ndarray:
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


def cmd_invert(args: argparse.Namespace) -> int:
    from colorstream.model.inference import load

    out_dir = Path(args.output)
    ensure_output_dir(out_dir)
    predictor = load(args.model, args.device)
    paths, taken, failures = [], {}, []
    for path in map(Path, args.sketches):  # two inputs with one stem would overwrite each other's output
        if path.stem in taken:
            failures.append(f"{path}: output {path.stem}.png is already taken by {taken[path.stem]}")
        else:
            taken[path.stem] = path
            paths.append(path)
    written = 0
    for start in range(0, len(paths), args.batch_size):
        batch = []
        for path in paths[start:start + args.batch_size]:  # read per batch: any number of inputs fits in memory
            try:
                batch.append((path, read_image(path)))
            except UserError as error:
                failures.append(str(error))
        for (path, _), photo in zip(batch, predictor.invert([image for _, image in batch])):
            target = out_dir / f"{path.stem}.png"
            write_image_atomic(target, photo)
            print(target)
            written += 1
    for failure in failures:
        print(f"colorstream invert: {failure}", file=sys.stderr)
    if failures:
        print(f"colorstream invert: {written} written, {len(failures)} failed", file=sys.stderr)
        return EXIT_PARTIAL if written else EXIT_FAILED
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from colorstream.model.net import ModelConfig
    from colorstream.training.train import TrainConfig, command_line, train

    scene = args.task == "scene"
    model = ModelConfig(arch=args.arch or ("scene" if scene else "unet"), base_channels=args.base_channels,
                        levels=args.levels or (4 if scene else 3), res_blocks=args.res_blocks)
    for folder in [args.faces] + [folder for folder in (args.pairs, args.scenes) if folder]:
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    input_kind = "gray" if scene else args.input_kind
    config = TrainConfig(faces=args.faces, out=args.out, task=args.task, scenes=args.scenes, pairs=args.pairs,
                         real_fraction=args.real_fraction, model=model,
                         resolution=args.resolution or (256 if scene else 96), crop_margin=args.crop_margin,
                         input_kind=input_kind, normalize_sketch=input_kind != "gray",
                         batch_size=args.batch_size, steps=args.steps, lr=args.lr, schedule=args.schedule,
                         loss=args.loss, eval_every=args.eval_every, eval_images=args.eval_images, seed=args.seed, device=args.device,
                         threads=args.threads, cache_dir=args.cache_dir, limit=args.limit,
                         calibrate=not args.no_calibrate)
    metadata = train(config, resume=args.resume, command=command_line())
    print(json.dumps(metadata["metrics"], indent=2))
    print(args.out)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from colorstream.imageops import SKETCH_KINDS
    from colorstream.model import checkpoint
    from colorstream.model.inference import checkpoint_path, load
    from colorstream.training import data
    from colorstream.training.evaluate import evaluate_faces, evaluate_pairs

    path = checkpoint_path(args.model)
    for folder in filter(None, (args.faces, args.pairs)):
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    predictor = load(path, args.device)
    if args.pairs and predictor.input_kind not in SKETCH_KINDS:
        raise UserError(f"{path}: a {predictor.input_kind}-input model cannot be scored on sketch pairs; "
                        "drop --pairs")
    predictor.flip_average = not args.no_flip_average
    if args.saturation:
        predictor.saturation_gain = args.saturation
    report: dict = {}
    if args.faces:
        faces = data.load_faces(Path(args.faces), predictor.crop_margin, Path(args.cache_dir))
        report["faces_" + args.split] = evaluate_faces(predictor, faces.crops[args.split][:args.limit])
    if args.pairs:
        report["pairs_test"] = evaluate_pairs(predictor, data.load_sketch_pairs(Path(args.pairs))["test"][:args.limit])
    print(json.dumps({"checkpoint": str(path), **report}, indent=2))
    if args.record:
        payload = checkpoint.read(path)
        payload["metadata"]["metrics"].update(report)
        checkpoint.save(path, checkpoint.build_from(payload, str(path)), payload["metadata"])
        print(f"recorded in {path}")
    return 0


def stream_options(args: argparse.Namespace):
    from colorstream.stream.jobs import Options

    return Options(smoothing=args.smoothing, window=args.window, detect_every=args.detect_every,
                   detect_side=args.detect_side,
                   min_face=args.min_face, reach=args.reach, batch_frames=args.batch_frames, codec=args.codec,
                   crf=args.crf, preset=args.preset, saturation=args.saturation, threads=args.threads)


def colorize_targets(inputs: list[Path], output_arg: str) -> list[tuple[Path, Path]]:
    """Where each input goes: with several inputs, an existing directory or a trailing slash, OUTPUT is a directory."""
    from colorstream.imageops import IMAGE_SUFFIXES

    output = Path(output_arg)
    as_directory = len(inputs) > 1 or output.is_dir() or output_arg.endswith(os.sep)
    if not as_directory:
        if output.suffix.lower() == "":
            raise UserError(f"{output}: give the output file an extension (.mp4, .mkv, .png, ...)")
        return [(inputs[0], output)]
    ensure_output_dir(output)
    pairs, taken = [], {}
    for source in inputs:
        suffix = source.suffix.lower()
        keep = suffix in IMAGE_SUFFIXES or suffix in (".mp4", ".mov", ".mkv", ".avi", ".m4v")
        target = output / (source.stem + (suffix if keep else ".mkv"))
        if target in taken:
            raise UserError(f"{source}: output {target.name} is already taken by {taken[target]}")
        taken[target] = source
        pairs.append((source, target))
    return pairs


def cmd_colorize(args: argparse.Namespace) -> int:
    from colorstream.model.inference import load
    from colorstream.imageops import IMAGE_SUFFIXES
    from colorstream.stream.jobs import colorize_image, colorize_video
    from colorstream.stream.video_io import MediaError

    inputs = [Path(name) for name in args.inputs]
    pairs = colorize_targets(inputs, args.output)
    if len(pairs) == 1 and not pairs[0][1].parent.exists():
        ensure_output_dir(pairs[0][1].parent)
    predictor = load(args.model, args.device)
    options = stream_options(args)
    reports, failures = [], []
    for source, target in pairs:
        try:
            if source.suffix.lower() in IMAGE_SUFFIXES:
                report = colorize_image(source, target, predictor, options)
            else:
                report = colorize_video(source, target, predictor, options, progress=not args.quiet)
        except MediaError as error:
            failures.append(str(error))
            print(f"colorstream colorize: {error}", file=sys.stderr)
            continue
        reports.append(report)
        print(summary_line(report, target))
        for warning in colorize_warnings(report):
            print(f"colorstream colorize: warning: {source}: {warning}", file=sys.stderr)
    if args.stats_json:
        write_json(Path(args.stats_json), {"files": reports, "failures": failures})
    if failures:
        return EXIT_PARTIAL if reports else EXIT_FAILED
    return 0


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
    return (f"{target}: {report['frames']} frames ({report['frames_with_faces']} with faces) at {report['fps']} fps; "
            f"ms/frame: {stages}")


def write_json(path: Path, data: dict) -> None:
    try:
        write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror})") from None


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if width < 16 or height < 16:
        raise UserError(f"--size {text!r}: too small")
    return width, height


def cmd_live(args: argparse.Namespace) -> int:
    from colorstream.model.inference import load
    from colorstream.stream.jobs import CameraSource, fitted, paced, run_live
    from colorstream.stream.video_io import VideoReader

    size = parse_size(args.size) if args.size else None
    predictor = load(args.model, args.device)
    if args.source:
        reader = VideoReader(Path(args.source))
        frames, rate, close = reader.frames(), reader.rate, reader.close
        if args.realtime:
            frames = paced(frames)
        if size:
            frames = fitted(frames, size)
    else:
        camera = CameraSource(args.camera, size)
        frames, rate, close = camera.frames(), camera.rate, camera.close
    try:
        report = run_live(frames, rate, predictor, stream_options(args), window=not args.no_window,
                          record=Path(args.record) if args.record else None)
    finally:
        close()
    latency = report.get("latency_ms", {})
    print(f"{report['frames']} frames rendered at {report['fps']} fps, dropped {report['dropped']}, "
          f"latency p50 {latency.get('p50', 'n/a')} ms, p95 {latency.get('p95', 'n/a')} ms")
    if args.stats_json:
        write_json(Path(args.stats_json), report)
    return 0


def cmd_evaluate_video(args: argparse.Namespace) -> int:
    from colorstream.model.inference import load
    from colorstream.stream.evaluation import evaluate_video, mean_over_clips

    predictor = load(args.model, args.device)
    plots = Path(args.plots) if args.plots else None
    if plots is not None:
        ensure_output_dir(plots)
    reports = []
    for clip in map(Path, args.clips):
        strip = plots / f"{clip.stem}_{args.smoothing}_face_ab.png" if plots is not None else None
        report = evaluate_video(clip, predictor, stream_options(args), strip=strip)
        reports.append(report)
        print(evaluation_line(report))
    if len(reports) > 1:
        print(evaluation_line({"clip": "mean over clips", **mean_over_clips(reports)}))
    if args.stats_json:
        write_json(Path(args.stats_json), {"clips": reports, "mean_over_clips": mean_over_clips(reports)})
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    import ipaddress
    import webbrowser

    from colorstream.draw.server import DrawServer
    from colorstream.model.inference import load

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected 0 to 65535")
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
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def evaluation_line(report: dict) -> str:
    return (f"{report['clip']}: PSNR {report['psnr_output']:.2f} dB (gray input {report['psnr_gray']:.2f}), "
            f"SSIM {report['ssim_output']:.4f} ({report['ssim_gray']:.4f}), "
            f"face a/b error {report['face_ab_error_output']:.2f} ({report['face_ab_error_gray']:.2f}, "
            f"ratio {report['face_ab_error_ratio']:.3f}), mean face a*/b* {report['face_a_output']:.1f}/"
            f"{report['face_b_output']:.1f} (truth {report['face_a_truth']:.1f}/{report['face_b_truth']:.1f}), "
            f"excess face chroma flicker "
            f"{report['excess_face_chroma_flicker']:.3f}, warp error x1e3 {1e3 * report['warp_error_output']:.3f} "
            f"(truth {1e3 * report['warp_error_truth']:.3f}), CDC {report['cdc_output']:.5f} "
            f"(truth {report['cdc_truth']:.5f}), smoothing {report['smoothing_ms_per_frame']:.2f} ms/frame, "
            f"{report['fps']} fps")


VIDEO_MODEL = "video"  # the bundled model for colorize, live, evaluate-video and bench (VIDEO_MODEL_CARD.md)


def add_model_argument(p: argparse.ArgumentParser, default: str, action: str = "") -> None:
    p.add_argument("--model", default=default, metavar="NAME|CKPT",
                   help=f"a bundled model (sketch or video) or a checkpoint file{action} (default: {default})")


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    from colorstream.stream.smoothing import DEFAULT_SMOOTHING, SMOOTHING

    add_model_argument(p, VIDEO_MODEL)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs")
    p.add_argument("--smoothing", default=DEFAULT_SMOOTHING, choices=SMOOTHING,
                   help=f"temporal smoothing of face colour (default: {DEFAULT_SMOOTHING})")
    p.add_argument("--window", type=int, default=5, help="frames the smoothing averages over")
    p.add_argument("--detect-every", type=int, default=3, help="run face detection every k-th frame")
    p.add_argument("--detect-side", type=int, default=480,
                   help="full-frame face scans run on the frame downscaled to this longer side")
    p.add_argument("--min-face", type=int, default=40, help="smallest face side in pixels")
    p.add_argument("--reach", type=float, default=1.3,
                   help="how far the colour reaches: the face square the model colours, relative to its "
                        "training crop (1.3 takes in ears, hair and neck)")
    p.add_argument("--batch-frames", type=int, default=8, help="frames per inference batch in file mode")
    p.add_argument("--saturation", type=float, default=0.0,
                   help="chroma gain of the model's colours (default 0: the gain the checkpoint fitted for video)")
    p.add_argument("--codec", default="libx264")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--preset", default="veryfast", help="encoder preset (libx264/libx265)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for inference (default 0: half the cores)")
    p.add_argument("--stats-json", metavar="PATH", help="write the run's statistics as JSON")


def cmd_bench(args: argparse.Namespace) -> int:
    from colorstream import bench

    clips = [Path(clip) for clip in args.clips]
    config = bench.BenchConfig(repeats=args.repeats, model=args.model, device=args.device,
                               live_size=parse_size(args.live_size))
    if not clips and not args.live and not args.no_live:
        raise UserError("give clips to measure, --live CLIP, or --no-live (inference alone)")
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
    from colorstream.model.inference import checkpoint_path, load
    from colorstream.training import data
    from colorstream.training.evaluate import calibrate_saturations

    path = checkpoint_path(args.model)
    if not Path(args.faces).is_dir():
        raise UserError(f"{args.faces}: no such directory")
    predictor = load(path, args.device)
    crops = data.load_faces(Path(args.faces), predictor.crop_margin, Path(args.cache_dir)).crops["val"]
    objectives = (args.only,) if args.only else checkpoint.SATURATION_OBJECTIVES
    fitted = calibrate_saturations(predictor, crops[:args.limit], objectives)
    payload = checkpoint.read(path)
    gains = {**checkpoint.saturation_gains(payload["metadata"]), **fitted}
    for legacy in ("saturation_gain", "saturation_objective"):  # superseded by one gain per use
        payload["metadata"].pop(legacy, None)
    payload["metadata"]["saturation_gains"] = gains
    checkpoint.save(path, checkpoint.build_from(payload, str(path)), payload["metadata"])
    print(f"saturation gains {gains[checkpoint.STILLS_OBJECTIVE]} for stills ({checkpoint.STILLS_OBJECTIVE}) and "
          f"{gains[checkpoint.VIDEO_OBJECTIVE]} for video ({checkpoint.VIDEO_OBJECTIVE}); "
          f"{' and '.join(fitted)} fitted on {len(crops[:args.limit])} val faces; recorded in {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorstream", description="Colorize grayscale face video and "
                                     "turn face sketches into photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    device = dict(default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs")

    p = commands.add_parser("invert", help="turn face sketches into colour photos")
    p.add_argument("sketches", nargs="+", metavar="SKETCH", help="sketch images, any size")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="writes OUT_DIR/<stem>.png")
    add_model_argument(p, "sketch")
    p.add_argument("--device", **device)
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(run=cmd_invert)

    p = commands.add_parser("train", help="train a sketch-inversion, gray-face or whole-frame (scene) colour model")
    p.add_argument("faces", help="folder of face photos")
    p.add_argument("--task", default="face", choices=["face", "scene"],
                   help="face: a framed face crop -> colour; scene: a whole gray frame -> colour (needs --scenes)")
    p.add_argument("--scenes", help="folder of everyday colour photos, for --task scene")
    p.add_argument("--input-kind", default="pencil", choices=["pencil", "line", "gray"],
                   help="what the model is fed: a pencil or line sketch, or the gray face itself (video)")
    p.add_argument("--pairs", help="folder of real sketch/photo pairs (pairs.csv, photos/, sketches/)")
    p.add_argument("--real-fraction", type=float, default=0.2)
    p.add_argument("--out", default="runs/model.pt")
    p.add_argument("--arch", choices=["unet", "paper", "scene"], help="default: scene for --task scene, else unet")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--levels", type=int, help="downsamplings (default: 4 for --task scene, else 3)")
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--resolution", type=int,
                   help="face crop side (default 96), or a scene model's working longer side (default 256)")
    p.add_argument("--crop-margin", type=float, default=1.4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="halving", choices=["halving", "cosine"])
    p.add_argument("--loss", default="mse", choices=["mse", "l1", "mse+ssim", "l1+ssim"])
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-images", type=int, default=200, help="validation images scored at each evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--limit", type=int, help="use only the first N photos")
    p.add_argument("--cache-dir", default=".cache", help="where face crops are cached between runs")
    p.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    p.add_argument("--no-calibrate", action="store_true",
                   help="skip fitting the saturation gains on the val split after training")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("evaluate", help="score a checkpoint on held-out faces and real sketch pairs")
    add_model_argument(p, "sketch")
    p.add_argument("--faces", help="folder of face photos; its test split is scored")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--pairs", help="folder of real sketch/photo pairs; its held-out part is scored")
    p.add_argument("--limit", type=int, help="score only the first N of each set")
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--record", action="store_true", help="store the results in the checkpoint's metadata")
    p.add_argument("--no-flip-average", action="store_true", help="invert each sketch once, not also mirrored")
    p.add_argument("--saturation", type=float, default=0.0,
                   help="chroma gain of the model's colours (default 0: the gain the checkpoint fitted for stills)")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("calibrate", help="fit a checkpoint's saturation gains, for stills and for video, on "
                                              "the val split of a face folder")
    add_model_argument(p, "sketch", " to update")
    p.add_argument("--faces", required=True, help="folder of face photos; its val split is used")
    p.add_argument("--limit", type=int, default=200, help="val faces to fit on")
    p.add_argument("--only", choices=["colourfulness", "ab_error"],
                   help="refit only this use's gain, for stills (colourfulness) or video (ab_error), and keep the other")
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_calibrate)

    p = commands.add_parser("colorize", help="colorize grayscale face videos or images, file to file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video (any FFmpeg format) or image files")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file, or a directory when several inputs are given")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_colorize)

    p = commands.add_parser("live", help="colorize a camera (or a file standing in for one) live")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, metavar="INDEX", help="camera index (default 0)")
    source.add_argument("--source", metavar="PATH", help="a video file instead of a camera")
    p.add_argument("--realtime", action="store_true", help="pace --source at its own frame rate")
    p.add_argument("--record", metavar="OUT.mp4", help="also record the colorized stream")
    p.add_argument("--no-window", action="store_true", help="no window; for headless runs and measurements")
    p.add_argument("--size", metavar="WxH", help="capture size of the camera; a --source is scaled and cropped to it")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_live)

    p = commands.add_parser("draw", help="a local web page that turns a face sketch into a photo as you draw")
    add_model_argument(p, "sketch")
    p.add_argument("--device", **device)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in the default browser")
    p.set_defaults(run=cmd_draw)

    p = commands.add_parser("evaluate-video", help="make colour clips gray, colorize them, score against the original")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="colour video clips with faces")
    p.add_argument("--plots", metavar="DIR", help="write a strip plot of face colour over time per clip "
                   "(DIR/<clip>_<smoothing>_face_ab.png)")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_evaluate_video)

    p = commands.add_parser("bench", help="measure colorize against the decode+encode floor, per stage, live")
    p.add_argument("clips", nargs="*", metavar="CLIP",
                   help="video clips to measure on; none, with --no-live, times inference alone")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    p.add_argument("--live", metavar="CLIP", help="clip for the live-latency run (default: the first clip)")
    p.add_argument("--live-size", default="640x480", metavar="WxH", help="frame size of the live run")
    p.add_argument("--no-live", action="store_true", help="skip the live-latency run")
    p.add_argument("--markdown", metavar="PATH", help="write the results as a Markdown report, e.g. BENCHMARKS.md")
    add_stream_arguments(p)
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    from colorstream.model.checkpoint import CheckpointError
    from colorstream.stream.pipeline import PipelineError

    try:
        return args.run(args)
    except (UserError, CheckpointError, ValueError, PipelineError) as error:
        print(f"colorstream {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"colorstream {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
