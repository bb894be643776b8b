"""The `colorstream` command as a user runs it: a subprocess, exit codes, stderr, files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import SAMPLES, tiny_metadata
from colorstream.model.inference import BUNDLED


def default_sigint() -> None:
    """For Popen's preexec_fn: a child started from a background shell inherits SIGINT ignored, and then
    Python installs no KeyboardInterrupt handler; the Ctrl-C tests need the usual one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colorstream.cli", *args], capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_invert_writes_same_size_pngs_with_the_bundled_model(tmp_path):
    odd = tmp_path / "odd.jpg"
    sketch = cv2.imread(str(SAMPLES / "astronaut_pencil.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(odd), cv2.resize(sketch, (131, 97)))
    result = run("invert", str(SAMPLES / "astronaut_pencil.png"), str(odd), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    photo = cv2.imread(str(tmp_path / "out" / "astronaut_pencil.png"))
    assert photo.shape == (256, 256, 3)
    assert cv2.imread(str(tmp_path / "out" / "odd.png")).shape == (97, 131, 3)
    b, g, r = cv2.split(photo.astype(np.int16))
    assert np.abs(r - b).mean() > 3  # a colour photo, not a gray copy of the sketch
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut_pencil.png", "odd.png"]


def test_invert_saturation_sets_how_colourful_the_photo_is(tmp_path):
    sketch = str(SAMPLES / "astronaut_pencil.png")
    chroma = {}
    for gain in ("0.5", "1.5"):
        result = run("invert", sketch, "-o", str(tmp_path / gain), "--saturation", gain)
        assert result.returncode == 0, result.stderr
        lab = cv2.cvtColor(cv2.imread(str(tmp_path / gain / "astronaut_pencil.png")), cv2.COLOR_BGR2LAB)
        chroma[gain] = np.abs(lab[..., 1:].astype(np.float64) - 128).mean()
    assert chroma["1.5"] > 2 * chroma["0.5"]
    assert_one_line_error(run("invert", sketch, "-o", str(tmp_path / "x"), "--saturation", "0"), "--saturation")
    assert not (tmp_path / "x").exists()


def test_invert_keeps_good_files_and_reports_bad_ones(tmp_path, tiny_checkpoint):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    result = run("invert", str(SAMPLES / "astronaut_line.png"), str(bad), str(tmp_path / "absent.png"),
                 "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "notes.png: not a readable image")
    assert "absent.png: no such file" in result.stderr
    assert result.returncode == 3
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["astronaut_line.png"]


def test_invert_rejects_unreadable_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    result = run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(tmp_path / "out"), "--model", str(junk))
    assert_one_line_error(result, "not a readable checkpoint")
    assert not (tmp_path / "out").exists()  # a failed run leaves no empty output folder
    result = run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(tmp_path / "out"),
                 "--model", str(tmp_path / "missing.pt"))
    assert_one_line_error(result, "checkpoint not found")
    result = run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(tmp_path / "out"), "--model", "skech")
    assert_one_line_error(result, "skech: checkpoint not found (bundled models: sketch, video, scene, scene-stills)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_invert_rejects_unwritable_output_as_user(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(locked / "out"))
    assert_one_line_error(result, "cannot write there")


def test_invert_rejects_output_path_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(blocker / "out"))
    assert_one_line_error(result, "cannot write there")


def test_all_inputs_bad_is_a_plain_failure(tmp_path, tiny_checkpoint):
    result = run("invert", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "0 written, 1 failed")
    assert result.returncode == 1


def test_evaluate_refuses_sketch_pairs_for_a_gray_input_model(tmp_path):
    from colorstream.model import checkpoint
    from colorstream.model.net import ModelConfig, build

    config = ModelConfig(base_channels=4, levels=2, res_blocks=1)
    metadata = {**tiny_metadata(config), "input_kind": "gray", "sketch_params": {}, "normalize_sketch": False}
    checkpoint.save(tmp_path / "gray.pt", build(config), metadata)
    result = run("evaluate", "--model", str(tmp_path / "gray.pt"), "--pairs", str(tmp_path))
    assert_one_line_error(result, "cannot be scored on sketch pairs")


def test_train_and_evaluate_reject_missing_folders(tmp_path):
    assert_one_line_error(run("train", str(tmp_path / "none")), "no such directory")
    assert_one_line_error(run("train", str(tmp_path), "--holdout-style", "0", "--out", str(tmp_path / "m.pt")),
                          "needs real pairs")
    assert_one_line_error(run("evaluate", "--faces", str(tmp_path / "none")), "no such directory")
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "wall.png"), np.full((80, 80, 3), 128, np.uint8))
    assert_one_line_error(run("evaluate", "--faces", str(blank), "--split", "all", "--cache-dir", str(tmp_path)),
                          "no face to score in its all split (Haar finds one in 0 of its 1 images)")


@pytest.mark.parametrize("name, input_kind, metrics", [("sketch", "pencil", {"faces_test", "pairs_test"}),
                                                       ("video", "gray", {"faces_test"}),
                                                       ("scene", "gray", {"val_ab_error_ratio"}),
                                                       ("scene-stills", "gray", {"val_ab_error_ratio"})])
def test_bundled_models_carry_their_metadata(name, input_kind, metrics):
    from colorstream.model import checkpoint

    metadata = checkpoint.read(BUNDLED[name])["metadata"]
    assert BUNDLED[name].stat().st_size <= 20 * 2 ** 20
    assert metadata["input_kind"] == input_kind and metadata["resolution"] > 0
    assert metadata["training"]["data_fingerprint"]["faces"]
    assert metadata["training"]["command"].startswith("colorstream train")
    assert metrics <= set(metadata["metrics"])


def test_invert_refuses_to_overwrite_its_own_output_from_a_second_input_with_the_same_stem(tmp_path, tiny_checkpoint):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sketch = cv2.imread(str(SAMPLES / "astronaut_line.png"))
    cv2.imwrite(str(tmp_path / "a" / "face.png"), sketch)
    cv2.imwrite(str(tmp_path / "b" / "face.png"), sketch)
    result = run("invert", str(tmp_path / "a" / "face.png"), str(tmp_path / "b" / "face.png"),
                 "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "is already taken by")
    assert result.returncode == 3 and [p.name for p in (tmp_path / "out").iterdir()] == ["face.png"]
