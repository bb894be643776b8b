"""Training data: face crops from photo folders, real sketch/photo pairs, and on-the-fly sketches.

Faces are found once with the Haar cascade and cached as square crops with
extra room (`CACHE_ROOM`) so that scale, rotation and shift augmentation never
runs out of pixels. Sketches are generated per sample from those crops with
the shared ops in `colorstream.imageops`, exactly as inference prepares them.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from colorstream import imageops

CACHE_ROOM = 1.5  # cached crops cover 1.5x the face square, for augmentation
CACHE_SIZE = 192  # pixels per side of a cached crop: a 128-pixel face square, as sharp as the photos allow
CACHE_VERSION = 3  # bump when face detection or cropping changes, so stale caches are not reused
SPLITS = ("train", "val", "test")


def identity_of(path: Path) -> str:
    """The person in a photo, where the name tells (`celeba_<identity>_<image>`); else the file itself."""
    parts = path.stem.split("_")
    if parts[0] == "celeba" and len(parts) >= 3:
        return "celeba_" + parts[1]
    return path.stem


def source_of(path: Path) -> str:
    """The collection a face photo comes from, by its name's prefix (`celeba_...`, `utk_...`)."""
    return Path(path).stem.split("_")[0]


def split_of(key: str, val_percent: int = 5, test_percent: int = 5) -> str:
    """A deterministic split from a stable hash, so the same identity always lands in the same split."""
    bucket = zlib.crc32(key.encode()) % 100
    if bucket < 100 - val_percent - test_percent:
        return "train"
    return "val" if bucket < 100 - test_percent else "test"


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in imageops.IMAGE_SUFFIXES)


def fingerprint(paths: list[Path]) -> str:
    """A short hash of file names and sizes: changes whenever the training set does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _crop_face(args: tuple[str, float]) -> np.ndarray | None:
    path, margin = args
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    face = imageops.largest_face(image, min_face=max(24, min(image.shape[:2]) // 5))
    if face is None:
        return None
    return imageops.crop_square(image, imageops.square_box(face, margin * CACHE_ROOM), CACHE_SIZE)


@dataclass
class FaceSet:
    """Cached face crops of one photo folder, by split."""

    crops: dict[str, np.ndarray]  # split -> (n, CACHE_SIZE, CACHE_SIZE, 3) uint8 BGR
    sources: dict[str, np.ndarray]  # split -> (n,) str: each crop's collection (`source_of`)
    fingerprint: str
    n_images: int
    n_no_face: int


def load_faces(folder: Path, margin: float, cache_dir: Path | None = None, workers: int = 2,
               limit: int | None = None) -> FaceSet:
    """Detect and crop every face in `folder`; images with no face are skipped and counted."""
    paths = list_images(folder)
    if limit:
        paths = paths[:limit]
    if not paths:
        raise ValueError(f"no images found in {folder}")
    print_id = fingerprint(paths)
    cache = Path(cache_dir) / f"faces-v{CACHE_VERSION}-{print_id}-m{margin:g}-s{CACHE_SIZE}.npz" if cache_dir else None
    if cache and cache.exists():
        stored = np.load(cache)
        crops = {split: stored[split] for split in SPLITS}
        sources = {split: stored[split + "_sources"] for split in SPLITS}
        return FaceSet(crops, sources, print_id, int(stored["n_images"]), int(stored["n_no_face"]))
    # spawned, not forked: a fork copies locks that other threads (torch, Ray, the caller's) may hold
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.map(_crop_face, [(str(p), margin) for p in paths], chunksize=64)
    by_split: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    source_names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for path, crop in zip(paths, results):
        if crop is not None:
            split = split_of(identity_of(path))
            by_split[split].append(crop)
            source_names[split].append(source_of(path))
    empty = np.zeros((0, CACHE_SIZE, CACHE_SIZE, 3), np.uint8)
    crops = {split: np.stack(items) if items else empty for split, items in by_split.items()}
    sources = {split: np.array(names, dtype=str) for split, names in source_names.items()}
    n_no_face = sum(crop is None for crop in results)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".tmp.npz")
        np.savez(partial, n_images=len(paths), n_no_face=n_no_face, **crops,
                 **{split + "_sources": names for split, names in sources.items()})
        os.replace(partial, cache)
    return FaceSet(crops, sources, print_id, len(paths), n_no_face)


def with_all_split(faces: FaceSet) -> FaceSet:
    """The same faces with one more split, "all", holding every face: a folder from another source is
    held out whole, so `evaluate --split all` scores all of it."""
    return replace(faces, crops={**faces.crops, "all": np.concatenate([faces.crops[split] for split in SPLITS])},
                   sources={**faces.sources, "all": np.concatenate([faces.sources[split] for split in SPLITS])})


def without_sources(faces: FaceSet, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each split's crops less those of the named collections: a whole source held out of training."""
    known = set(np.concatenate(list(faces.sources.values())).tolist())
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"no faces from {', '.join(unknown)} to hold out; the collections are "
                         f"{', '.join(sorted(known)) or 'none'}")
    if names and known <= set(names):
        raise ValueError("holding out every collection leaves nothing to train on")
    return {split: crops[~np.isin(faces.sources[split], list(names))] if names else crops
            for split, crops in faces.crops.items()}


@dataclass
class SketchPair:
    stem: str
    sketch: np.ndarray  # gray, as drawn
    photo: np.ndarray  # BGR, pixel-aligned with the sketch
    style: int = -1  # the artist's drawing style where the index tells one (FS2K: 0, 1, 2)


def load_sketch_pairs(folder: Path) -> dict[str, list[SketchPair]]:
    """Real hand-drawn pairs (FS2K layout: pairs.csv, photos/, sketches/), split 80/20 by stem."""
    folder = Path(folder)
    index = folder / "pairs.csv"
    if not index.exists():
        raise ValueError(f"{folder} has no pairs.csv")
    pairs: dict[str, list[SketchPair]] = {"train": [], "test": []}
    with open(index, newline="") as handle:
        for row in csv.DictReader(handle):
            stem = row["stem"]
            sketch = cv2.imread(str(folder / "sketches" / f"{stem}.jpg"), cv2.IMREAD_GRAYSCALE)
            photo = cv2.imread(str(folder / "photos" / f"{stem}.jpg"), cv2.IMREAD_COLOR)
            if sketch is None or photo is None or sketch.shape[:2] != photo.shape[:2]:
                continue
            split = "test" if zlib.crc32(stem.encode()) % 100 < 20 else "train"
            style = row.get("style") or ""
            pairs[split].append(SketchPair(stem, sketch, photo, int(style) if style.isdigit() else -1))
    return pairs


def without_styles(pairs: list[SketchPair], styles: tuple[int, ...]) -> list[SketchPair]:
    """The pairs less those drawn in the named styles: a whole drawing style held out of training."""
    present = {pair.style for pair in pairs}
    missing = sorted(set(styles) - present)
    if missing:
        raise ValueError(f"no pairs of style {', '.join(map(str, missing))} to hold out; the styles are "
                         f"{', '.join(str(s) for s in sorted(present) if s >= 0) or 'not given'}")
    kept = [pair for pair in pairs if pair.style not in styles]
    if styles and not kept:
        raise ValueError("holding out every drawing style leaves no real pairs")
    return kept


def crop_pairs(pairs: list[SketchPair], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop each pair around the face found in its photo, the way photo faces are cropped.

    Returns sketches (n, S, S) and photos (n, S, S, 3) at CACHE_SIZE; a pair
    whose photo shows no face is framed by the whole image instead.
    """
    sketches, photos = [], []
    for pair in pairs:
        height, width = pair.photo.shape[:2]
        face = imageops.largest_face(pair.photo, min_face=min(height, width) // 5)
        box = (imageops.square_box(face, margin * CACHE_ROOM) if face else
               imageops.Box((width - max(width, height)) / 2, (height - max(width, height)) / 2,
                            max(width, height), max(width, height)))
        sketches.append(imageops.crop_square(pair.sketch, box, CACHE_SIZE))
        photos.append(imageops.crop_square(pair.photo, box, CACHE_SIZE))
    return np.stack(sketches), np.stack(photos)


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.85, 1.35)  # face square side relative to the nominal margin
    rotate_degrees: float = 8.0
    shift: float = 0.05  # fraction of the output side
    pencil_sigma: tuple[float, float] = (1.5, 5.0)  # stroke sizes in pixels of a 96-pixel view (`at_resolution`)
    line_probability: float = 0.35
    line_sigma: tuple[float, float] = (0.6, 1.3)
    line_epsilon: tuple[float, float] = (-0.02, 0.0)  # lower: sparser lines
    thicken_probability: float = 0.2
    gamma: tuple[float, float] = (0.6, 1.6)
    paper_tone: tuple[float, float] = (0.8, 1.0)
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 95)
    scan_probability: float = 0.3  # a scanner's or camera's grain and softness on a drawn sketch
    scan_noise_sigma: tuple[float, float] = (2.0, 8.0)
    scan_blur_sigma: tuple[float, float] = (0.3, 1.0)
    # an artist's tonal shading over the strokes (hair, shadows, clothes), as in strong-pencil portraits
    shade_probability: float = 0.3
    shade_strength: tuple[float, float] = (0.3, 0.8)  # darkness of the darkest tone (1: black)
    shade_levels: tuple[int, int] = (3, 6)  # flat tonal values the photo's gray is drawn in
    shade_lift: tuple[float, float] = (0.4, 0.8)  # gamma on the photo's gray first: artists leave the skin light
    shade_gamma: tuple[float, float] = (1.5, 2.5)  # pencil needed per tone: (1 - tone) ** gamma, light skin stays clear
    shade_softness: tuple[float, float] = (0.5, 1.5)  # blur of the tone edges, pixels at 96
    hatch_probability: float = 0.5  # share of shadings drawn as hatching rather than flat tone
    hatch_period: tuple[float, float] = (2.5, 5.0)  # hatch line spacing, pixels at 96
    # gray inputs (the video model): old film and webcams vary in contrast, exposure, focus and grain
    gray_contrast: tuple[float, float] = (0.5, 1.15)
    gray_brightness: float = 25.0  # largest shift of the mean, in gray levels
    gray_blur_probability: float = 0.3
    gray_blur_sigma: tuple[float, float] = (0.5, 1.5)
    gray_noise_probability: float = 0.4
    gray_noise_sigma: tuple[float, float] = (2.0, 10.0)


STROKE_RESOLUTION = 96  # the view size at which AugmentConfig's stroke sizes are given


def at_resolution(aug: AugmentConfig, resolution: int) -> AugmentConfig:
    """The stroke sizes scaled from a 96-pixel view to `resolution`, so a face sketches alike at any size."""
    scale = resolution / STROKE_RESOLUTION
    return replace(aug, pencil_sigma=tuple(scale * s for s in aug.pencil_sigma),
                   line_sigma=tuple(scale * s for s in aug.line_sigma),
                   shade_softness=tuple(scale * s for s in aug.shade_softness),
                   hatch_period=tuple(scale * s for s in aug.hatch_period))


def random_view(crop: np.ndarray, size: int, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """A randomly scaled, rotated, shifted and flipped size x size view of a cached crop."""
    center = crop.shape[0] / 2.0
    nominal = crop.shape[0] / CACHE_ROOM  # side of the un-augmented face square in the crop
    side = nominal * rng.uniform(*aug.scale)
    matrix = cv2.getRotationMatrix2D((center, center), rng.uniform(-aug.rotate_degrees, aug.rotate_degrees),
                                     size / side)
    matrix[:, 2] += size / 2.0 - center + rng.uniform(-aug.shift, aug.shift, 2) * size
    view = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return view[:, ::-1].copy() if rng.random() < 0.5 else view


def center_view(crop: np.ndarray, size: int, scale: float = 1.0) -> np.ndarray:
    """The un-augmented face square of a cached crop, at size x size; `scale` widens or narrows the square
    (another margin / the cache's)."""
    nominal = crop.shape[0] / CACHE_ROOM * scale
    offset = (crop.shape[0] - nominal) / 2.0
    return imageops.crop_square(crop, imageops.Box(offset, offset, nominal, nominal), size)


def synthetic_sketch(photo: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """A randomly styled sketch of a photo: pencil or line, stroke width, contrast, paper, JPEG."""
    if rng.random() < aug.line_probability:
        sketch = imageops.line_sketch(photo, sigma=rng.uniform(*aug.line_sigma),
                                        epsilon=rng.uniform(*aug.line_epsilon))
    else:
        sketch = imageops.pencil_sketch(photo, blur_sigma=rng.uniform(*aug.pencil_sigma))
    if rng.random() < aug.shade_probability:
        sketch = shade_sketch(sketch, photo, rng, aug)
    return degrade_sketch(sketch, rng, aug)


def shade_sketch(sketch: np.ndarray, photo: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """The strokes darkened where the photo is dark, in a few flat tonal values or as hatching.

    Artists shade hair, shadows and clothes; the colour-dodge sketch leaves
    them near white. A model that never saw shading smears a shaded portrait
    into a generic face (see `training.evaluate`'s shaded recipe).
    """
    levels = int(rng.integers(aug.shade_levels[0], aug.shade_levels[1] + 1))
    gray = (imageops.to_gray(photo).astype(np.float32) / 255.0) ** rng.uniform(*aug.shade_lift)
    tone = np.round(gray * (levels - 1)) / (levels - 1)  # 0 black .. 1 white, in flat steps
    tone = cv2.GaussianBlur(tone, (0, 0), rng.uniform(*aug.shade_softness))
    coverage = np.clip(1.0 - tone, 0.0, 1.0) ** rng.uniform(*aug.shade_gamma)  # how much pencil a tone takes
    if rng.random() < aug.hatch_probability:  # parallel strokes, wider where darker
        angle, period = rng.uniform(0, np.pi), rng.uniform(*aug.hatch_period)
        rows, cols = np.mgrid[:gray.shape[0], :gray.shape[1]].astype(np.float32)
        phase = (cols * np.cos(angle) + rows * np.sin(angle)) / period
        wave = 2.0 * np.abs(phase - np.floor(phase) - 0.5)  # a triangle wave: a line covers `coverage` of each period
        coverage = cv2.GaussianBlur((wave < coverage).astype(np.float32), (0, 0), 0.6)
    darkness = rng.uniform(*aug.shade_strength) * coverage
    return np.clip(sketch.astype(np.float32) * (1.0 - darkness) + 0.5, 0, 255).astype(np.uint8)


def degrade_sketch(sketch: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """Stroke width, contrast, paper tone, scan grain and JPEG noise, as real scans vary."""
    if rng.random() < aug.thicken_probability:
        sketch = cv2.erode(sketch, np.ones((2, 2), np.uint8))
    tones = (sketch.astype(np.float32) / 255.0) ** rng.uniform(*aug.gamma) * rng.uniform(*aug.paper_tone) * 255.0
    if rng.random() < aug.scan_probability:
        tones = cv2.GaussianBlur(tones, (0, 0), rng.uniform(*aug.scan_blur_sigma))
        tones = tones + rng.normal(0.0, rng.uniform(*aug.scan_noise_sigma), tones.shape).astype(np.float32)
    return jpeg_noise(np.clip(tones + 0.5, 0, 255).astype(np.uint8), rng, aug)


def degrade_gray(gray: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """Gamma, contrast, exposure, focus, grain and JPEG noise, as gray footage varies."""
    tones = (gray.astype(np.float32) / 255.0) ** rng.uniform(*aug.gamma) * 255.0
    mean = float(tones.mean())
    tones = (tones - mean) * rng.uniform(*aug.gray_contrast) + mean + rng.uniform(-1, 1) * aug.gray_brightness
    if rng.random() < aug.gray_blur_probability:
        tones = cv2.GaussianBlur(tones, (0, 0), rng.uniform(*aug.gray_blur_sigma))
    if rng.random() < aug.gray_noise_probability:
        tones = tones + rng.normal(0.0, rng.uniform(*aug.gray_noise_sigma), tones.shape).astype(np.float32)
    return jpeg_noise(np.clip(tones + 0.5, 0, 255).astype(np.uint8), rng, aug)


def jpeg_noise(gray: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    if rng.random() < aug.jpeg_probability:
        quality = int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
        gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return gray


class PairSampler:
    """Draws augmented (model input, photo) batches from face crops and, optionally, real sketch pairs.

    The input is a random-style sketch for sketch models, a degraded gray
    image for `input_kind` "gray".
    """

    def __init__(self, faces: np.ndarray, size: int, normalize: bool, aug: AugmentConfig,
                 seed: int | list[int], real: tuple[np.ndarray, np.ndarray] | None = None,
                 real_fraction: float = 0.0, input_kind: str = "pencil"):
        self.faces, self.size, self.normalize, self.aug = faces, size, normalize, aug
        self.input_kind = input_kind
        self.real, self.real_fraction = real, real_fraction if real is not None and len(real[0]) else 0.0
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One pair: (size, size) uint8 model input, (size, size, 3) uint8 BGR target."""
        rng = self.rng
        if rng.random() < self.real_fraction:
            index = int(rng.integers(len(self.real[0])))
            # stack sketch and photo so both get the very same geometric transform
            both = np.dstack([self.real[0][index], self.real[1][index]])
            view = random_view(both, self.size, rng, self.aug)
            sketch, photo = degrade_sketch(view[:, :, 0].copy(), rng, self.aug), view[:, :, 1:].copy()
        else:
            photo = random_view(self.faces[int(rng.integers(len(self.faces)))], self.size, rng, self.aug)
            sketch = (degrade_gray(imageops.to_gray(photo), rng, self.aug) if self.input_kind == "gray"
                      else synthetic_sketch(photo, rng, self.aug))
        return imageops.prepare_sketch(sketch, self.size, self.normalize), photo

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, N, N) uint8 sketches and (B, N, N, 3) uint8 BGR photos."""
        pairs = [self.sample() for _ in range(batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
