"""The `colorstream` command: one entry point, one subcommand per job.

Every expected failure (bad input, bad checkpoint, unwritable output) ends as
one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

EXIT_USAGE, EXIT_FAILED, EXIT_PARTIAL, EXIT_INTERRUPTED = 2, 1, 3, 130


class UserError(Exception):
    """A failure caused by the user's input; reported as one line."""


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode to a temporary file beside `path`, then rename: no half-written file under the final name."""
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise UserError(f"{path}: could not encode image")
    handle, partial = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(encoded.tobytes())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


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
    from model.inference import load

    out_dir = Path(args.output)
    ensure_output_dir(out_dir)
    predictor = load(args.model, args.device)
    sketches, failures = {}, []
    for name in args.sketches:
        try:
            sketches[Path(name)] = read_image(Path(name))
        except UserError as error:
            failures.append(str(error))
    paths, taken = [], {}
    for path in sketches:  # two inputs with one stem would overwrite each other's output
        if path.stem in taken:
            failures.append(f"{path}: output {path.stem}.png is already taken by {taken[path.stem]}")
        else:
            taken[path.stem] = path
            paths.append(path)
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        for path, photo in zip(chunk, predictor.invert([sketches[p] for p in chunk])):
            target = out_dir / f"{path.stem}.png"
            write_image_atomic(target, photo)
            print(target)
    for failure in failures:
        print(f"colorstream invert: {failure}", file=sys.stderr)
    if failures:
        print(f"colorstream invert: {len(paths)} written, {len(failures)} failed", file=sys.stderr)
        return EXIT_PARTIAL if paths else EXIT_FAILED
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from model.net import ModelConfig
    from training.train import TrainConfig, command_line, train

    model = ModelConfig(arch=args.arch, base_channels=args.base_channels, levels=args.levels,
                        res_blocks=args.res_blocks)
    for folder in [args.faces] + ([args.pairs] if args.pairs else []):
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    config = TrainConfig(faces=args.faces, out=args.out, pairs=args.pairs, real_fraction=args.real_fraction,
                         model=model, resolution=args.resolution, crop_margin=args.crop_margin,
                         batch_size=args.batch_size, steps=args.steps, lr=args.lr, schedule=args.schedule,
                         loss=args.loss, eval_every=args.eval_every, seed=args.seed, device=args.device,
                         threads=args.threads, cache_dir=args.cache_dir, limit=args.limit)
    metadata = train(config, resume=args.resume, command=command_line())
    print(json.dumps(metadata["metrics"], indent=2))
    print(args.out)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from model import checkpoint
    from model.inference import DEFAULT_CHECKPOINT, load
    from training import data
    from training.evaluate import evaluate_faces, evaluate_pairs

    path = Path(args.model) if args.model else DEFAULT_CHECKPOINT
    for folder in filter(None, (args.faces, args.pairs)):
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such directory")
    predictor = load(path, args.device)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorstream", description="Colorize grayscale face video and "
                                     "turn face sketches into photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    device = dict(default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs")

    p = commands.add_parser("invert", help="turn face sketches into colour photos")
    p.add_argument("sketches", nargs="+", metavar="SKETCH", help="sketch images, any size")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="writes OUT_DIR/<stem>.png")
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the bundled model)")
    p.add_argument("--device", **device)
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(run=cmd_invert)

    p = commands.add_parser("train", help="train a sketch-inversion model")
    p.add_argument("faces", help="folder of face photos")
    p.add_argument("--pairs", help="folder of real sketch/photo pairs (pairs.csv, photos/, sketches/)")
    p.add_argument("--real-fraction", type=float, default=0.2)
    p.add_argument("--out", default="runs/model.pt")
    p.add_argument("--arch", default="unet", choices=["unet", "paper"])
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--crop-margin", type=float, default=1.4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="halving", choices=["halving", "cosine"])
    p.add_argument("--loss", default="mse", choices=["mse", "l1", "mse+ssim", "l1+ssim"])
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--limit", type=int, help="use only the first N photos")
    p.add_argument("--cache-dir", default=".cache", help="where face crops are cached between runs")
    p.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("evaluate", help="score a checkpoint on held-out faces and real sketch pairs")
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the bundled model)")
    p.add_argument("--faces", help="folder of face photos; its test split is scored")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--pairs", help="folder of real sketch/photo pairs; its held-out part is scored")
    p.add_argument("--limit", type=int, help="score only the first N of each set")
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--record", action="store_true", help="store the results in the checkpoint's metadata")
    p.add_argument("--device", **device)
    p.set_defaults(run=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from model.checkpoint import CheckpointError

    try:
        return args.run(args)
    except (UserError, CheckpointError, ValueError) as error:
        print(f"colorstream {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"colorstream {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
