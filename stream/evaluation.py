"""Video quality against ground truth: a colour clip is made gray, colorized, and compared with itself.

The grayscale clip (audio kept) is written with the same writer `colorize`
uses, then colorized through the real pipeline, so the scores cover the
whole product path: decode, detect, sketchify, infer, smooth, composite,
encode. The gray clip itself is scored too, as the baseline to beat.

Temporal scores (warp error, face chroma flicker, CDC) look at consecutive
frames; their definitions are in `colorstream.temporal` and `ClipScores`.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from itertools import chain
from pathlib import Path

import av
import cv2
import numpy as np

from colorstream import imageops, metrics, temporal
from colorstream.files import write_image_atomic
from colorstream.temporal import ColourDistributionConsistency
from colorstream.model.inference import Predictor, ScenePredictor
from colorstream.stream.jobs import Options, colorize_video
from colorstream.stream.palette import Palette
from colorstream.stream.strip_plot import draw_strip
from colorstream.stream.video_io import OUTPUT_CONTAINERS, MediaError, VideoReader, VideoWriter


def make_gray_clip(source: Path, target: Path, options: Options,
                   chroma: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """The clip with its colour removed, timestamps, rotation and audio kept; with `chroma` (video-range Cb, Cr
    planes), that colour on every frame instead of gray."""
    reader = VideoReader(source)
    try:
        frames = reader.frames()
        first = next(frames, None)
        if first is None:
            raise ValueError(f"{source}: no decodable video frames")
        with VideoWriter.like(reader, target, options.codec, options.crf, options.preset) as writer:
            for frame in chain([first], frames):  # lazily: a long clip never sits in memory
                writer.write(frame.luma, chroma, frame.pts)
    finally:
        reader.close()


def chroma_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A BGR frame's video-range (Cb, Cr) planes at the size the writer takes them (half for 4:2:0)."""
    size = imageops.chroma_plane_size(*image.shape[:2])
    return tuple(cv2.resize(plane, size, interpolation=cv2.INTER_AREA) if size != image.shape[1::-1] else plane
                 for plane in imageops.bgr_to_video_chroma(image))


def truth_keyframes(source: Path, every: int, folder: Path) -> dict[int, Path]:
    """The true colour of frame 0, and of every `every`-th frame after it (0: frame 0 only), as keyframe files."""
    chosen = {}
    for index, image in enumerate(_decoded(source)):
        if index == 0 or (every and index % every == 0):
            chosen[index] = folder / f"{index}.png"
            cv2.imwrite(str(chosen[index]), image)
    return chosen


def frame_colour_errors(source: Path, path: Path) -> np.ndarray:
    """Each frame's whole-frame Lab a/b error of a clip against its colour original, (frames,)."""
    return np.array([metrics.ab_error(output, truth) for truth, output in zip(_decoded(source), _decoded(path))])


def last_fifth(values: list[float] | np.ndarray) -> float:
    """The mean over the last fifth of a clip's frames, where drift shows."""
    values = np.asarray(values, np.float64)
    return float(values[len(values) - max(1, len(values) // 5):].mean()) if len(values) else 0.0


def _decoded(path: Path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def face_pixels(image: np.ndarray, faces: list[imageops.Box]) -> np.ndarray:
    """The pixels inside the face boxes (clipped to the image), (K, C), box after box in row order."""
    height, width = image.shape[:2]

    def span(start: float, length: float, size: int) -> slice:
        return slice(min(size, max(0, int(start))), min(size, max(0, int(start + length))))  # never negative

    parts = [image[span(b.y, b.h, height), span(b.x, b.w, width)] for b in faces]
    return np.concatenate([part.reshape(-1, image.shape[2]) for part in parts] or [image[:0, 0]])


def face_ab(image: np.ndarray, faces: list[imageops.Box]) -> np.ndarray:
    """Lab a/b of the pixels inside the face boxes, (K, 2) float32, in `face_pixels` order."""
    pixels = face_pixels(image, faces)
    if not len(pixels):  # no face, or boxes wholly outside the frame
        return np.zeros((0, 2), np.float32)
    return imageops.bgr_to_lab(pixels[None])[0, :, 1:]


def ab_distance_sum(a: np.ndarray, b: np.ndarray) -> float:
    """Summed Euclidean distance of two (K, 2) arrays of Lab a/b."""
    return float(np.linalg.norm(a - b, axis=1).sum())


class ClipScores:
    """Every score of one clip, fed a frame at a time: truth (the colour original), its gray version, output.

    Only the previous frame triple and the last four frames' histograms are
    kept, so a clip of any length fits in memory. Face boxes are found by Haar
    detection on the truth, independently of the pipeline's tracker.
    """

    def __init__(self, min_face: int):
        self.min_face = min_face
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.cdc_output, self.cdc_truth = ColourDistributionConsistency(), ColourDistributionConsistency()
        self.face_means: list[tuple[float, ...]] = []  # per frame: output a, b, truth a, b (NaN: no face)
        self.frame_errors: list[tuple[float, float]] = []  # per frame: whole-frame a/b error of output, of gray
        self._previous: tuple[np.ndarray, ...] | None = None  # truth, gray luma, output, their chroma planes

    def add(self, truth: np.ndarray, gray: np.ndarray, output: np.ndarray) -> None:
        sums, counts = self.sums, self.counts
        counts["frames"] += 1
        sums["psnr_output"] += metrics.psnr(output, truth)
        sums["psnr_gray"] += metrics.psnr(gray, truth)
        sums["ssim_output"] += metrics.ssim(output, truth)
        sums["ssim_gray"] += metrics.ssim(gray, truth)
        self.frame_errors.append((metrics.ab_error(output, truth), metrics.ab_error(gray, truth)))
        sums["frame_ab_output"] += self.frame_errors[-1][0]
        sums["frame_ab_gray"] += self.frame_errors[-1][1]
        sums["frame_colourfulness_output"] += metrics.colourfulness(output)
        sums["frame_colourfulness_truth"] += metrics.colourfulness(truth)
        faces = imageops.detect_faces(truth, min_face=self.min_face)
        ab_truth, ab_output = face_ab(truth, faces), face_ab(output, faces)  # (K, 2) each
        sums["ab_output"] += ab_distance_sum(ab_output, ab_truth)
        sums["ab_gray"] += ab_distance_sum(face_ab(gray, faces), ab_truth)
        counts["face_pixels"] += len(ab_truth)
        if len(ab_truth):
            sums["colourfulness_output"] += metrics.colourfulness(face_pixels(output, faces))
            sums["colourfulness_truth"] += metrics.colourfulness(face_pixels(truth, faces))
            counts["face_frames"] += 1
            self.face_means.append((*ab_output.mean(axis=0), *ab_truth.mean(axis=0)))
        else:
            self.face_means.append((np.nan,) * 4)
        luma = imageops.to_gray(gray)
        chroma_truth, chroma_output = (np.dstack(imageops.bgr_to_video_chroma(image)) for image in (truth, output))
        current = truth, luma, output, chroma_truth, chroma_output
        if self._previous is not None:
            self._add_pair(self._previous, current, faces, ab_truth, ab_output)
        self.cdc_output.add(output)
        self.cdc_truth.add(truth)
        self._previous = current

    def _add_pair(self, before: tuple[np.ndarray, ...], current: tuple[np.ndarray, ...], faces: list[imageops.Box],
                  ab_truth: np.ndarray, ab_output: np.ndarray) -> None:
        """Warp error (flow of the gray input, frame t onto t-1) and face chroma change, frame t-1 to t.

        before, current: (truth, gray luma, output, truth's (Cb, Cr), output's (Cb, Cr)) of frames t-1 and t.
        The warp error is also taken of the chroma planes alone: the output's luma is the input's encoded
        once more, and that encoder noise is no flicker of the colour.
        """
        truth_before, luma_before, output_before, chroma_truth_before, chroma_output_before = before
        truth, luma, output, chroma_truth, chroma_output = current
        to_previous = temporal.flow(luma, luma_before)  # (H, W, 2) w_{t->t-1}
        valid = ~temporal.occlusion_mask(to_previous, temporal.flow(luma_before, luma))
        self.sums["warp_output"] += temporal.warp_error(output_before, output, to_previous, valid)
        self.sums["warp_truth"] += temporal.warp_error(truth_before, truth, to_previous, valid)
        self.sums["chroma_warp_output"] += temporal.warp_error(chroma_output_before, chroma_output, to_previous, valid)
        self.sums["chroma_warp_truth"] += temporal.warp_error(chroma_truth_before, chroma_truth, to_previous, valid)
        self.counts["pairs"] += 1
        # the face boxes of frame t, read in both frames: how much the colour under them changed
        self.sums["flicker_output"] += ab_distance_sum(ab_output, face_ab(output_before, faces))
        self.sums["flicker_truth"] += ab_distance_sum(ab_truth, face_ab(truth_before, faces))
        self.counts["flicker_pixels"] += len(ab_truth)

    def report(self) -> dict:
        sums, counts = self.sums, self.counts

        def mean(key: str, count: str, digits: int = 3) -> float:
            return round(sums[key] / max(counts[count], 1), digits)

        report = {
            "frames": counts["frames"],
            "psnr_output": mean("psnr_output", "frames"), "psnr_gray": mean("psnr_gray", "frames"),
            "ssim_output": mean("ssim_output", "frames", 4), "ssim_gray": mean("ssim_gray", "frames", 4),
            "frame_ab_error_output": mean("frame_ab_output", "frames"),
            "frame_ab_error_gray": mean("frame_ab_gray", "frames"),
            "frame_colourfulness_output": mean("frame_colourfulness_output", "frames", 2),
            "frame_colourfulness_truth": mean("frame_colourfulness_truth", "frames", 2),
            "face_ab_error_output": mean("ab_output", "face_pixels"),
            "face_ab_error_gray": mean("ab_gray", "face_pixels"),
            "face_colourfulness_output": mean("colourfulness_output", "face_frames", 2),
            "face_colourfulness_truth": mean("colourfulness_truth", "face_frames", 2),
            "warp_error_output": mean("warp_output", "pairs", 7), "warp_error_truth": mean("warp_truth", "pairs", 7),
            "chroma_warp_error_output": mean("chroma_warp_output", "pairs", 7),
            "chroma_warp_error_truth": mean("chroma_warp_truth", "pairs", 7),
            "face_chroma_flicker_output": mean("flicker_output", "flicker_pixels"),
            "face_chroma_flicker_truth": mean("flicker_truth", "flicker_pixels"),
            "cdc_output": round(self.cdc_output.value, 6), "cdc_truth": round(self.cdc_truth.value, 6),
        }
        means = np.array(self.face_means, np.float64).reshape(-1, 4)
        found = means[~np.isnan(means[:, 0])]
        overall = found.mean(axis=0) if len(found) else np.zeros(4)  # the face colour's bias, not its error
        report.update({name: round(float(value), 2) for name, value in
                       zip(("face_a_output", "face_b_output", "face_a_truth", "face_b_truth"), overall)})
        ratio = report["face_ab_error_output"] / max(report["face_ab_error_gray"], 1e-9)
        frame_ratio = report["frame_ab_error_output"] / max(report["frame_ab_error_gray"], 1e-9)
        errors = np.array(self.frame_errors, np.float64).reshape(-1, 2)
        report["last_fifth_frame_ab_error_ratio"] = round(last_fifth(errors[:, 0]) / max(last_fifth(errors[:, 1]),
                                                                                          1e-9), 3)
        excess = report["face_chroma_flicker_output"] - report["face_chroma_flicker_truth"]
        report.update(face_ab_error_ratio=round(ratio, 3), frame_ab_error_ratio=round(frame_ratio, 3),
                      excess_face_chroma_flicker=round(excess, 3))
        return report


def evaluate_video(source: Path, predictor: Predictor, options: Options, workdir: Path | None = None,
                   strip: Path | None = None, scene: ScenePredictor | None = None,
                   keyframes_every: int | None = None, palette: Palette | None = None,
                   reference_frame: int | None = None) -> dict:
    """Scores of the colorized clip and of its grayscale input against the original colour clip.

    With `strip`, also writes there a PNG of the mean face a and b over time, output against truth.
    With `keyframes_every` (0: frame 0 only; N: also every N-th frame), the true colour of those frames is
    given as keyframes, and the trivial baseline is scored beside: frame 0's chroma on every frame, through
    the same encoder. With `reference_frame`, the true colour of that frame steers the palette (`--reference`);
    `palette` is a reference given as it is.
    """
    suffix = source.suffix.lower() if source.suffix.lower() in OUTPUT_CONTAINERS else ".mkv"
    extra: dict = {}
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        gray_path = Path(scratch) / f"gray{suffix}"
        out_path = Path(scratch) / f"colorized{suffix}"
        make_gray_clip(source, gray_path, options)
        keyframes = None
        if keyframes_every is not None:
            keyframes = truth_keyframes(source, keyframes_every, Path(scratch))
            paste_path = Path(scratch) / f"paste{suffix}"
            make_gray_clip(source, paste_path, options, chroma_planes(next(_decoded(source))))
            paste = frame_colour_errors(source, paste_path)
            extra = {"keyframes": sorted(keyframes), "paste_frame_ab_error": round(float(paste.mean()), 3),
                     "paste_last_fifth": round(last_fifth(paste), 3)}
        if reference_frame is not None:
            reference = next((image for index, image in enumerate(_decoded(source)) if index == reference_frame), None)
            if reference is None:
                raise MediaError(f"{source}: has no frame {reference_frame} to take as the reference")
            palette = Palette.from_image(reference)
        run = colorize_video(gray_path, out_path, predictor, options, progress=False, scene=scene,
                             keyframes=keyframes, palette=palette)
        scores = ClipScores(options.min_face)
        for truth, gray, output in zip(_decoded(source), _decoded(gray_path), _decoded(out_path)):
            scores.add(truth, gray, output)
    report = scores.report()
    if extra:
        gray_errors = np.array(scores.frame_errors)[:, 1]
        extra.update(paste_frame_ab_error_ratio=round(extra["paste_frame_ab_error"] / max(gray_errors.mean(), 1e-9), 3),
                     paste_last_fifth_ratio=round(extra["paste_last_fifth"] / max(last_fifth(gray_errors), 1e-9), 3),
                     frame_ab_error_vs_paste=round(report["frame_ab_error_output"]
                                                   / max(extra["paste_frame_ab_error"], 1e-9), 3))
    if strip is not None:
        title = f"{source.name}: {len(scores.face_means)} frames, smoothing {options.smoothing}"
        write_image_atomic(strip, draw_strip(np.array(scores.face_means, np.float32).reshape(-1, 4), title))
    stages = run["ms_per_frame"]
    smoothing = stages["smoothing"] + stages.get("flow smoothing", 0.0)  # what every method costs, all stages
    return {"clip": source.name, "smoothing": options.smoothing, **report, **extra, "fps": run["fps"],
            "smoothing_ms_per_frame": round(smoothing, 2), "frames_with_faces": run["frames_with_faces"],
            "ms_per_frame": stages}


def mean_over_clips(reports: list[dict]) -> dict:
    """Each score's plain mean over the clips: every clip counts once."""
    keys = [key for key, value in reports[0].items() if isinstance(value, float)]
    return {key: round(float(np.mean([report[key] for report in reports])), 7) for key in keys}
