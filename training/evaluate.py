"""Evaluation protocols.

- Synthetic sketches (the paper's Table II): a held-out face, framed as the
  model was trained, is sketched with the checkpoint's own sketch op,
  inverted, and scored with PSNR and SSIM at 100x100, both on the Haar face
  box (the paper's crop) and on the model's whole framed view.
- Real hand-drawn pairs (the paper's Table III): whole sketches go through
  `Predictor.invert`, the product path, and the outputs are compared with the
  photos (SSIM, PSNR) and used as probes for a PCA + correlation matcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from colorstream import imageops, metrics
from colorstream.model.checkpoint import SATURATION_OBJECTIVES, STILLS_OBJECTIVE, VIDEO_OBJECTIVE
from colorstream.model.inference import Predictor
from colorstream.training.data import SketchPair, center_view

PROTOCOL_SIZE = 100


def evaluate_faces(predictor: Predictor, crops: np.ndarray, size: int = PROTOCOL_SIZE) -> dict[str, float]:
    """PSNR/SSIM, Lab a/b error and colourfulness at size x size, over cached face crops, in two regions.

    Each crop is framed the way the model was trained (its crop margin around
    the Haar box), sketched with the model's own op and inverted. "face"
    scores the Haar box itself, the paper's crop, at size x size; "crop"
    scores the model's whole view, background included, resized to size x size.
    """
    view = int(round(size * predictor.crop_margin))
    inset = (view - size) // 2
    truths = [center_view(crop, view) for crop in crops]
    outputs = predictor.predict([predictor.sketchify(truth) for truth in truths])
    regions = {
        "face": lambda image: image[inset:inset + size, inset:inset + size],
        "crop": lambda image: cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA),
    }
    report: dict[str, float] = {"n": len(truths)}
    for name, region in regions.items():
        outs, refs = [region(o) for o in outputs], [region(t) for t in truths]
        report[f"{name}_psnr"] = float(np.mean([metrics.psnr(o, t) for o, t in zip(outs, refs)]))
        report[f"{name}_ssim"] = float(np.mean([metrics.ssim(o, t) for o, t in zip(outs, refs)]))
        report[f"{name}_ab_error"] = float(np.mean([metrics.ab_error(o, t) for o, t in zip(outs, refs)]))
        report[f"{name}_colourfulness_output"] = float(np.mean([metrics.colourfulness(o) for o in outs]))
        report[f"{name}_colourfulness_truth"] = float(np.mean([metrics.colourfulness(t) for t in refs]))
    return report


SATURATION_GAINS = np.round(np.arange(0.5, 2.001, 0.05), 2)


def calibrate_saturation(predictor: Predictor, crops: np.ndarray, size: int = PROTOCOL_SIZE,
                         objective: str = "colourfulness") -> float:
    """The saturation gain fitted on `crops` for one of two objectives.

    Trained with a pixel loss, a model predicts the mean of the colours its
    input allows, which is washed out (sepia). Scaling chroma around luma
    scales Hasler-Suesstrunk colourfulness by the same factor (before
    clipping), so one gain can restore it: "colourfulness" picks the gain
    whose outputs are as colourful as the truth on average, right for still
    photos that should look like photos. That costs accuracy, since a
    confident wrong hue is further off than a pale one: "ab_error" picks the
    gain with the lowest face Lab a/b error instead, the video pipeline's target.
    Both scores have one minimum over the gain, so the search stops once past it.
    """
    if objective not in SATURATION_OBJECTIVES:
        raise ValueError(f"unknown calibration objective {objective!r}; expected one of "
                         f"{', '.join(SATURATION_OBJECTIVES)}")
    previous = predictor.saturation_gain
    try:
        best, best_score = 1.0, float("inf")
        for gain in SATURATION_GAINS:
            predictor.saturation_gain = float(gain)
            report = evaluate_faces(predictor, crops, size)
            score = (abs(report["face_colourfulness_output"] - report["face_colourfulness_truth"])
                     if objective == "colourfulness" else report["face_ab_error"])
            if score >= best_score:
                break
            best, best_score = float(gain), score
        return best
    finally:
        predictor.saturation_gain = previous


def calibrate_saturations(predictor: Predictor, crops: np.ndarray,
                          objectives: tuple[str, ...] = SATURATION_OBJECTIVES) -> dict[str, float]:
    """The gain for each use (`model.checkpoint.SATURATION_OBJECTIVES`), as checkpoints record them."""
    return {objective: calibrate_saturation(predictor, crops, objective=objective) for objective in objectives}


def evaluate_pairs(predictor: Predictor, pairs: list[SketchPair], size: int = PROTOCOL_SIZE) -> dict[str, float]:
    """Sketch vs output, each against the true photo, on real hand-drawn pairs."""
    outputs = predictor.invert([pair.sketch for pair in pairs])

    def small(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)

    photos = [small(pair.photo) for pair in pairs]
    sketches = [cv2.cvtColor(small(pair.sketch), cv2.COLOR_GRAY2BGR) for pair in pairs]
    outs = [small(output) for output in outputs]
    gray = lambda images: np.stack([imageops.to_gray(image) for image in images])  # noqa: E731
    return {
        "n": len(pairs),
        "ssim_sketch": float(np.mean([metrics.ssim(s, p) for s, p in zip(sketches, photos)])),
        "ssim_output": float(np.mean([metrics.ssim(o, p) for o, p in zip(outs, photos)])),
        "psnr_sketch": float(np.mean([metrics.psnr(s, p) for s, p in zip(sketches, photos)])),
        "psnr_output": float(np.mean([metrics.psnr(o, p) for o, p in zip(outs, photos)])),
        "rank1_sketch": metrics.rank1_identification(gray(photos), gray(sketches)),
        "rank1_output": metrics.rank1_identification(gray(photos), gray(outs)),
    }


def sample_grid(predictor: Predictor, crops: np.ndarray, path: Path, count: int = 8,
                size: int = PROTOCOL_SIZE) -> None:
    """A PNG with one row per face: sketch | output | truth."""
    truths = [center_view(crop, size) for crop in crops[:count]]
    sketches = [predictor.sketchify(truth) for truth in truths]
    outputs = predictor.predict(sketches)
    rows = [np.hstack([cv2.cvtColor(s, cv2.COLOR_GRAY2BGR), o, t]) for s, o, t in zip(sketches, outputs, truths)]
    if rows:
        cv2.imwrite(str(path), np.vstack(rows))


def evaluate_photos(colorize: Callable[[np.ndarray], np.ndarray], photos: list[np.ndarray],
                    grays: list[np.ndarray] | None = None) -> dict[str, float]:
    """Whole-image scores of a colorizer that is given each colour photo's gray version.

    `colorize`: (H, W) uint8 gray -> (H, W, 3) BGR. Reports the mean Lab a/b
    error of the outputs and of the gray inputs (ratio: of the means), the
    outputs' and the photos' mean colourfulness (ratio: of the means), PSNR
    of both, and the share of photos whose output is further from the truth
    in a/b than the gray input is. `grays`, when given, are the photos' gray
    versions, already made.
    """
    rows = []
    for photo, gray in zip(photos, grays or [imageops.to_gray(photo) for photo in photos]):
        output, gray_bgr = colorize(gray), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        rows.append((metrics.ab_error(output, photo), metrics.ab_error(gray_bgr, photo),
                     metrics.colourfulness(output), metrics.colourfulness(photo),
                     metrics.psnr(output, photo), metrics.psnr(gray_bgr, photo)))
    r = np.array(rows, np.float64).reshape(-1, 6)
    mean = r.mean(axis=0) if len(r) else np.zeros(6)
    return {"n": len(r), "ab_error_output": float(mean[0]), "ab_error_gray": float(mean[1]),
            "ab_error_ratio": float(mean[0] / max(mean[1], 1e-9)),
            "colourfulness_output": float(mean[2]), "colourfulness_truth": float(mean[3]),
            "colourfulness_ratio": float(mean[2] / max(mean[3], 1e-9)),
            "psnr_output": float(mean[4]), "psnr_gray": float(mean[5]),
            "worse_than_gray": float(np.mean(r[:, 0] > r[:, 1])) if len(r) else 0.0}


STILLS_MIN_COLOURFULNESS = 0.55  # a still should look coloured: at least this share of the photos' colourfulness


def calibrate_scene_gains(predictor, photos: list[np.ndarray]) -> dict[str, float]:
    """The scene model's saturation gain for each use, fitted on held-out photos.

    Video ("ab_error"): the gain with the lowest whole-image a/b error.
    Stills ("colourfulness"): the gain with the lowest a/b error among those
    whose outputs reach `STILLS_MIN_COLOURFULNESS` of the photos'
    colourfulness (the largest gain if none does); matching colourfulness in
    full would cost a guessed background too much accuracy. The a/b scale
    linearly with the gain, so each photo is run through the model once.
    """
    grays = [imageops.to_gray(photo) for photo in photos]

    def scores(flip_average: bool) -> list[tuple[float, float, float]]:
        """(gain, a/b error, colourfulness ratio) for every gain, decoded as that use decodes."""
        predicted = [predictor.predict_ab(gray, saturation_gain=1.0, flip_average=flip_average) for gray in grays]
        rows = []
        for gain in map(float, SATURATION_GAINS):
            outputs = {id(gray): imageops.gray_with_ab(gray, gain * ab) for gray, ab in zip(grays, predicted)}
            report = evaluate_photos(lambda gray: outputs[id(gray)], photos, grays)
            rows.append((gain, report["ab_error_output"], report["colourfulness_ratio"]))
        return rows

    video = min(scores(flip_average=False), key=lambda score: score[1])[0]
    stills_scores = scores(flip_average=True)  # stills average the mirrored view in
    colourful = [score for score in stills_scores if score[2] >= STILLS_MIN_COLOURFULNESS]
    stills = min(colourful, key=lambda score: score[1])[0] if colourful else float(SATURATION_GAINS[-1])
    return {STILLS_OBJECTIVE: stills, VIDEO_OBJECTIVE: video}


def scene_sample_grid(predictor, photos: list[np.ndarray], path: Path, count: int = 6, side: int = 160) -> None:
    """A PNG with one row per photo: gray input | output | truth, each scaled to `side` pixels high."""
    rows = []
    for photo in photos[:count]:
        gray = imageops.to_gray(photo)
        row = np.hstack([cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), predictor.colorize(gray), photo])
        rows.append(cv2.resize(row, (int(round(row.shape[1] * side / row.shape[0])), side),
                               interpolation=cv2.INTER_AREA))
    if rows:
        width = max(row.shape[1] for row in rows)
        cv2.imwrite(str(path), np.vstack([cv2.copyMakeBorder(row, 0, 0, 0, width - row.shape[1],
                                                             cv2.BORDER_CONSTANT, value=(255, 255, 255))
                                          for row in rows]))
