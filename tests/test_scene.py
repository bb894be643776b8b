"""The scene model: whole-frame colour beside the face model, from its network to the pipeline and the CLI."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch

from conftest import save_tiny_scene
from media import face_canvas, moving_face_frames, read_video, write_video
from colorstream import imageops
from colorstream.model import checkpoint
from colorstream.model.inference import ScenePredictor, decode_ab, load
from colorstream.model.net import ModelConfig, build, fold_batchnorm
from colorstream.stream.frames import Face, Frame
from colorstream.stream.jobs import Options, build_stages, colorize_still, colorize_video
from colorstream.stream.stages import BackgroundSceneColour, Composite, SceneColour
from colorstream.training import data, scenes
from colorstream.training.evaluate import SCENE_TEMPERATURES
from colorstream.training.losses import ab_classification_loss, ab_soft_targets
from test_cli import run


def test_scene_net_predicts_bins_at_a_quarter_size_for_any_frame_shape():
    net = build(ModelConfig(arch="scene", base_channels=4, levels=3, res_blocks=1, outputs=7)).eval()
    assert ModelConfig(arch="scene", levels=3).size_multiple == 8
    for height, width in ((64, 96), (40, 24)):
        assert net(torch.rand(2, 1, height, width)).shape == (2, 7, height // 4, width // 4)


def test_gamut_bins_and_soft_encoding():
    bins = imageops.ab_gamut_bins()
    assert len(bins) == 261 and np.all(bins % 10 == 0) and [0.0, 0.0] in bins.tolist()
    ab = torch.tensor([[[[12.0, -31.0]]]])  # (1, 1, 1, 2)
    targets = ab_soft_targets(ab, torch.from_numpy(bins))  # (1, Q, 1, 1)
    assert targets.shape == (1, len(bins), 1, 1) and float(targets.sum()) == pytest.approx(1.0)
    assert (targets > 0).sum() == 5 and bins[int(targets.argmax())].tolist() == [10.0, -30.0]


def test_annealed_mean_sharpens_towards_the_likeliest_bin():
    bins = torch.tensor([[0.0, 0.0], [40.0, 0.0]])
    logits = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)
    mean = decode_ab(logits, bins, temperature=1.0)[0, 0, 0, 0]
    annealed = decode_ab(logits, bins, temperature=0.38)[0, 0, 0, 0]
    assert float(mean) == pytest.approx(40 * np.exp(1) / (1 + np.exp(1)))
    assert 40 > float(annealed) > float(mean)
    assert float(decode_ab(logits, bins, 0.38, gain=2.0)[0, 0, 0, 0]) == pytest.approx(2 * float(annealed))


def test_scene_checkpoint_round_trip_and_its_checks(tmp_path, tiny_scene_checkpoint):
    payload = checkpoint.read(tiny_scene_checkpoint)
    predictor = load(tiny_scene_checkpoint, device="cpu", task="scene")
    assert isinstance(predictor, ScenePredictor) and predictor.side == 64
    gray = np.random.default_rng(0).integers(0, 255, (48, 80), np.uint8)
    prepared = predictor.prepare(gray)
    assert prepared.shape == (40, 64)  # longer side 64, each side a multiple of 8
    net = fold_batchnorm(checkpoint.build_from(payload))
    with torch.inference_mode():
        expected = decode_ab(net(torch.from_numpy(prepared).float()[None, None] / 255.0), predictor.bins, 0.38, 1.2)
    assert np.allclose(predictor.predict_ab(gray), expected[0].numpy(), atol=1e-4)
    with pytest.raises(checkpoint.CheckpointError, match="is a scene model, but a face model is needed"):
        load(tiny_scene_checkpoint, device="cpu")
    broken = dict(payload["metadata"], ab_bins=payload["metadata"]["ab_bins"][:-1])
    with pytest.raises(checkpoint.CheckpointError, match="ab_bins must be"):
        checkpoint.validate_metadata(broken, "x")
    with pytest.raises(checkpoint.CheckpointError, match="cannot have the unet architecture"):
        checkpoint.validate_metadata(dict(payload["metadata"], model={"arch": "unet"}), "x")
    for bad in ({"colourfulness": 0.0}, {"colourfulness": True}, {"vividness": 0.5}, [0.5]):
        with pytest.raises(checkpoint.CheckpointError, match="decode temperature"):
            checkpoint.validate_metadata(dict(payload["metadata"], decode_temperatures=bad), "x")


def test_calibrate_fits_a_scene_models_gain_and_temperature_for_each_use(tmp_path, tiny_scene_checkpoint):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for index, photo in enumerate(generated_photos(60)):
        cv2.imwrite(str(folder / f"img_{index}.png"), photo)
    model = tmp_path / "scene.pt"
    model.write_bytes(tiny_scene_checkpoint.read_bytes())
    no_val = tmp_path / "no_val"  # nothing to fit on: an error, and the checkpoint as it was
    no_val.mkdir()
    for path in folder.iterdir():
        if data.split_of(data.identity_of(path), 10, 10) != "val":
            (no_val / path.name).write_bytes(path.read_bytes())
    result = run("calibrate", "--model", str(model), "--scenes", str(no_val))
    assert result.returncode == 1 and "no readable photo in its val split" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and model.read_bytes() == tiny_scene_checkpoint.read_bytes()
    result = run("calibrate", "--model", str(model), "--scenes", str(folder))
    assert result.returncode == 0, result.stderr
    saved = checkpoint.read(model)["metadata"]
    assert set(saved["decode_temperatures"].values()) <= set(SCENE_TEMPERATURES)
    assert set(saved["decode_temperatures"]) == set(saved["saturation_gains"]) == {"colourfulness", "ab_error"}
    assert f"decode temperatures {saved['decode_temperatures']['colourfulness']} for stills" in result.stdout
    assert all(f"  {temperature}: video " in result.stdout for temperature in SCENE_TEMPERATURES)


def test_each_use_decodes_at_its_own_temperature(tmp_path, tiny_scene_checkpoint, tiny_checkpoint):
    payload = checkpoint.read(tiny_scene_checkpoint)
    assert load(tiny_scene_checkpoint, device="cpu", task="scene").temperatures == \
        {"colourfulness": 0.38, "ab_error": 0.38}  # none per use: the model's own, for both
    path = tmp_path / "tempered.pt"
    metadata = dict(payload["metadata"], decode_temperatures={"colourfulness": 0.2, "ab_error": 1.0})
    checkpoint.save(path, checkpoint.build_from(payload), metadata)
    scene = load(path, device="cpu", task="scene")
    face = load(tiny_checkpoint, device="cpu")
    gray = np.random.default_rng(0).integers(0, 255, (48, 64), np.uint8)
    vivid = scene.predict_ab(gray)  # a still's temperature, then video's
    safe = scene.predict_prepared(scene.prepare(gray)[None], temperature=1.0)[0]
    assert scene.temperature == 0.2 and np.linalg.norm(vivid, axis=2).mean() > np.linalg.norm(safe, axis=2).mean()
    for still, temperature in ((True, 0.2), (False, 1.0)):
        stages = {stage.name: stage.process for stage in build_stages(face, Options(), live=False, scene=scene,
                                                                       still=still)}
        assert stages["scene"].temperature == temperature
    live = {stage.name: stage.process for stage in build_stages(face, Options(), live=True, scene=scene,
                                                                realtime=True)}["scene"]
    try:
        assert live.temperature == 1.0
    finally:
        live.close()


def generated_photos(count: int, seed: int = 0) -> list[np.ndarray]:
    """Photos whose colour follows from their tones: a blue sky (bright top) over green ground with texture."""
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        height, width = int(rng.integers(60, 90)), int(rng.integers(80, 120))
        horizon = int(height * rng.uniform(0.3, 0.6))
        photo = np.zeros((height, width, 3), np.uint8)
        photo[:horizon] = (230, 170, 110)  # BGR sky
        photo[horizon:] = (40, 140, 50)  # grass
        photos.append(np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8))
    return photos


def test_the_classification_loss_falls_on_generated_photos():
    torch.manual_seed(0)
    bins = torch.from_numpy(imageops.ab_gamut_bins())
    net = build(ModelConfig(arch="scene", base_channels=8, levels=3, res_blocks=1, outputs=len(bins)))
    sampler = scenes.SceneSampler(generated_photos(12), [], scenes.SceneAugment(side=(64, 96), crop=48),
                                  data.AugmentConfig(), seed=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        grays, ab = sampler.batch(8)
        assert grays.shape == (8, 48, 48) and ab.shape == (8, 12, 12, 2)
        loss = ab_classification_loss(net(torch.from_numpy(grays).float()[:, None] / 255.0), torch.from_numpy(ab),
                                      bins)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])  # soft targets keep an entropy floor


def test_a_tiny_scene_training_run_writes_a_calibrated_checkpoint(tmp_path):
    from colorstream.training.train import TrainConfig, train

    for name, photos in (("scenes", generated_photos(30)), ("faces", generated_photos(20, seed=1))):
        (tmp_path / name).mkdir()
        for index, photo in enumerate(photos):
            cv2.imwrite(str(tmp_path / name / f"img_{index}.png"), photo)
    config = TrainConfig(faces=str(tmp_path / "faces"), scenes=str(tmp_path / "scenes"), task="scene",
                         out=str(tmp_path / "scene.pt"), input_kind="gray", normalize_sketch=False, resolution=64,
                         model=ModelConfig(arch="scene", base_channels=4, levels=3, res_blocks=1), steps=12,
                         batch_size=4, eval_every=6, eval_images=4, threads=1, device="cpu",
                         scene=scenes.SceneAugment(side=(48, 80), crop=32))
    metadata = train(config, command="pytest")
    saved = checkpoint.read(tmp_path / "scene.pt")["metadata"]
    assert saved["task"] == "scene" and len(saved["ab_bins"]) == saved["model"]["outputs"] == 261
    assert set(saved["saturation_gains"]) == {"colourfulness", "ab_error"}
    assert set(saved["decode_temperatures"]) == {"colourfulness", "ab_error"}
    assert set(saved["decode_temperatures"].values()) <= set(SCENE_TEMPERATURES)
    assert {"val_ab_error_ratio", "val_colourfulness_ratio", "val_worse_than_gray"} <= set(metadata["metrics"])
    assert (tmp_path / "scene_logs" / "samples.png").exists()


# ---------------------------------------------------------------------------- in the pipeline


@pytest.fixture
def scene(tiny_scene_checkpoint):
    return load(tiny_scene_checkpoint, device="cpu", task="scene")


@pytest.fixture
def face_model(tiny_checkpoint):
    return load(tiny_checkpoint, device="cpu")


def _y_planes(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)[:, :frame.width]
                for frame in container.decode(video=0)]


def test_a_frame_without_a_face_is_coloured_and_keeps_its_luma_bit_for_bit(tmp_path, face_model, scene):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), np.uint8), (0, 0), 3) for _ in range(6)]
    source = write_video(tmp_path / "in.mp4", frames)
    report = colorize_video(source, tmp_path / "out.mp4", face_model, Options(crf=0), progress=False, scene=scene)
    assert report["frames_with_faces"] == 0 and "scene" in report["ms_per_frame"]
    out_frames, _, _ = read_video(tmp_path / "out.mp4")
    lab = imageops.bgr_to_lab(out_frames[3])
    assert lab[..., 1].mean() > 8 and lab[..., 2].mean() > 8  # the warm colour the tiny model leans to
    assert all(np.array_equal(a, b) for a, b in zip(_y_planes(source), _y_planes(tmp_path / "out.mp4")))


def test_face_chroma_inside_its_square_blends_into_the_scene_chroma_outside():
    gray = np.full((120, 160), 120, np.uint8)
    frame = Frame(0, gray)
    frame.scene_ab = np.zeros((30, 40, 2), np.float32)
    frame.scene_ab[..., 1] = -30.0  # the scene: blue everywhere
    face = np.zeros((16, 16, 2), np.float32)
    face[..., 0] = 30.0  # the face: red
    frame.faces = [Face(0, imageops.Box(50, 30, 60, 60), chroma=face)]
    lab = imageops.bgr_to_lab(Composite(feather=0.2)([frame])[0].output_bgr())
    assert lab[60, 80, 1] > 20 and abs(lab[60, 80, 2]) < 8  # the face's own colour at its centre
    assert lab[60, 10, 2] < -20 and abs(lab[60, 10, 1]) < 8  # the scene's colour away from it
    row = lab[60, 10:80, 1]  # from the scene into the face: a smooth rise, no step
    assert np.all(np.diff(row) > -1.0) and np.abs(np.diff(row)).max() < 6  # 8-bit chroma: small ripples


def test_scope_faces_leaves_all_but_the_faces_gray_as_before(tmp_path, portrait, face_model, scene):
    source = write_video(tmp_path / "in.mp4", moving_face_frames(portrait, 6, 200, 120))
    faces_only = colorize_video(source, tmp_path / "faces.mp4", face_model, Options(scope="faces"), progress=False,
                                scene=scene)
    without_scene = colorize_video(source, tmp_path / "plain.mp4", face_model, Options(), progress=False)
    assert "scene" not in faces_only["ms_per_frame"]
    assert (tmp_path / "faces.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
    assert without_scene["frames"] == 6
    whole = colorize_video(source, tmp_path / "frame.mp4", face_model, Options(), progress=False, scene=scene)
    corner = [imageops.bgr_to_lab(frame)[100:, 180:, 1:] for frame in read_video(tmp_path / "frame.mp4")[0]]
    gray_corner = [imageops.bgr_to_lab(frame)[100:, 180:, 1:] for frame in read_video(tmp_path / "faces.mp4")[0]]
    assert whole["frames"] == 6 and np.mean(np.abs(corner)) > 5 > np.mean(np.abs(gray_corner))


def test_the_scene_model_runs_every_kth_frame_and_flow_carries_it_between(scene):
    calls = []
    original = scene.predict_prepared

    def counting(grays, *args, **kwargs):
        calls.append(len(grays))
        return original(grays, *args, **kwargs)

    scene.predict_prepared = counting
    stage = SceneColour(scene, 1.0, every=3)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (100, 140), np.uint8), (0, 0), 2)
    frames = [Frame(i, np.ascontiguousarray(texture[:96, i:i + 128])) for i in range(7)]  # a slow pan
    frames[5].scene_cut = True
    stage(frames[:4])
    stage(frames[4:])
    assert calls == [2, 1]  # frames 0 and 3, then the cut at 5 (which restarts the count: 6 is carried)
    assert all(frame.scene_ab.shape == (12, 16, 2) for frame in frames)  # a quarter of 48x64
    assert np.abs(frames[1].scene_ab - frames[0].scene_ab).mean() < 2.0  # carried, nearly unchanged


def test_live_scene_colour_runs_the_model_beside_the_frames_and_waits_only_at_a_shot_start(scene):
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (100, 140), np.uint8), (0, 0), 2)
    frames = [Frame(i, np.ascontiguousarray(texture[:96, i:i + 128])) for i in range(6)]  # a slow pan
    frames[4].scene_cut = True
    stage = BackgroundSceneColour(scene, 1.0, every=2)
    try:
        for frame in frames:
            stage([frame])
    finally:
        stage.close()
    own = [scene.predict_prepared(scene.prepare(frame.gray)[None], 1.0)[0] for frame in frames]
    # the first frame and the cut wait for their own prediction; the others take one moved along the flow
    np.testing.assert_allclose(frames[0].scene_ab, own[0], atol=1e-5)
    np.testing.assert_allclose(frames[4].scene_ab, own[4], atol=1e-5)
    assert all(frame.scene_ab.shape == (12, 16, 2) for frame in frames)
    assert np.abs(frames[5].scene_ab - own[5]).mean() < 2.0


def test_live_scene_colour_hands_a_model_failure_to_the_pipeline(scene):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    scene.predict_prepared = broken
    stage = BackgroundSceneColour(scene, 1.0)
    with pytest.raises(RuntimeError, match="out of memory"):
        stage([Frame(0, np.zeros((48, 64), np.uint8))])
    stage.close()


def test_a_still_is_coloured_whole_at_the_stills_gain(portrait, face_model, scene):
    gray = cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY)
    frame = colorize_still(gray, face_model, Options(), scene)
    output = frame.output_bgr()
    assert output.shape == portrait.shape and frame.scene_ab is not None
    corner = imageops.bgr_to_lab(output)[-20:, -20:, 1:].mean(axis=(0, 1))
    assert corner[0] > 5 and corner[1] > 5


# ---------------------------------------------------------------------------- evaluation and the CLI


def test_evaluate_photos_scores_the_whole_image_against_the_gray_input(tmp_path, tiny_checkpoint,
                                                                       tiny_scene_checkpoint):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, photo in enumerate(generated_photos(4)):
        cv2.imwrite(str(folder / f"p{index}.png"), photo)
    stats = tmp_path / "photos.json"
    result = run("evaluate", "--photos", str(folder), "--model", str(tiny_checkpoint), "--scene-model",
                 str(tiny_scene_checkpoint), "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())["photos"]
    assert report["n"] == 4 and 0 <= report["worse_than_gray"] <= 1
    assert report["ab_error_ratio"] == pytest.approx(report["ab_error_output"] / report["ab_error_gray"])
    assert report["colourfulness_output"] > 1 and report["psnr_gray"] > 0
    assert (report["face_model"], report["scene_model"]) == (str(tiny_checkpoint), str(tiny_scene_checkpoint))
    faces_only = run("evaluate", "--photos", str(folder), "--model", str(tiny_checkpoint), "--scope", "faces")
    assert json.loads(faces_only.stdout)["photos"]["colourfulness_output"] < 1  # no face: gray
    assert json.loads(faces_only.stdout)["photos"]["scene_model"] is None


def test_evaluate_video_reports_whole_frame_colour(tmp_path, portrait, tiny_checkpoint, tiny_scene_checkpoint):
    frames = [face_canvas(portrait, 200, 120, [(20 + i, 8)]) for i in range(8)]
    clip = write_video(tmp_path / "clip.mp4", frames)
    stats = tmp_path / "eval.json"
    result = run("evaluate-video", str(clip), "--model", str(tiny_checkpoint), "--scene-model",
                 str(tiny_scene_checkpoint), "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())["clips"][0]
    assert report["frame_colourfulness_output"] > 2 and report["frame_ab_error_gray"] > 0
    assert report["frame_ab_error_ratio"] == pytest.approx(
        report["frame_ab_error_output"] / report["frame_ab_error_gray"], abs=2e-3)
    assert "frame a/b error" in result.stdout


def test_colorize_cli_colours_a_still_whole_and_refuses_a_face_model_as_the_scene(tmp_path, portrait,
                                                                                   tiny_checkpoint,
                                                                                   tiny_scene_checkpoint):
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), cv2.cvtColor(cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    result = run("colorize", str(still), "-o", str(tmp_path / "out.png"), "--model", str(tiny_checkpoint),
                 "--scene-model", str(tiny_scene_checkpoint))
    assert result.returncode == 0, result.stderr
    assert imageops.bgr_to_lab(cv2.imread(str(tmp_path / "out.png")))[:20, :20, 1:].mean() > 5
    result = run("colorize", str(still), "-o", str(tmp_path / "o2.png"), "--model", str(tiny_checkpoint),
                 "--scene-model", str(tiny_checkpoint))
    assert result.returncode == 1 and "is a face model, but a scene model is needed" in result.stderr
    other = tmp_path / "other.pt"
    save_tiny_scene(other, ab=(-20.0, -30.0))
    assert load(other, device="cpu", task="scene").predict_ab(np.full((64, 64), 128, np.uint8))[..., 1].mean() < -5


def test_the_evaluation_line_says_when_a_clip_has_no_face_to_score():
    from colorstream.cli import evaluation_line

    keys = ["psnr_output", "psnr_gray", "frame_ab_error_output", "frame_ab_error_gray", "frame_ab_error_ratio",
            "frame_colourfulness_output", "frame_colourfulness_truth", "last_fifth_frame_ab_error_ratio",
            "ssim_output", "ssim_gray", "face_ab_error_output", "face_ab_error_gray", "face_ab_error_ratio",
            "face_a_output", "face_b_output", "face_a_truth", "face_b_truth", "excess_face_chroma_flicker",
            "warp_error_output", "warp_error_truth", "chroma_warp_error_output", "chroma_warp_error_truth", "cdc_output", "cdc_truth", "smoothing_ms_per_frame", "fps"]
    report = {"clip": "pan.mp4", **{key: 1.0 for key in keys}}
    assert "face a/b error 1.00" in evaluation_line(report) and "no faces" not in evaluation_line(report)
    report.update(face_ab_error_output=0.0, face_ab_error_gray=0.0, face_ab_error_ratio=0.0)
    line = evaluation_line(report)
    assert "no faces to score" in line and "face a/b error" not in line and "warp error x1e3 1000.000" in line


def test_images_and_video_get_the_bundled_scene_model_of_their_use_unless_one_is_given(tmp_path, portrait,
                                                                                      tiny_checkpoint,
                                                                                      tiny_scene_checkpoint):
    """The bundled stills weights colour images, the video weights video (a batch may hold both); a given
    --scene-model colours both, loaded once; the run's fingerprints name both files."""
    from colorstream.model.inference import BUNDLED
    from colorstream.stream.jobs import Models
    from colorstream.stream.workers import FileTask, Worker

    bundled = Models(model=str(tiny_checkpoint))
    assert bundled.files("frame")["scene_model"] == BUNDLED["scene"]
    assert bundled.files("frame")["stills_scene_model"] == BUNDLED["scene-stills"]
    assert set(bundled.fingerprints("frame")) == {"model", "scene_model", "stills_scene_model"}
    assert "stills_scene_model" not in bundled.files("faces")
    worker = Worker(bundled, Options())
    stills, video = checkpoint.read(BUNDLED["scene-stills"])["metadata"], checkpoint.read(BUNDLED["scene"])["metadata"]
    assert worker.stills_scene.saturation_gains == stills["saturation_gains"] != video["saturation_gains"]
    assert worker.scene.saturation_gains == video["saturation_gains"]
    cv2.imwrite(str(tmp_path / "in.png"), portrait)
    report = worker.run(FileTask(tmp_path / "in.png", tmp_path / "out.png", overwrite=False))
    assert "error" not in report
    coloured = cv2.imread(str(tmp_path / "out.png"))
    for scene, same in ((worker.stills_scene, True), (worker.scene, False)):
        assert np.array_equal(coloured, colorize_still(portrait, worker.predictor, Options(), scene).output_bgr()) == same

    given = Worker(Models(model=str(tiny_checkpoint), scene_model=str(tiny_scene_checkpoint)), Options())
    assert given.stills_scene is given.scene
    assert Worker(bundled, Options(scope="faces")).stills_scene is None
