import pickle

import cv2
import numpy as np
import pytest
import torch

from conftest import SAMPLES, tiny_metadata
from colorstream.model import checkpoint
from colorstream.model.inference import load, pick_device
from colorstream.model.net import ModelConfig, build, count_parameters


def test_round_trip_keeps_weights_and_metadata(tiny_checkpoint):
    payload = checkpoint.read(tiny_checkpoint)
    assert payload["format_version"] == checkpoint.FORMAT_VERSION
    assert payload["metadata"]["resolution"] == 32
    net = checkpoint.build_from(payload)
    assert not net.training
    again = checkpoint.build_from(checkpoint.read(tiny_checkpoint))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))


def test_predictor_follows_metadata(tiny_checkpoint):
    predictor = load(tiny_checkpoint, device="cpu")
    assert predictor.resolution == 32 and predictor.input_kind == "pencil"
    sketches = [np.full((50, 70), 255, np.uint8), np.full((33, 33, 3), 200, np.uint8)]
    photos = predictor.predict(sketches)
    assert [p.shape for p in photos] == [(50, 70, 3), (33, 33, 3)]
    assert all(p.dtype == np.uint8 for p in photos)
    assert predictor.predict_prepared(np.zeros((5, 32, 32), np.uint8), batch_size=2).shape == (5, 32, 32, 3)


def _write(path, payload):
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(format="something-else"), "not a colorstream checkpoint"),
    (lambda p: p.update(format_version=99), "newer than this colorstream understands"),
    (lambda p: p["metadata"].pop("resolution"), "lacks resolution"),
    (lambda p: p["metadata"].update(input_kind="charcoal"), "unknown input kind"),
    (lambda p: p["metadata"].update(color_space="cmyk"), "unknown colour space"),
    (lambda p: p["metadata"].update(resolution=30), "not a multiple of 4"),
    (lambda p: p["metadata"]["model"].update(arch="transformer"), "bad model config"),
    (lambda p: p.pop("state_dict"), "lacks its metadata or weights"),
])
def test_bad_checkpoints_are_rejected_with_one_line(tiny_checkpoint, tmp_path, mutate, message):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    mutate(payload)
    path = _write(tmp_path / "bad.pt", payload)
    with pytest.raises(checkpoint.CheckpointError, match=message) as caught:
        checkpoint.read(path)
    assert "\n" not in str(caught.value)


def test_weights_that_do_not_fit_the_architecture_are_rejected(tiny_checkpoint, tmp_path):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["metadata"]["model"]["base_channels"] = 8
    path = _write(tmp_path / "mismatch.pt", payload)
    with pytest.raises(checkpoint.CheckpointError, match="do not match the architecture"):
        load(path, device="cpu")


def test_missing_corrupt_and_code_carrying_files_are_rejected(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.read(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.read(junk)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": checkpoint.FORMAT, "payload": ModelConfig()}))
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.read(evil)


def test_save_is_atomic_and_validates(tmp_path):
    config = ModelConfig(base_channels=4, levels=2, res_blocks=1)
    metadata = tiny_metadata(config)
    del metadata["metrics"]
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.save(tmp_path / "x.pt", build(config), metadata)
    assert list(tmp_path.iterdir()) == []


def test_paper_and_unet_architectures_keep_shape():
    for config in (ModelConfig(arch="paper", base_channels=8), ModelConfig(base_channels=4, levels=3)):
        net = build(config).eval()
        assert count_parameters(net) > 0
        with torch.no_grad():
            assert net(torch.rand(2, 1, 48, 48)).shape == (2, 3, 48, 48)


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(ValueError):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            pick_device("cuda")


def test_saturation_gain_scales_chroma_around_luma(tiny_checkpoint):
    predictor = load(tiny_checkpoint, device="cpu")
    sketches = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    plain = predictor.predict_prepared(sketches).astype(np.float64)
    predictor.saturation_gain = 0.0  # no chroma left: every pixel gray
    gray = predictor.predict_prepared(sketches).astype(np.float64)
    assert np.abs(gray - gray[..., :1]).max() <= 1
    luma = plain @ np.array([0.114, 0.587, 0.299])  # BGR
    assert np.abs(gray[..., 0] - luma).max() <= 1.5
    predictor.saturation_gain = 1.0
    assert np.array_equal(predictor.predict_prepared(sketches, saturation_gain=0.0), gray)  # a per-call override
    payload = torch.load(tiny_checkpoint, weights_only=True)
    for bad in ({"saturation_gain": -1}, {"saturation_gains": {"ab_error": 9.0}},
                {"saturation_gains": {"vividness": 1.0}}, {"saturation_gains": {"ab_error": True}}):
        torch.save({**payload, "metadata": {**payload["metadata"], **bad}}, tiny_checkpoint)
        with pytest.raises(checkpoint.CheckpointError, match="saturation gain"):
            checkpoint.read(tiny_checkpoint)


def test_each_use_takes_its_own_saturation_gain(tiny_checkpoint, tmp_path):
    from colorstream.stream.jobs import Options, build_stages

    payload = torch.load(tiny_checkpoint, weights_only=True)
    legacy = tmp_path / "legacy.pt"  # one gain, as older checkpoints carry, serves both uses
    torch.save({**payload, "metadata": {**payload["metadata"], "saturation_gain": 1.3}}, legacy)
    assert load(legacy, device="cpu").saturation_gains == {"colourfulness": 1.3, "ab_error": 1.3}
    both = tmp_path / "both.pt"
    gains = {"colourfulness": 1.2, "ab_error": 0.95}
    torch.save({**payload, "metadata": {**payload["metadata"], "saturation_gains": gains}}, both)
    predictor = load(both, device="cpu")
    assert predictor.saturation_gain == 1.2  # stills: invert, draw, evaluate
    infer = {stage.name: stage.process for stage in build_stages(predictor, Options(), live=False)}["inference"]
    assert infer.saturation_gain == 0.95  # video: colorize, live, evaluate-video
    override = build_stages(predictor, Options(saturation=1.5), live=False)
    assert {stage.name: stage.process for stage in override}["inference"].saturation_gain == 1.5


def test_flip_averaged_prediction_of_a_symmetric_sketch_is_symmetric(tiny_checkpoint):
    predictor = load(tiny_checkpoint, device="cpu")
    half = np.random.default_rng(1).integers(0, 256, (32, 16), dtype=np.uint8)
    symmetric = np.hstack([half, half[:, ::-1]])
    photo = predictor.predict([symmetric])[0]
    assert np.abs(photo.astype(int) - photo[:, ::-1]).max() <= 1
    single = predictor.predict([symmetric], flip_average=False)[0]
    assert np.abs(single.astype(int) - single[:, ::-1]).max() > 1  # the net alone is not symmetric


def test_folding_batchnorm_into_convs_keeps_the_outputs(tiny_checkpoint):
    from colorstream.model.net import fold_batchnorm

    torch.manual_seed(0)
    net = build(ModelConfig(base_channels=4, levels=2, res_blocks=1)).eval()
    for module in net.modules():  # statistics and affine terms far from the identity, so a wrong fold shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)
    x = torch.rand(3, 1, 16, 16)
    with torch.inference_mode():
        before = net(x)
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(folded(x), before, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in load(tiny_checkpoint, device="cpu").net.modules())


def test_invert_works_on_the_whole_sketch_at_the_scale_of_its_face():
    from colorstream import imageops
    from colorstream.model.inference import WHOLE_SKETCH_MAX_VIEWS

    predictor = load("sketch", "cpu")
    sketch = cv2.imread(str(SAMPLES / "astronaut_pencil.png"), cv2.IMREAD_GRAYSCALE)
    portrait = cv2.copyMakeBorder(sketch, 40, 200, 120, 120, cv2.BORDER_CONSTANT, value=255)  # room around the face
    scales, shapes = [], []
    invert_whole, predict_prepared = predictor.invert_whole, predictor.predict_prepared
    predictor.invert_whole = lambda gray, scale, paper: scales.append(scale) or invert_whole(gray, scale, paper)
    predictor.predict_prepared = lambda x, *a, **k: shapes.append(x.shape) or predict_prepared(x, *a, **k)
    blank = np.full((150, 300), 250, np.uint8)
    photos = predictor.invert([portrait, blank])
    assert [p.shape for p in photos] == [portrait.shape + (3,), (150, 300, 3)]
    face = imageops.square_box(imageops.find_sketch_face(portrait), predictor.crop_margin)
    assert scales == [pytest.approx(predictor.resolution / face.w), pytest.approx(predictor.resolution / 300)]
    multiple = 8
    assert all(h % multiple == 0 and w % multiple == 0 for _, h, w in shapes)  # padded to the net's multiple
    # a tiny face in a huge sketch may not blow the whole pass up: at most WHOLE_SKETCH_MAX_VIEWS views per side
    shapes.clear()
    assert predictor.invert_whole(np.full((40, 4000), 255, np.uint8), 10.0, 255).shape == (40, 4000, 3)
    assert max(shapes[0][1:]) <= WHOLE_SKETCH_MAX_VIEWS * predictor.resolution + multiple
