"""Inference: a predictor that turns numpy sketches into numpy photos, driven by checkpoint metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from colorstream import imageops
from colorstream.model import checkpoint
from colorstream.model.net import ModelConfig, fold_batchnorm

WEIGHTS = Path(__file__).resolve().parent / "weights"
# the models that ship in the package, by name: sketches -> photos (MODEL_CARD.md),
# gray video faces -> colour (VIDEO_MODEL_CARD.md) and whole gray frames -> colour (SCENE_MODEL_CARD.md)
# "scene" colours video frames and "scene-stills" images: the same network, trained longer for stills, where the
# photos score better and the talking-head clips worse (SCENE_MODEL_CARD.md)
BUNDLED = {"sketch": WEIGHTS / "sketch.pt", "video": WEIGHTS / "video.pt", "scene": WEIGHTS / "scene.pt",
           "scene-stills": WEIGHTS / "scene_stills.pt"}
DEVICES = ("auto", "cpu", "cuda", "mps")
WHOLE_SKETCH_MAX_VIEWS = 4  # `Predictor.invert` works on a whole sketch at most this many model views wide


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


def check_images(images: Sequence[np.ndarray], method: str) -> None:
    """A list of uint8 gray, BGR or BGRA images, or a clear error: one bare image would be read as a stack of rows."""
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
        raise TypeError(f"{method} takes a list of images; for one image, call {method}([image])")
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image {index} is {type(image).__name__}, not a numpy array (an unreadable file?)")
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image {index} is {image.dtype} of shape {image.shape}; expected uint8 (H, W) gray, "
                             "(H, W, 3) BGR or (H, W, 4) BGRA")
        if min(image.shape[:2]) < 1:
            raise ValueError(f"image {index} is empty")


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
        self.multiple = ModelConfig(**metadata["model"]).size_multiple  # the net takes sides of this multiple
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
        check_images(sketches, "predict")
        flip_average = self.flip_average if flip_average is None else flip_average
        prepared = np.stack([imageops.prepare_sketch(s, self.resolution, self.normalize) for s in sketches]) \
            if len(sketches) else np.zeros((0, self.resolution, self.resolution), np.uint8)
        if flip_average and len(prepared):  # both views in one batch: one call, and the same kernels for each
            both = self.predict_prepared(np.concatenate([prepared, prepared[:, :, ::-1]]), 2 * batch_size)
            photos, mirrored = both[:len(prepared)], both[len(prepared):, :, ::-1]
            photos = mean_uint8(photos, mirrored)
        else:
            photos = self.predict_prepared(prepared, batch_size)
        return [cv2.resize(photo, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_CUBIC)
                if s.shape[:2] != photo.shape[:2] else photo for s, photo in zip(sketches, photos)]

    def invert(self, sketches: Sequence[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """Whole sketches of any size and framing -> photos of the same size.

        Each sketch is inverted twice. The whole sketch goes through the
        fully convolutional net at the scale where its face is as large as the
        faces the model was trained on, so hair, shoulders and background keep
        their strokes; squeezing a whole portrait into one model view would
        shrink its face and blur it. The face is then cropped the way training
        crops faces, inverted in a batch with the others, and pasted over with
        a feathered edge. A sketch with no face found is inverted whole, its
        longer side the model's view.
        """
        check_images(sketches, "invert")
        wholes, faces, views = [], [], []
        for sketch in sketches:
            gray = imageops.to_gray(sketch)
            paper = int(np.percentile(gray, 90))  # pad with paper, not replicated strokes
            face = imageops.find_sketch_face(sketch)
            box = imageops.square_box(face, self.crop_margin) if face else None
            scale = self.resolution / (box.w if box else max(gray.shape[:2]))
            wholes.append(self.invert_whole(gray, scale, paper))
            faces.append(box)
            if box:
                views.append(imageops.crop_square(gray, box, self.resolution, fill=paper))
        photos = iter(self.predict(views, batch_size))
        return [whole if box is None else imageops.paste_square(whole, next(photos), box)
                for whole, box in zip(wholes, faces)]

    def invert_whole(self, gray: np.ndarray, scale: float, paper: int) -> np.ndarray:
        """A whole (H, W) gray sketch -> (H, W, 3) BGR, inverted at `scale`, padded with paper to the net's multiple."""
        height, width = gray.shape[:2]
        scale = min(scale, WHOLE_SKETCH_MAX_VIEWS * self.resolution / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pad_y, pad_x = -size[1] % self.multiple, -size[0] % self.multiple
        padded = cv2.copyMakeBorder(small, 0, pad_y, 0, pad_x, cv2.BORDER_CONSTANT, value=paper)
        prepared = imageops.normalize_sketch(padded) if self.normalize else padded  # (h, w)
        if self.flip_average:
            both = self.predict_prepared(np.stack([prepared, prepared[:, ::-1]]), 2)
            photo = mean_uint8(both[0], both[1][:, ::-1])
        else:
            photo = self.predict_prepared(prepared[None], 1)[0]
        return cv2.resize(photo[:size[1], :size[0]], (width, height), interpolation=cv2.INTER_CUBIC)


class ScenePredictor:
    """The scene model: whole gray frames in, Lab a/b of the whole frame out, at a quarter of its working size.

    The frame is shrunk to the checkpoint's working size (`resolution`, its
    longer side), the net gives a distribution over the checkpoint's a/b
    bins per pixel, and it is decoded as the annealed mean at the
    temperature of its use (Zhang et al. 2016): below 1 it leans towards
    the likeliest colour, which keeps hues that a plain mean would average
    to brown-gray, at a higher risk of a wrong one. The saturation gain then
    scales the a/b. Both are fitted per use (`colorstream calibrate`).
    """

    def __init__(self, net: torch.nn.Module, metadata: dict[str, Any], device: torch.device):
        self.net = net.to(device, memory_format=torch.channels_last).eval()
        self.metadata = metadata
        self.device = device
        self.side = int(metadata["resolution"])
        self.multiple = ModelConfig(**metadata["model"]).size_multiple
        self.bins = torch.tensor(metadata["ab_bins"], dtype=torch.float32, device=device)  # (Q, 2)
        self.temperatures = checkpoint.decode_temperatures(metadata)
        self.temperature = self.temperatures[checkpoint.STILLS_OBJECTIVE]  # in use; video passes its own
        self.saturation_gains = checkpoint.saturation_gains(metadata)
        self.saturation_gain = self.saturation_gains[checkpoint.STILLS_OBJECTIVE]  # in use; video passes its own

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(width, height) of the model's input for a frame of this size."""
        return imageops.scene_input_size(height, width, self.side, self.multiple)

    def prepare(self, gray: np.ndarray) -> np.ndarray:
        return imageops.scene_input(gray, self.side, self.multiple)

    @torch.inference_mode()
    def predict_prepared(self, grays: np.ndarray, saturation_gain: float | None = None,
                         temperature: float | None = None, flip_average: bool = False) -> np.ndarray:
        """(B, h, w) uint8 prepared frames -> (B, h/4, w/4, 2) float32 Lab a/b.

        With `flip_average` (stills), the mirrored frame is predicted too and the logits averaged: on held-out
        photos that lowered the a/b error by about 0.006x the gray input's, for twice the compute.
        """
        gain = self.saturation_gain if saturation_gain is None else saturation_gain
        return decode_ab(self.logits(grays, flip_average), self.bins, temperature or self.temperature,
                         gain).cpu().numpy()

    @torch.inference_mode()
    def logits(self, grays: np.ndarray, flip_average: bool = False) -> torch.Tensor:
        """(B, h, w) uint8 prepared frames -> (B, Q, h/4, w/4) logits over the a/b bins."""
        x = torch.from_numpy(np.ascontiguousarray(grays)).to(self.device, torch.float32).unsqueeze(1) / 255.0
        x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)  # (B, Q, h/4, w/4)
        if flip_average:
            logits = (logits + self.net(x.flip(3)).flip(3)) / 2.0
        return logits

    def predict_ab(self, gray: np.ndarray, saturation_gain: float | None = None,
                   flip_average: bool = False) -> np.ndarray:
        """(H, W) uint8 gray frame -> (h/4, w/4, 2) float32 Lab a/b of the whole frame, at the model's size."""
        return self.predict_prepared(self.prepare(gray)[None], saturation_gain, flip_average=flip_average)[0]

    def colorize(self, image: np.ndarray, saturation_gain: float | None = None, flip_average: bool = True) -> np.ndarray:
        """Any gray or colour image -> BGR of the same size: its own lightness, the model's a/b."""
        gray = imageops.to_gray(image)
        return imageops.gray_with_ab(gray, self.predict_ab(gray, saturation_gain, flip_average))


def mean_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rounded mean of two uint8 images, without overflow: a view and its mirrored twin, averaged."""
    return ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)


def decode_ab(logits: torch.Tensor, bins: torch.Tensor, temperature: float, gain: float = 1.0) -> torch.Tensor:
    """(B, Q, h, w) logits over (Q, 2) a/b bins -> (B, h, w, 2) annealed-mean a/b, scaled by `gain`."""
    # the bins last: the net's channels-last logits are then contiguous, and softmax and the product run
    # over memory in order (5x faster on a CPU than over dim 1, measured)
    probabilities = torch.softmax(logits.permute(0, 2, 3, 1) / temperature, dim=-1)  # (B, h, w, Q)
    return gain * (probabilities @ bins)  # (B, h, w, 2)


def checkpoint_path(model: str | Path | None, default: str = "sketch") -> Path:
    """A bundled model's name (a key of `BUNDLED`) or a checkpoint path -> the file; None means `default`."""
    name = default if model is None else str(model)
    return BUNDLED[name] if name in BUNDLED else Path(name)


def checkpoint_file(model: str | Path | None, default: str = "sketch") -> Path:
    """`checkpoint_path`, which must name a file: a missing one is a one-line error."""
    path = checkpoint_path(model, default)
    if not path.is_file():  # most likely a mistyped name
        raise checkpoint.CheckpointError(f"{path}: checkpoint not found (bundled models: {', '.join(BUNDLED)})")
    return path


def load(model: str | Path | None = None, device: str = "auto", default: str = "sketch",
         task: str | None = "face") -> Predictor | ScenePredictor:
    """A predictor for a bundled model's name or a checkpoint file; None means the bundled `default`.

    `task` ("face", "scene", or None for either) is what the caller needs; another kind is a one-line error.
    """
    path = checkpoint_file(model, default)
    payload = checkpoint.read(path)
    found = checkpoint.task_of(payload["metadata"])
    if task is not None and found != task:
        raise checkpoint.CheckpointError(f"{path}: is a {found} model, but a {task} model is needed here")
    net = fold_batchnorm(checkpoint.build_from(payload, str(path)))  # a loaded net only runs inference
    kind = ScenePredictor if found == "scene" else Predictor
    return kind(net, payload["metadata"], pick_device(device))
