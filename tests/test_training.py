"""Training on photos generated here from the public-domain sample portrait."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorstream.model import checkpoint
from colorstream.model.net import ModelConfig
from colorstream.training import data
from colorstream.training.evaluate import SATURATION_GAINS
from colorstream.training.losses import loss_fn, ssim_torch
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
    again = data.load_faces(face_folder, margin=1.4, cache_dir=tmp_path, workers=1)
    assert np.array_equal(again.crops["val"], faces.crops["val"]) and len(list(tmp_path.glob("*.npz"))) == 1


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
    assert {"val_crop_psnr", "val_face_colourfulness_output"} <= set(saved["metrics"])
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
