"""Inference: a predictor that turns numpy sketches into numpy photos, driven by checkpoint metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from colorstream import imageops
from colorstream.model import checkpoint
from colorstream.model.net import fold_batchnorm

WEIGHTS = Path(__file__).resolve().parent / "weights"
# the models that ship in the package, by name: sketches -> photos (MODEL_CARD.md) and
# gray video faces -> colour (VIDEO_MODEL_CARD.md)
BUNDLED = {"sketch": WEIGHTS / "sketch.pt", "video": WEIGHTS / "video.pt"}
DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(requested: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; an explicit device that is absent is an error."""
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise ValueError(f"device {requested!r} was asked for but is not available here")
    return torch.device(requested)


class Predictor:
    """A loaded model plus the preprocessing its metadata prescribes."""

    def __init__(self, net: torch.nn.Module, metadata: dict[str, Any], device: torch.device):
        self.net = net.to(device, memory_format=torch.channels_last).eval()  # about 10% faster on CPU, measured
        self.metadata = metadata
        self.device = device
        self.resolution = int(metadata["resolution"])
        self.input_kind = metadata["input_kind"]
        self.sketch_params = dict(metadata["sketch_params"])
        self.normalize = bool(metadata["normalize_sketch"])
        self.crop_margin = float(metadata["crop_margin"])
        self.saturation_gains = checkpoint.saturation_gains(metadata)
        self.saturation_gain = self.saturation_gains[checkpoint.STILLS_OBJECTIVE]  # in use; video passes its own
        self.flip_average = True  # for still images; see `predict`
        self._luma_weights = torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)  # RGB, BT.601

    def sketchify(self, image: np.ndarray) -> np.ndarray:
        """The sketch this model was trained on, made from a face photo or grayscale face crop.

        Stroke sizes in the metadata are in pixels at the model's resolution,
        so they are scaled to the image's size: a face sketches alike at any size.
        """
        scale = max(image.shape[:2]) / self.resolution
        params = {name: value * scale for name, value in self.sketch_params.items()}
        return imageops.make_sketch(image, self.input_kind, **params)

    @torch.inference_mode()
    def predict_prepared(self, sketches: np.ndarray, batch_size: int = 32,
                         saturation_gain: float | None = None) -> np.ndarray:
        """(B, N, N) uint8 model inputs -> (B, N, N, 3) uint8 BGR photos.

        `saturation_gain` overrides the checkpoint's calibrated gain (None keeps it).
        """
        gain = self.saturation_gain if saturation_gain is None else saturation_gain
        outputs = []
        for start in range(0, len(sketches), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(sketches[start:start + batch_size]))
            x = chunk.to(self.device, torch.float32).unsqueeze(1) / 255.0  # (b, 1, N, N); one channel: NCHW is NHWC
            rgb = self.net(x)  # (b, 3, N, N)
            if gain != 1.0:  # calibrated after training: regression to the mean washes colour out
                luma = (rgb * self._luma_weights).sum(dim=1, keepdim=True)  # (b, 1, N, N)
                rgb = luma + gain * (rgb - luma)
            rgb = rgb.clamp(0.0, 1.0)
            bgr = (rgb.flip(1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)  # (b, N, N, 3)
            outputs.append(bgr.cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.resolution, self.resolution, 3), np.uint8)

    def predict(self, sketches: Sequence[np.ndarray], batch_size: int = 32,
                flip_average: bool | None = None) -> list[np.ndarray]:
        """Sketches of any size (gray or colour) -> BGR photos, each the size of its sketch.

        With `flip_average`, each sketch is also inverted mirrored and the two
        results averaged: on 200 validation faces that raised SSIM by 0.004 and
        PSNR by 0.08 dB (MODEL_CARD.md) for twice the compute, a fair trade for
        still images.
        Video uses `predict_prepared` once per face instead. None means the
        predictor's own `flip_average` setting.
        """
        flip_average = self.flip_average if flip_average is None else flip_average
        prepared = np.stack([imageops.prepare_sketch(s, self.resolution, self.normalize) for s in sketches]) \
            if len(sketches) else np.zeros((0, self.resolution, self.resolution), np.uint8)
        if flip_average and len(prepared):  # both views in one batch: one call, and the same kernels for each
            both = self.predict_prepared(np.concatenate([prepared, prepared[:, :, ::-1]]), 2 * batch_size)
            photos, mirrored = both[:len(prepared)], both[len(prepared):, :, ::-1]
            photos = ((photos.astype(np.uint16) + mirrored + 1) // 2).astype(np.uint8)
        else:
            photos = self.predict_prepared(prepared, batch_size)
        return [cv2.resize(photo, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_CUBIC)
                if s.shape[:2] != photo.shape[:2] else photo for s, photo in zip(sketches, photos)]

    def invert(self, sketches: Sequence[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """Whole sketches of any size and framing -> photos of the same size.

        Each sketch is inverted twice in one batch: framed as a whole (padded to
        a square) for the background, and cropped around its face the way
        training crops faces, pasted back with a feathered edge. A sketch with
        no face found gets the whole-frame result alone.
        """
        squares, faces, views = [], [], []
        for sketch in sketches:
            gray = imageops.to_gray(sketch)
            paper = int(np.percentile(gray, 90))  # pad with paper, not replicated strokes
            height, width = sketch.shape[:2]
            side = max(height, width)
            square = imageops.Box((width - side) / 2.0, (height - side) / 2.0, side, side)
            face = imageops.find_sketch_face(sketch)
            squares.append(square)
            faces.append(imageops.square_box(face, self.crop_margin) if face else None)
            views.append(imageops.crop_square(gray, square, self.resolution, fill=paper))
            if face:
                views.append(imageops.crop_square(gray, faces[-1], self.resolution, fill=paper))
        photos = iter(self.predict(views, batch_size))
        results = []
        for sketch, square, face in zip(sketches, squares, faces):
            height, width = sketch.shape[:2]
            canvas = np.zeros((height, width, 3), np.uint8)
            canvas = imageops.paste_square(canvas, next(photos), square, feather=0.0)
            if face is not None:
                canvas = imageops.paste_square(canvas, next(photos), face)
            results.append(canvas)
        return results


def checkpoint_path(model: str | Path | None, default: str = "sketch") -> Path:
    """A bundled model's name ("sketch", "video") or a checkpoint path -> the checkpoint file; None means `default`."""
    name = default if model is None else str(model)
    return BUNDLED[name] if name in BUNDLED else Path(name)


def load(model: str | Path | None = None, device: str = "auto", default: str = "sketch") -> Predictor:
    """A predictor for a bundled model's name or a checkpoint file; None means the bundled `default`."""
    path = checkpoint_path(model, default)
    if not path.is_file():  # most likely a mistyped name
        raise checkpoint.CheckpointError(f"{path}: checkpoint not found (bundled models: {', '.join(BUNDLED)})")
    payload = checkpoint.read(path)
    net = fold_batchnorm(checkpoint.build_from(payload, str(path)))  # a loaded net only runs inference
    return Predictor(net, payload["metadata"], pick_device(device))
