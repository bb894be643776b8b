"""Training on photos generated here from the public-domain sample portrait."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorstream import metrics
from colorstream.model import checkpoint
from colorstream.model.net import ModelConfig
from colorstream.model.net import build as build_unet
from colorstream.training import data
from colorstream.training.evaluate import SATURATION_GAINS
from colorstream.training.losses import PatchDiscriminator, edge_loss, loss_fn, sobel, ssim_torch
from colorstream.training.train import TrainConfig, learning_rate, train
from colorstream import metrics


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, portrait) -> Path:
    """100 'identities': shifted, scaled, recoloured copies of the portrait, plus one faceless image."""
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for identity in range(100):
        scale = rng.uniform(0.9, 1.1)
        matrix = cv2.getRotationMatrix2D((128, 128), rng.uniform(-5, 5), scale)
        matrix[:, 2] += rng.uniform(-8, 8, 2)
        image = cv2.warpAffine(portrait, matrix, (256, 256), borderMode=cv2.BORDER_REFLECT)
        image = np.clip(image * rng.uniform(0.8, 1.2, 3), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"celeba_{identity}_000001.jpg"), image)
    cv2.imwrite(str(folder / "utk_blank.jpg"), np.full((200, 200, 3), 90, np.uint8))
    return folder


def test_identity_and_split_are_deterministic():
    assert data.identity_of(Path("celeba_123_000456.jpg")) == "celeba_123"
    assert data.identity_of(Path("utk_20_1_0_x.jpg")) == "utk_20_1_0_x"
    assert data.split_of("celeba_19") == "test" and data.split_of("celeba_47") == "val"
    splits = [data.split_of(f"id{i}") for i in range(2000)]
    assert 0.85 < splits.count("train") / 2000 < 0.95


def test_load_faces_counts_faceless_images_and_caches(face_folder, tmp_path):
    faces = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1)
    assert faces.n_images == 101 and faces.n_no_face >= 1
    assert sum(len(c) for c in faces.crops.values()) == 101 - faces.n_no_face
    assert len(faces.crops["val"]) > 0 and faces.crops["train"].shape[1:] == (data.CACHE_SIZE, data.CACHE_SIZE, 3)
    assert all(len(faces.sources[split]) == len(faces.crops[split]) for split in data.SPLITS)
    assert set(np.concatenate(list(faces.sources.values()))) == {"celeba"}  # the one utk image has no face
    again = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1)
    assert np.array_equal(again.crops["val"], faces.crops["val"]) and len(list(tmp_path.glob("*.npz"))) == 1
    assert np.array_equal(again.sources["train"], faces.sources["train"])
    every = data.with_all_split(faces)  # a folder from another source is scored whole
    assert len(every.crops["all"]) == 101 - faces.n_no_face == len(every.sources["all"])
    assert np.array_equal(every.crops["test"], faces.crops["test"])


def test_tone_matching_takes_away_exposure_and_contrast_and_keeps_chroma(portrait):
    from colorstream.training.evaluate import tone_matched

    truth = portrait[64:192, 64:192]
    ycrcb = cv2.cvtColor(truth, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    ycrcb[..., 0] = ycrcb[..., 0] * 0.6 + 20  # darker and flatter, as another camera would give it
    dull = cv2.cvtColor(np.clip(ycrcb, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR)
    assert metrics.psnr(dull, truth) < 22 and metrics.psnr(tone_matched(dull, truth), truth) > 38
    recoloured = dull.copy()
    recoloured[..., 2] = np.clip(recoloured[..., 2].astype(int) + 40, 0, 255)  # redder
    chroma = lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(float)  # noqa: E731
    matched = chroma(tone_matched(recoloured, truth))
    assert np.abs(matched - chroma(recoloured)).mean() < 3 < np.abs(matched - chroma(truth)).mean()  # the output's


def test_sampler_yields_aligned_batches(face_folder, tmp_path):
    faces = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1)
    crops = faces.crops["train"]
    real = (crops[:4, :, :, 0].copy(), crops[:4])
    sampler = data.PairSampler(crops, 32, True, data.AugmentConfig(), 0, real, real_fraction=0.5)
    sketches, photos = sampler.batch(12)
    assert sketches.shape == (12, 32, 32) and photos.shape == (12, 32, 32, 3)
    assert sketches.dtype == photos.dtype == np.uint8
    assert (sketches.reshape(12, -1).max(1) == 255).all()  # normalised: white paper
    first = data.PairSampler(crops, 32, True, data.AugmentConfig(), 7).batch(3)
    second = data.PairSampler(crops, 32, True, data.AugmentConfig(), 7).batch(3)
    assert np.array_equal(first[0], second[0])  # fixed seeds


def test_gray_sampler_yields_degraded_gray_views_of_the_photo(face_folder, tmp_path):
    crops = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1).crops["train"]
    sampler = data.PairSampler(crops, 32, False, data.AugmentConfig(), 0, input_kind="gray")
    grays, photos = sampler.batch(16)
    assert grays.shape == (16, 32, 32) and photos.shape == (16, 32, 32, 3)
    truth = np.stack([cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) for p in photos]).astype(np.float64)
    correlations = [np.corrcoef(g.ravel(), t.ravel())[0, 1] for g, t in zip(grays.astype(np.float64), truth)]
    assert min(correlations) > 0.6  # the same face, in the same place
    assert np.abs(grays - truth).mean() > 3  # but never the clean gray: contrast, exposure, grain, JPEG vary
    clean = data.AugmentConfig(gamma=(1, 1), gray_contrast=(1, 1), gray_brightness=0, gray_blur_probability=0,
                               gray_noise_probability=0, jpeg_probability=0)
    grays, photos = data.PairSampler(crops, 32, False, clean, 0, input_kind="gray").batch(4)
    expected = np.stack([cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) for p in photos]).astype(int)
    assert np.abs(grays.astype(int) - expected).max() <= 1


def test_gray_models_take_no_sketch_pairs_or_tone_normalisation():
    with pytest.raises(ValueError, match="gray-input"):
        TrainConfig(faces="x", input_kind="gray", pairs="p", normalize_sketch=False)
    with pytest.raises(ValueError, match="gray-input"):
        TrainConfig(faces="x", input_kind="gray")
    with pytest.raises(ValueError, match="unknown input kind"):
        TrainConfig(faces="x", input_kind="charcoal")


def test_ssim_loss_agrees_with_the_metric():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (1, 3, 24, 24))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = float(ssim_torch(torch.tensor(a), torch.tensor(b)))
    reference = metrics.ssim(a[0].transpose(1, 2, 0), b[0].transpose(1, 2, 0), data_range=1.0)
    assert ours == pytest.approx(reference, abs=1e-9)
    x = torch.rand(2, 3, 16, 16)
    assert float(loss_fn("mse", x, x)) == 0.0 and float(loss_fn("l1+ssim", x, x)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        loss_fn("perceptual", x, x)


def test_saturation_is_calibrated_for_either_objective(monkeypatch):
    from types import SimpleNamespace

    from colorstream.training import evaluate

    def fake_scores(predictor, crops, size):  # colourfulness grows with the gain; the error is least at 0.8
        gain = predictor.saturation_gain
        return {"face_colourfulness_output": 40.0 * gain, "face_colourfulness_truth": 48.0,
                "face_ab_error": 10.0 + (gain - 0.8) ** 2}

    monkeypatch.setattr(evaluate, "evaluate_faces", fake_scores)
    predictor = SimpleNamespace(saturation_gain=1.5)
    assert evaluate.calibrate_saturation(predictor, None) == 1.2
    assert evaluate.calibrate_saturation(predictor, None, objective="ab_error") == 0.8
    assert predictor.saturation_gain == 1.5  # left as it was
    with pytest.raises(ValueError, match="objective"):
        evaluate.calibrate_saturation(predictor, None, objective="vividness")
    assert evaluate.calibrate_saturations(predictor, None) == {"colourfulness": 1.2, "ab_error": 0.8}


def test_learning_rate_schedules():
    halving = TrainConfig(faces="x", lr=1.0, steps=100, schedule="halving")
    assert [learning_rate(halving, s, 20) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cosine = TrainConfig(faces="x", lr=1.0, steps=100, schedule="cosine")
    assert learning_rate(cosine, 0, 20) == 1.0 and learning_rate(cosine, 50, 20) == pytest.approx(0.5)


def _tiny_config(face_folder, tmp_path, steps) -> TrainConfig:
    return TrainConfig(faces=str(face_folder), out=str(tmp_path / "m.pt"), resolution=32, steps=steps,
                       batch_size=8, lr=3e-3, schedule="cosine", eval_every=10, eval_images=4, threads=1,
                       model=ModelConfig(base_channels=4, levels=2, res_blocks=1), device="cpu",
                       cache_dir=str(tmp_path / "cache"))


def test_tiny_training_run_lowers_the_loss_and_writes_everything(face_folder, tmp_path):
    metadata = train(_tiny_config(face_folder, tmp_path, steps=40), command="pytest")
    rows = [json.loads(line) for line in (tmp_path / "m_logs" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])
    assert (tmp_path / "m_logs" / "curves.png").exists() and (tmp_path / "m_logs" / "samples.png").exists()
    saved = checkpoint.read(tmp_path / "m.pt")["metadata"]
    assert saved["training"]["data_fingerprint"]["faces"] == data.fingerprint(data.list_images(face_folder))
    assert saved["training"]["faces_without_detection"] >= 1
    assert 0 < saved["metrics"]["val_face_ssim"] <= 1 and saved["metrics"] == metadata["metrics"]
    assert {"val_crop_psnr", "val_face_colourfulness_output", "val_paper_face_psnr"} <= set(saved["metrics"])
    assert set(saved["saturation_gains"]) == {"colourfulness", "ab_error"}
    assert set(saved["saturation_gains"].values()) <= set(SATURATION_GAINS)


def test_tiny_gray_model_trains_and_is_fed_gray_faces(face_folder, tmp_path, portrait):
    from colorstream.model.inference import load

    config = _tiny_config(face_folder, tmp_path, steps=10)
    config.input_kind, config.normalize_sketch = "gray", False
    train(config, command="pytest")
    predictor = load(tmp_path / "m.pt", "cpu")
    assert predictor.input_kind == "gray" and not predictor.normalize and predictor.sketch_params == {}
    assert np.array_equal(predictor.sketchify(portrait), cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY))


def test_training_resumes_from_its_periodic_checkpoint(face_folder, tmp_path):
    config = _tiny_config(face_folder, tmp_path, steps=20)
    train(config)
    config.steps = 30
    train(config, resume=True)
    payload = checkpoint.read(tmp_path / "m.resume.pt")
    assert payload["resume"]["step"] == 30 and payload["metadata"]["training"]["steps"] == 30
    steps = [r["step"] for r in payload["resume"]["log"] if "loss" in r]
    assert steps == list(range(1, 31))  # no step lost or repeated


def test_resume_without_a_periodic_checkpoint_is_an_error(face_folder, tmp_path):
    with pytest.raises(ValueError, match="nothing to resume from"):
        train(_tiny_config(face_folder, tmp_path, steps=5), resume=True)


def test_sobel_and_edge_loss():
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)  # +1 per pixel to the right
    gradients = sobel(ramp)
    assert gradients.shape == (1, 2, 6, 6)
    assert torch.allclose(gradients[:, 0], torch.ones(1, 6, 6)) and torch.allclose(gradients[:, 1], torch.zeros(1, 6, 6))
    photo = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert edge_loss(photo, photo).item() == 0.0
    blurred = torch.nn.functional.avg_pool2d(photo, 3, 1, 1)
    flat = photo.mean(dim=(2, 3), keepdim=True).expand_as(photo)
    assert 0 < edge_loss(blurred, photo).item() < edge_loss(flat, photo).item()


def test_patch_discriminator_scores_patches():
    critic = PatchDiscriminator()
    scores = critic(torch.rand(2, 1, 128, 128), torch.rand(2, 3, 128, 128))
    assert scores.shape == (2, 1, 14, 14)  # one score per 70-pixel patch, pix2pix's PatchGAN


def test_adversarial_and_edge_training_lowers_the_loss_and_resumes(face_folder, tmp_path):
    config = _tiny_config(face_folder, tmp_path, steps=40)
    config.edge_weight, config.adversarial_weight = 0.5, 0.05
    train(config)
    rows = checkpoint.read(tmp_path / "m.resume.pt")["resume"]["log"]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    assert all("critic_loss" in r and "fooling_loss" in r for r in rows if "loss" in r)
    plain = set(checkpoint.read(tmp_path / "m.pt")["state_dict"])
    assert plain == set(build_unet(config.model).state_dict())  # the critic never ships in a model
    config.steps = 50
    train(config, resume=True)
    payload = checkpoint.read(tmp_path / "m.resume.pt")
    assert payload["resume"]["step"] == 50 and "critic" in payload["resume"]
    config.adversarial_weight, config.steps = 0.0, 60
    train(config, resume=True)  # a GAN run may go on without its critic; the reverse is refused
    plain_config = _tiny_config(face_folder, tmp_path / "plain", steps=5)
    train(plain_config)
    plain_config.adversarial_weight, plain_config.steps = 0.05, 10
    with pytest.raises(ValueError, match="without the adversarial loss"):
        train(plain_config, resume=True)


def test_training_starts_from_a_checkpoint_and_records_it(face_folder, tmp_path):
    parent = _tiny_config(face_folder, tmp_path / "parent", steps=10)
    train(parent, command="colorstream train parent")
    child = _tiny_config(face_folder, tmp_path / "child", steps=1)
    child.init, child.lr = parent.out, 1e-12
    metadata = train(child)
    assert metadata["training"]["init"]["checkpoint"] == parent.out
    assert metadata["training"]["init"]["command"] == "colorstream train parent"
    before, after = checkpoint.read(parent.out)["state_dict"], checkpoint.read(child.out)["state_dict"]
    weights = [name for name, tensor in before.items() if tensor.is_floating_point() and "running" not in name]
    assert all(torch.allclose(before[name], after[name], atol=1e-6) for name in weights)
    other = _tiny_config(face_folder, tmp_path / "other", steps=1)
    other.init, other.model = parent.out, ModelConfig(base_channels=8, levels=2, res_blocks=1)
    with pytest.raises(ValueError, match="architecture"):
        train(other)


def test_held_out_sources_and_styles_are_kept_out_and_named():
    crops = {split: np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) for split, n in (("train", 4), ("val", 2),
                                                                                        ("test", 2))}
    sources = {"train": np.array(["celeba", "utk", "utk", "celeba"]), "val": np.array(["utk", "celeba"]),
               "test": np.array(["utk", "utk"])}
    faces = data.FaceSet(crops, sources, "x", 8, 0)
    kept = data.without_sources(faces, ("utk",))
    assert kept["train"].ravel().tolist() == [0, 3] and kept["val"].ravel().tolist() == [1] and len(kept["test"]) == 0
    assert data.without_sources(faces, ())["train"] is crops["train"]
    with pytest.raises(ValueError, match="no faces from lfw to hold out; the collections are celeba, utk"):
        data.without_sources(faces, ("lfw",))
    with pytest.raises(ValueError, match="leaves nothing"):
        data.without_sources(faces, ("utk", "celeba"))
    pairs = [data.SketchPair(str(i), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8), style=i % 3)
             for i in range(6)]
    assert [p.stem for p in data.without_styles(pairs, (0, 2))] == ["1", "4"]
    with pytest.raises(ValueError, match="no pairs of style 5 to hold out; the styles are 0, 1, 2"):
        data.without_styles(pairs, (5,))
    with pytest.raises(ValueError, match="leaves no real pairs"):
        data.without_styles(pairs, (0, 1, 2))


def test_training_without_a_collection_never_sees_it_and_says_so(face_folder, tmp_path):
    from colorstream.training.evaluate import held_out

    folder = tmp_path / "two_sources"
    folder.mkdir()
    for index, path in enumerate(sorted(face_folder.glob("celeba_*.jpg"))):  # a third of the faces from 'utk'
        (folder / (f"utk_{index}.jpg" if index % 3 == 0 else path.name)).symlink_to(path)
    config = _tiny_config(folder, tmp_path, steps=2)
    config.holdout_sources = ("utk",)
    metadata = train(config)
    faces = data.load_faces(folder, margin=1.4, cache_dir=tmp_path / "cache", workers=1)
    celeba = {split: int(np.sum(names == "celeba")) for split, names in faces.sources.items()}
    assert min(int(np.sum(names == "utk")) for names in (faces.sources["train"], faces.sources["val"])) > 0
    assert metadata["training"]["faces_used"] == celeba  # not one utk face in training or validation
    assert held_out(checkpoint.read(config.out)["metadata"]) == {"sources": ["utk"], "styles": []}
    config.holdout_sources, config.steps = (), 3
    with pytest.raises(ValueError, match="resume with the same --holdout-source"):
        train(config, resume=True)  # its first steps never saw utk; the rest would, under the same claim
    child = _tiny_config(folder, tmp_path / "child", steps=1)
    child.init = config.out
    train(child)  # starting from weights that never saw utk is allowed, and need not hold it out
    seen = _tiny_config(folder, tmp_path / "seen", steps=1)
    seen.init, seen.holdout_sources = child.out, ("utk",)
    with pytest.raises(ValueError, match="trained on what this run holds out"):
        train(seen)


def test_shading_darkens_dark_regions_in_flat_tones_or_hatching():
    photo = np.full((96, 96, 3), 250, np.uint8)
    photo[:, :48] = 0  # black hair on the left, light skin on the right
    sketch = np.full((96, 96), 255, np.uint8)
    aug = data.AugmentConfig(shade_strength=(0.6, 0.6), shade_lift=(1.0, 1.0), shade_gamma=(2.0, 2.0),
                             shade_softness=(0.5, 0.5), hatch_probability=0.0)
    flat = data.shade_sketch(sketch, photo, np.random.default_rng(0), aug)
    assert flat.dtype == np.uint8 and flat.shape == sketch.shape
    assert abs(int(flat[:, :40].mean()) - 255 * 0.4) <= 3 and flat[:, 56:].min() >= 254  # dark tone; paper stays
    photo[:, :48] = 64  # a mid-dark tone: 0.25 on five levels, pencil over (1 - 0.25) ** 2 of it
    hatched = data.shade_sketch(sketch, photo, np.random.default_rng(0),
                                replace(aug, hatch_probability=1.0, shade_levels=(5, 5)))
    left = hatched[:, :40]
    assert left.min() < 130 and left.max() > 230  # strokes with paper between them, not a flat tone
    assert 0.4 < np.mean(left < 180) < 0.75
    assert hatched[:, 56:].min() >= 254


def test_stroke_sizes_scale_with_the_resolution(face_folder, tmp_path):
    scaled = data.at_resolution(data.AugmentConfig(), 192)
    assert scaled.pencil_sigma == (3.0, 10.0) and scaled.line_sigma == (1.2, 2.6)
    assert scaled.hatch_period == (5.0, 10.0) and scaled.shade_softness == (1.0, 3.0)
    config = _tiny_config(face_folder, tmp_path, steps=1)
    config.resolution = 64
    assert train(config)["sketch_params"]["blur_sigma"] == pytest.approx(2.0)  # 3 px at 96


def test_generalisation_report_scores_other_recipes_and_each_collection(face_folder, tmp_path):
    from colorstream.model.inference import load
    from colorstream.training.evaluate import (OTHER_RECIPES, evaluate_generalisation, paper_recipe, scanned_recipe,
                                              shaded_recipe)

    flat = np.full((64, 64, 3), 120, np.uint8)
    assert paper_recipe(flat).min() >= 250  # no strokes where the photo is flat: white paper
    assert 200 <= int(np.median(scanned_recipe(flat))) <= 235  # cream paper
    dark = np.full((64, 64, 3), 40, np.uint8)
    assert 0.4 * 255 - 2 <= shaded_recipe(dark).mean() <= 0.5 * 255  # a dark region is shaded, not left as paper
    faces = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1)
    faces.sources["train"][:5] = "utk"  # two collections in one split
    predictor = load("sketch", "cpu")
    report = evaluate_generalisation(predictor, faces, "train", limit=10)
    assert set(report) == {"own", *OTHER_RECIPES, "by_source"} and set(report["by_source"]) == {"celeba", "utk"}
    assert report["own"]["n"] == 10 and report["by_source"]["utk"]["paper"]["n"] == 5
    for recipe in ("own", *OTHER_RECIPES):  # identity: the true faces are the gallery, each probe's own the answer
        assert 0 <= report[recipe]["rank1_output"] <= 1 and 0 <= report[recipe]["rank1_sketch"] <= 1
    assert report["by_source"]["utk"]["shaded"]["rank1_output"] >= 0.2  # 5 faces: chance alone is 0.2
    for recipe in ("own", *OTHER_RECIPES):
        halves = [report["by_source"][source][recipe]["face_psnr"] for source in ("celeba", "utk")]
        assert report[recipe]["face_psnr"] == pytest.approx(np.mean(halves))  # equal halves: the mean of means
        assert 0 < report[recipe]["face_ssim"] < 1
    assert report["own"]["face_psnr"] != report["scanned"]["face_psnr"]


def test_pair_report_has_aligned_identity_and_styles(portrait):
    from colorstream.model.inference import load
    from colorstream.training.evaluate import evaluate_pairs

    rng = np.random.default_rng(1)
    pairs = []
    for index in range(6):
        matrix = cv2.getRotationMatrix2D((128, 128), rng.uniform(-6, 6), rng.uniform(0.9, 1.1))
        photo = cv2.warpAffine(portrait, matrix, (256, 256), borderMode=cv2.BORDER_REFLECT)
        pairs.append(data.SketchPair(f"p{index}", imageops_gray(photo), photo, style=index % 2))
    strangers = [cv2.flip(pair.photo, 0) for pair in pairs[:4]]  # upside down: nobody's face
    report = evaluate_pairs(load("sketch", "cpu"), pairs, distractors=strangers)
    assert report["n"] == 6 and set(report["by_style"]) == {"0", "1"} and report["by_style"]["1"]["n"] == 3
    assert report["rank1_sketch_aligned"] == 1.0  # the 'sketch' is the photo's own gray: its face matches itself
    assert 0.0 <= report["rank1_output_aligned"] <= 1.0 and 0 < report["ssim_output"] < 1
    assert report["gallery_with_distractors"] == 10
    assert report["rank1_sketch_aligned_with_distractors"] == 1.0  # still itself, among more photos
    assert report["rank1_sketch_with_distractors"] == 1.0 and 0.0 <= report["rank1_output_with_distractors"] <= 1.0
    assert "gallery_with_distractors" not in report["by_style"]["0"]  # styles keep their own galleries


def imageops_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
