"""The checkpoint format: a state_dict plus the metadata that drives preprocessing.

A checkpoint is a dict saved with `torch.save`:
    {"format": FORMAT, "format_version": FORMAT_VERSION,
     "metadata": {...}, "state_dict": {...}, optional "resume": {...}}
The metadata's "task" says what the model is: "face" (the default, for
checkpoints older than the key) colours a framed face crop in RGB; "scene"
colours a whole gray frame, scaled to a longer side of "resolution", as a
distribution over the Lab a/b bins listed in "ab_bins", decoded as an
annealed mean at "decode_temperature" (`colorstream.model.inference`), or
at the optional "decode_temperatures" of each use, fitted with its gain.
The metadata's optional "saturation_gains" scale the output's chroma around
its luma, one gain per use, each fitted on the validation split after
training: "colourfulness" for stills (as colourful as photos) and "ab_error"
for video (the lowest a/b error). Older checkpoints carry a single
"saturation_gain" (default 1), used for both. A checkpoint is always read
with `torch.load(weights_only=True)`, so it can hold tensors and plain data
but never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from colorstream import files
from colorstream.imageops import INPUT_KINDS
from colorstream.model.net import ModelConfig, build

FORMAT = "colorstream-sketch-inversion"
FORMAT_VERSION = 1
TASKS = ("face", "scene")
COLOR_SPACES = {"face": "rgb", "scene": "lab-ab-bins"}  # what each task's network outputs
STILLS_OBJECTIVE, VIDEO_OBJECTIVE = "colourfulness", "ab_error"  # what each use fits its saturation gain for
SATURATION_OBJECTIVES = (STILLS_OBJECTIVE, VIDEO_OBJECTIVE)
REQUIRED_METADATA = ("model", "input_kind", "resolution", "color_space", "training", "metrics")
REQUIRED_BY_TASK = {"face": ("sketch_params", "normalize_sketch", "crop_margin"),
                    "scene": ("ab_bins", "decode_temperature")}


def task_of(metadata: dict[str, Any]) -> str:
    return metadata.get("task", "face")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def save(path: str | Path, net: torch.nn.Module, metadata: dict[str, Any],
         resume: dict[str, Any] | None = None) -> None:
    """Write atomically: a crash mid-write never leaves a truncated file under `path`."""
    validate_metadata(metadata, str(path))
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": metadata,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    if resume is not None:
        payload["resume"] = resume
    path = Path(path)
    files.refuse_package_path(path)  # the shipped weights are never rewritten
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = files.temporary_sibling(path)
    try:
        torch.save(payload, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    files.finish(partial, path)


def validate_metadata(metadata: dict[str, Any], where: str) -> None:
    task = task_of(metadata)
    if task not in TASKS:
        raise CheckpointError(f"{where}: unknown task {task!r}")
    missing = [key for key in REQUIRED_METADATA + REQUIRED_BY_TASK[task] if key not in metadata]
    if missing:
        raise CheckpointError(f"{where}: checkpoint metadata lacks {', '.join(missing)}")
    if metadata["input_kind"] not in INPUT_KINDS or (task == "scene" and metadata["input_kind"] != "gray"):
        raise CheckpointError(f"{where}: unknown input kind {metadata['input_kind']!r}")
    if metadata["color_space"] != COLOR_SPACES[task]:
        raise CheckpointError(f"{where}: unknown colour space {metadata['color_space']!r}")
    gains = _per_use(metadata.get("saturation_gains", {}), "saturation gains", where)
    for gain in (metadata.get("saturation_gain", 1.0), *gains.values()):
        _check_scale(gain, "saturation gain", where)
    try:
        config = ModelConfig(**metadata["model"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{where}: bad model config ({error})") from None
    if (config.arch == "scene") != (task == "scene"):
        raise CheckpointError(f"{where}: a {task} model cannot have the {config.arch} architecture")
    if int(metadata["resolution"]) % config.size_multiple:
        raise CheckpointError(f"{where}: resolution {metadata['resolution']} is not a multiple of "
                              f"{config.size_multiple}, as the {config.arch} architecture needs")
    if task == "scene":
        bins = metadata["ab_bins"]
        if not isinstance(bins, list) or len(bins) != config.outputs or any(
                not isinstance(b, list) or len(b) != 2 for b in bins):
            raise CheckpointError(f"{where}: ab_bins must be {config.outputs} [a, b] pairs, one per output")
        temperatures = _per_use(metadata.get("decode_temperatures", {}), "decode temperatures", where)
        for temperature in (metadata["decode_temperature"], *temperatures.values()):
            _check_scale(temperature, "decode temperature", where)


def _per_use(values: Any, what: str, where: str) -> dict:
    if not isinstance(values, dict) or not set(values) <= set(SATURATION_OBJECTIVES):
        raise CheckpointError(f"{where}: {what} {values!r} are not keyed by {' and '.join(SATURATION_OBJECTIVES)}")
    return values


def _check_scale(value: Any, what: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 4.0:
        raise CheckpointError(f"{where}: {what} {value!r} is not a number in (0, 4]")


def saturation_gains(metadata: dict[str, Any]) -> dict[str, float]:
    """The gain for each use; a use with none of its own takes the older single gain (default 1)."""
    recorded = metadata.get("saturation_gains", {})
    return {use: float(recorded.get(use, metadata.get("saturation_gain", 1.0))) for use in SATURATION_OBJECTIVES}


def decode_temperatures(metadata: dict[str, Any]) -> dict[str, float]:
    """A scene model's annealed-mean temperature for each use; a use with none of its own takes the model's one."""
    recorded = metadata.get("decode_temperatures", {})
    return {use: float(recorded.get(use, metadata["decode_temperature"])) for use in SATURATION_OBJECTIVES}


def read(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint file; every failure is a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for corrupt or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a colorstream checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this "
                              f"colorstream understands ({FORMAT_VERSION}); upgrade colorstream")
    if not isinstance(payload.get("metadata"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint lacks its metadata or weights")
    validate_metadata(payload["metadata"], str(path))
    return payload


def build_from(payload: dict[str, Any], where: str = "checkpoint") -> torch.nn.Module:
    """The network a checkpoint describes, with its weights loaded, in eval mode."""
    for name, tensor in payload["state_dict"].items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{where}: weight {name!r} is not a tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: weight {name!r} holds NaN or infinite values; the checkpoint is "
                                  "broken (a diverged training run?)")
    net = build(ModelConfig(**payload["metadata"]["model"]))
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise CheckpointError(f"{where}: weights do not match the architecture in its metadata "
                              f"({detail[:160]})") from None
    return net.eval()
