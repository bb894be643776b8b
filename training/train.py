"""The training loop: flat, resumable, with a progress bar, a metrics log and sample PNGs."""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from colorstream import imageops
from colorstream.model import checkpoint
from colorstream.model.inference import Predictor, ScenePredictor, pick_device
from colorstream.model.net import ModelConfig, build, count_parameters
from colorstream.training import data
from colorstream.training import scenes as scene_data
from colorstream.training.evaluate import (OTHER_RECIPES, calibrate_saturations, calibrate_scene_decoding, held_out,
                                           evaluate_faces, evaluate_photos, sample_grid, scene_sample_grid)
from colorstream.training.losses import (LOSSES, PatchDiscriminator, ab_classification_loss, adversarial_loss,
                                         edge_loss, loss_fn)

SCHEDULES = ("halving", "cosine")


TASKS = ("face", "scene")


@dataclass
class TrainConfig:
    faces: str  # folder of face photos (the scene model takes their whole frames)
    out: str = "runs/model.pt"
    task: str = "face"  # "face": a framed face crop -> RGB; "scene": a whole gray frame -> a/b bins
    scenes: str | None = None  # folder of everyday photos for the scene model
    scene: scene_data.SceneAugment = field(default_factory=scene_data.SceneAugment)
    decode_temperature: float = 0.38  # the scene model's annealed mean (Zhang et al. 2016's value)
    pairs: str | None = None  # folder of real sketch/photo pairs (pairs.csv, photos/, sketches/)
    real_fraction: float = 0.2  # share of samples drawn from real pairs when given
    holdout_sources: tuple[str, ...] = ()  # face collections left out of training and validation (`data.source_of`)
    holdout_styles: tuple[int, ...] = ()  # real-pair drawing styles left out of training
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: data.AugmentConfig = field(default_factory=data.AugmentConfig)
    resolution: int = 96
    crop_margin: float = 1.4  # face square side / Haar box side
    input_kind: str = "pencil"  # what inference feeds the model: a sketch op, or "gray" (see imageops.INPUT_KINDS)
    pencil_sigma: float = 3.0  # the pencil op's blur, in pixels of a 96-pixel view (scaled to `resolution`)
    normalize_sketch: bool = True
    batch_size: int = 32
    steps: int = 3000
    lr: float = 1e-3
    schedule: str = "halving"  # the paper's: halve the rate every half epoch
    loss: str = "mse"  # the paper's
    edge_weight: float = 0.0  # weight of the luma-gradient L1 (face task)
    adversarial_weight: float = 0.0  # weight of the PatchGAN term for the generator (face task); 0: no GAN
    init: str | None = None  # start from this checkpoint's weights (same architecture) instead of at random
    eval_every: int = 250
    eval_images: int = 200
    calibrate: bool = True  # fit the saturation gains on the val split at the end (see evaluate.calibrate_saturation)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    cache_dir: str = ".cache"
    limit: int | None = None  # use only the first N photos (tests, quick trials)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.task == "scene":
            if self.model.arch != "scene" or self.input_kind != "gray" or self.normalize_sketch or self.pairs:
                raise ValueError("a scene model has the scene architecture and gray input, and takes no sketch "
                                 "pairs or tone normalisation")
            if self.scene.crop % self.model.size_multiple:
                raise ValueError(f"the scene crop must be a multiple of {self.model.size_multiple}")
        elif self.model.arch == "scene":
            raise ValueError("the scene architecture is for --task scene")
        if self.task == "scene" and (self.edge_weight or self.adversarial_weight or self.holdout_sources
                                     or self.holdout_styles):
            raise ValueError("edge and adversarial losses and held-out sources or styles are for face models")
        if self.holdout_styles and not self.pairs:
            raise ValueError("a held-out drawing style needs real pairs (--pairs)")
        if min(self.edge_weight, self.adversarial_weight) < 0:
            raise ValueError("loss weights cannot be negative")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if self.input_kind not in imageops.INPUT_KINDS:
            raise ValueError(f"unknown input kind {self.input_kind!r}; expected one of {', '.join(imageops.INPUT_KINDS)}")
        if self.task == "face" and self.input_kind == "gray" and (self.pairs or self.normalize_sketch):
            raise ValueError("a gray-input model takes no sketch pairs and no sketch tone normalisation")
        if self.resolution % self.model.size_multiple:
            raise ValueError(f"resolution must be a multiple of {self.model.size_multiple}")


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    if config.schedule == "halving":
        return config.lr * 0.5 ** (step // max(1, steps_per_epoch // 2))
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))


def plot_curves(log: list[dict], path: Path, validation: str = "val_face_psnr", width: int = 640,
                height: int = 360) -> None:
    """Training loss and one validation score over steps, drawn with OpenCV."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    pad = 40
    series = [("loss", (200, 80, 0), [(r["step"], r["loss"]) for r in log if "loss" in r]),
              (validation.replace("_", " "), (0, 0, 200), [(r["step"], r[validation]) for r in log if validation in r])]
    last_step = max([r["step"] for r in log] + [1])
    for row, (name, colour, points) in enumerate(series):
        cv2.putText(canvas, name, (pad + 150 * row, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        if len(points) < 2:
            continue
        values = np.array([v for _, v in points], np.float64)
        low, high = values.min(), values.max() + 1e-9
        xy = np.array([[pad + (width - 2 * pad) * s / last_step,
                        height - pad - (height - 2 * pad) * (v - low) / (high - low)] for s, v in points], np.int32)
        cv2.polylines(canvas, [xy], False, colour, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{high:.4g}", (5 + 300 * row, pad), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
        cv2.putText(canvas, f"{low:.4g}", (5 + 300 * row, height - pad), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    cv2.rectangle(canvas, (pad, pad), (width - pad, height - pad), (160, 160, 160), 1)
    cv2.putText(canvas, f"step {last_step}", (width - 120, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.imwrite(str(path), canvas)


class FaceTask:
    """Sketch (or gray face) -> RGB face: face crops, optional real pairs, the paper's losses, face metrics."""

    curve = "val_face_psnr"

    def __init__(self, config: TrainConfig, start_step: int):
        faces = data.load_faces(Path(config.faces), config.crop_margin, Path(config.cache_dir), limit=config.limit)
        # a held-out collection is kept out of validation too, so no choice is ever made on it
        kept = data.without_sources(faces, config.holdout_sources)
        real, self.fingerprints = None, {"faces": faces.fingerprint}
        if config.pairs:
            real_pairs = data.without_styles(data.load_sketch_pairs(Path(config.pairs))["train"],
                                             config.holdout_styles)
            real = data.crop_pairs(real_pairs, config.crop_margin)
            self.fingerprints["pairs_train"] = data.fingerprint([Path(config.pairs) / "sketches" / f"{p.stem}.jpg"
                                                                 for p in real_pairs])
        self.train_size, self.val = len(kept["train"]), kept["val"][:config.eval_images]
        if not self.train_size or not len(self.val):
            raise ValueError(f"too few faces in {config.faces} for a train and a val split "
                             f"({self.train_size} train, {len(self.val)} val)")
        self.config = config
        self.metadata = {
            "task": "face",
            "input_kind": config.input_kind,
            "sketch_params": ({"blur_sigma": config.pencil_sigma * config.resolution / data.STROKE_RESOLUTION}
                              if config.input_kind == "pencil" else {}),
            "normalize_sketch": config.normalize_sketch,
            "crop_margin": config.crop_margin,
            "color_space": "rgb",
        }
        self.data_facts = {"faces_used": {split: len(c) for split, c in kept.items()},
                           "faces_without_detection": faces.n_no_face,
                           "real_pairs": 0 if real is None else len(real[0])}
        # a sampler seeded by (seed, step) continues deterministically after a resume
        self.sampler = data.PairSampler(kept["train"], config.resolution, config.normalize_sketch,
                                        data.at_resolution(config.augment, config.resolution),
                                        [config.seed, start_step], real, config.real_fraction if real else 0.0,
                                        config.input_kind)

    def model_config(self) -> ModelConfig:
        return self.config.model

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        sketches, photos = self.sampler.batch(self.config.batch_size)
        x = torch.from_numpy(sketches).to(device, torch.float32).unsqueeze(1) / 255.0  # (B, 1, N, N)
        rgb = np.ascontiguousarray(photos[..., ::-1])  # BGR -> RGB
        y = torch.from_numpy(rgb).to(device, torch.float32).permute(0, 3, 1, 2) / 255.0  # (B, 3, N, N)
        return x, y

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(self.config.loss, output, target)
        if self.config.edge_weight:
            loss = loss + self.config.edge_weight * edge_loss(output, target)
        return loss

    def validate(self, net: torch.nn.Module, metadata: dict, device: torch.device, final: bool,
                 samples: Path) -> dict:
        predictor = Predictor(net, metadata, device)
        if final and self.config.calibrate:
            metadata["saturation_gains"] = calibrate_saturations(predictor, self.val)
            predictor = Predictor(net, metadata, device)  # scored below at its stills gain
        report = evaluate_faces(predictor, self.val)
        if self.config.input_kind != "gray":  # a recipe it never trained on: the gap is what generalisation costs
            margin, sketch = OTHER_RECIPES["paper"]
            other = evaluate_faces(predictor, self.val, margin=margin, sketch=sketch)
            report.update({f"paper_{key}": other[key] for key in ("face_psnr", "face_ssim")})
        sample_grid(predictor, self.val, samples)
        return report


class SceneTask:
    """Whole gray frame -> a/b bins: everyday photos and whole face photos, soft-encoded cross-entropy,
    whole-image scores on held-out everyday photos."""

    curve = "val_ab_error_ratio"

    def __init__(self, config: TrainConfig, start_step: int):
        if not config.scenes:
            raise ValueError("the scene model needs a folder of everyday photos (--scenes)")
        self.config = config
        by_source = {"scenes": scene_data.split_photos(Path(config.scenes), 10, 10),
                     "faces": scene_data.split_photos(Path(config.faces), 5, 5)}
        if config.limit:
            by_source = {name: {split: paths[:config.limit] for split, paths in splits.items()}
                         for name, splits in by_source.items()}
        self.fingerprints = {name: data.fingerprint(splits["train"]) for name, splits in by_source.items()}
        train_scenes = scene_data.read_images(by_source["scenes"]["train"])
        train_faces = scene_data.read_images(by_source["faces"]["train"])
        self.val = scene_data.read_images(by_source["scenes"]["val"][:config.eval_images])
        if not self.val or not (train_scenes or train_faces):
            raise ValueError(f"too few photos in {config.scenes} for a train and a val split")
        self.bins = imageops.ab_gamut_bins()
        self.metadata = {"task": "scene", "input_kind": "gray", "color_space": "lab-ab-bins",
                         "ab_bins": self.bins.tolist(), "decode_temperature": config.decode_temperature}
        self.data_facts = {"photos_used": {name: {split: len(paths) for split, paths in splits.items()}
                                           for name, splits in by_source.items()},
                           "validated_on": "held-out everyday photos (scenes val split), whole images"}
        self.train_size = len(train_scenes) + len(train_faces)
        self.sampler = scene_data.SceneSampler(train_scenes, train_faces, config.scene, config.augment,
                                           [config.seed, start_step])
        self._bins = torch.from_numpy(self.bins)

    def model_config(self) -> ModelConfig:
        return replace(self.config.model, outputs=len(self.bins))

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        grays, ab = self.sampler.batch(self.config.batch_size)
        x = torch.from_numpy(grays).to(device, torch.float32).unsqueeze(1) / 255.0  # (B, 1, S, S)
        return x, torch.from_numpy(ab).to(device)  # (B, S/4, S/4, 2)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ab_classification_loss(output, target, self._bins.to(output.device))

    def validate(self, net: torch.nn.Module, metadata: dict, device: torch.device, final: bool,
                 samples: Path) -> dict:
        predictor = ScenePredictor(net, metadata, device)
        if final and self.config.calibrate:
            decoding = calibrate_scene_decoding(predictor, self.val)
            metadata["saturation_gains"] = decoding["saturation_gains"]
            metadata["decode_temperatures"] = decoding["decode_temperatures"]
            predictor = ScenePredictor(net, metadata, device)
        report = evaluate_photos(predictor.colorize, self.val)
        scene_sample_grid(predictor, self.val, samples)
        return report


def log_dir_of(out: Path) -> Path:
    """Where a run writing `out` keeps its logs, curves and samples."""
    return out.with_name(out.stem + "_logs")


def train(config: TrainConfig, resume: bool = False, command: str | None = None) -> dict:
    """Train a model, writing `config.out` (final), `<out>.resume.pt` (periodic) and `<out stem>_logs/`."""
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    out = Path(config.out)
    resume_path = out.with_name(out.stem + ".resume.pt")
    log_dir = log_dir_of(out)
    if resume and not resume_path.exists():
        raise ValueError(f"{resume_path}: nothing to resume from")
    payload = checkpoint.read(resume_path) if resume else None
    start_step = payload["resume"]["step"] if payload else 0
    task = (SceneTask if config.task == "scene" else FaceTask)(config, start_step)
    steps_per_epoch = max(1, task.train_size // config.batch_size)

    model_config = task.model_config()
    net = build(model_config).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    # pix2pix: a PatchGAN of its own, trained in turn with the generator, with Adam's betas at (0.5, 0.999)
    critic = PatchDiscriminator().to(device) if config.adversarial_weight else None
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=config.lr, betas=(0.5, 0.999)) if critic else None
    parent = checkpoint.read(config.init) if config.init and not payload else None
    if parent is not None:
        if ModelConfig(**parent["metadata"]["model"]) != model_config:
            raise ValueError(f"{config.init}: its architecture {parent['metadata']['model']} is not the one asked "
                             f"for ({model_config.to_dict()})")
        seen = held_out(parent["metadata"])
        if not (set(config.holdout_sources) <= set(seen["sources"])
                and set(config.holdout_styles) <= set(seen["styles"])):
            raise ValueError(f"{config.init}: its weights were trained on what this run holds out, so the held-out "
                             "scores would not be of unseen data; start from scratch")
        net.load_state_dict(parent["state_dict"])
    metadata = {
        **task.metadata,
        "model": model_config.to_dict(),
        "resolution": config.resolution,
        "training": {"data_fingerprint": task.fingerprints, "command": command or "", "config": _plain(asdict(config)),
                     **task.data_facts, "parameters": count_parameters(net), "device": str(device),
                     "seconds": 0.0, "steps": 0},
        "metrics": {},
    }
    if parent is not None:  # the card must show what the starting weights were and how they were made
        metadata["training"]["init"] = {"checkpoint": str(config.init),
                                        "command": parent["metadata"]["training"].get("command", ""),
                                        "steps": parent["metadata"]["training"].get("steps", 0),
                                        "seconds": parent["metadata"]["training"].get("seconds", 0.0)}
    log: list[dict] = []
    elapsed_before = 0.0
    if payload:
        began = held_out(payload["metadata"])
        if (set(began["sources"]), set(began["styles"])) != (set(config.holdout_sources), set(config.holdout_styles)):
            raise ValueError(f"{resume_path}: began holding out sources {began['sources']} and styles "
                             f"{began['styles']}; resume with the same --holdout-source and --holdout-style")
        net.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["resume"]["optimizer"])
        log = payload["resume"]["log"]
        elapsed_before = payload["metadata"]["training"]["seconds"]
        if "init" in payload["metadata"]["training"]:
            metadata["training"]["init"] = payload["metadata"]["training"]["init"]
        if critic is not None:
            if "critic" not in payload["resume"]:
                raise ValueError(f"{resume_path}: was trained without the adversarial loss; resume it without one")
            critic.load_state_dict(payload["resume"]["critic"])
            critic_optimizer.load_state_dict(payload["resume"]["critic_optimizer"])
        # the card must show every command that shaped the weights, so a resume appends its own
        metadata["training"]["command"] = " && ".join(filter(None, [payload["metadata"]["training"]["command"],
                                                                     metadata["training"]["command"]]))

    def snapshot(step: int, seconds: float, final: bool) -> None:
        metadata["training"].update(steps=step, seconds=round(seconds, 1))
        log_dir.mkdir(parents=True, exist_ok=True)  # `colorstream train` holds it from the start (one run at a time)
        val = task.validate(net, metadata, device, final, log_dir / "samples.png")
        net.train()
        metadata["metrics"] = {"val_" + k: v for k, v in val.items()}
        log.append({"step": step, **metadata["metrics"]})
        with open(log_dir / "metrics.jsonl", "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in log)
        plot_curves(log, log_dir / "curves.png", task.curve)
        state = {"optimizer": optimizer.state_dict(), "step": step, "log": log}
        if critic is not None:
            state.update(critic=critic.state_dict(), critic_optimizer=critic_optimizer.state_dict())
        checkpoint.save(resume_path, net, metadata, resume=state)
        if final:
            checkpoint.save(out, net, metadata)

    net.train()
    started = time.time()
    progress = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, unit="step",
                    dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    for step in progress:
        rate = learning_rate(config, step, steps_per_epoch)
        for group in optimizer.param_groups + (critic_optimizer.param_groups if critic else []):
            group["lr"] = rate
        x, y = task.batch(device)
        output = net(x)
        loss = task.loss(output, y)
        row = {"step": step + 1}
        if critic is not None:
            # the critic learns to tell (sketch, photo) from (sketch, output); then the net learns to fool it
            critic_loss = 0.5 * (adversarial_loss(critic(x, y), True) +
                                 adversarial_loss(critic(x, output.detach()), False))
            critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_optimizer.step()
            fooling = adversarial_loss(critic(x, output), True)
            loss = loss + config.adversarial_weight * fooling
            row.update(critic_loss=critic_loss.item(), fooling_loss=fooling.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise ValueError(f"the loss became {loss_value} at step {step + 1}; lower --lr")
        log.append({**row, "loss": loss_value, "lr": rate})
        seconds = time.time() - started
        images_per_second = (step + 1 - start_step) * config.batch_size / seconds
        progress.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{images_per_second:.1f}", refresh=False)
        if (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
            snapshot(step + 1, elapsed_before + seconds, final=False)
            progress.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in metadata["metrics"].items()
                                                             if k in (task.curve, "val_face_ssim",
                                                                      "val_paper_face_psnr",
                                                                      "val_colourfulness_ratio")))
    progress.close()
    snapshot(config.steps, elapsed_before + time.time() - started, final=True)
    return metadata


def _plain(value):
    """Config dicts as plain JSON-able data, fit for a weights_only checkpoint."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["colorstream"] + sys.argv[1:])
