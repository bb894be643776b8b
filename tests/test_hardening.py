"""What a careless or hostile user does: outputs onto inputs, rewriting shipped weights, two runs to one output,
signals, bad flag values, unwritable and odd paths. Nothing may be lost and nothing may print a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SAMPLES, tiny_metadata
from media import moving_face_frames, read_video, write_video
from test_cli import assert_one_line_error, default_sigint, run


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "colorstream.cli", *args]


@pytest.fixture
def clip(tmp_path, portrait) -> Path:
    return write_video(tmp_path / "clip.mp4", moving_face_frames(portrait, 12, 160, 120), audio_seconds=0.5)


def digest(path: Path) -> bytes:
    return path.read_bytes()


# ---------------------------------------------------------------------------- outputs never replace inputs


def test_colorize_refuses_to_write_over_its_input_however_it_is_spelled(tmp_path, clip, tiny_checkpoint):
    before = digest(clip)
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    hard = tmp_path / "hard.mp4"
    os.link(clip, hard)
    for target in (str(clip), os.path.relpath(clip), str(tmp_path / "." / "clip.mp4"), str(link), str(hard)):
        result = run("colorize", str(clip), "-o", target, "--model", str(tiny_checkpoint), "--overwrite", "--quiet")
        assert_one_line_error(result, "refusing to overwrite an input")
        assert result.returncode == 1
    assert digest(clip) == before and not list(tmp_path.glob(".*partial*"))


def test_outputs_into_the_inputs_folder_are_refused(tmp_path, clip, tiny_checkpoint, portrait):
    folder = tmp_path / "dir"
    folder.mkdir()
    sketch = folder / "a.png"
    shutil.copy(SAMPLES / "astronaut_line.png", sketch)
    before = digest(sketch)
    assert_one_line_error(run("invert", str(sketch), "-o", str(folder), "--model", str(tiny_checkpoint),
                              "--overwrite"), "refusing to overwrite an input")
    assert digest(sketch) == before
    video, still = folder / "b.mp4", folder / "c.png"
    shutil.copy(clip, video)
    cv2.imwrite(str(still), portrait)
    originals = {path: digest(path) for path in (video, still)}
    assert_one_line_error(run("colorize", str(video), str(still), "-o", str(folder), "--model",
                              str(tiny_checkpoint), "--overwrite", "--quiet"), "refusing to overwrite an input")
    assert {path: digest(path) for path in originals} == originals


def test_a_report_may_not_name_an_input_or_the_output(tmp_path, clip, tiny_checkpoint):
    out = tmp_path / "out.mp4"
    result = run("colorize", str(clip), "-o", str(out), "--stats-json", str(out), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "refusing to overwrite an input")
    before = digest(clip)
    result = run("colorize", str(clip), "-o", str(out), "--stats-json", str(clip), "--model", str(tiny_checkpoint))
    assert_one_line_error(result, "refusing to overwrite an input")
    assert digest(clip) == before and not out.exists()


def data_folder(folder: Path, photo: str, image: np.ndarray, keep: Path) -> tuple[Path, dict[Path, bytes]]:
    """A data folder of one photo, and the bytes of that photo and of `keep`, to check that neither changes."""
    folder.mkdir()
    cv2.imwrite(str(folder / photo), image)
    return folder / photo, {path: digest(path) for path in (folder / photo, keep)}


def test_a_report_replaces_an_earlier_report_but_not_a_clip_or_a_photo_of_the_scored_folder(tmp_path, clip,
                                                                                         tiny_checkpoint, portrait):
    photo, originals = data_folder(tmp_path / "photos", "street.png", portrait, clip)
    scoring = ["evaluate", "--photos", str(photo.parent), "--model", str(tiny_checkpoint), "--scope", "faces"]
    assert_one_line_error(run(*scoring, "--stats-json", str(photo)), "refusing to overwrite an input")
    assert_one_line_error(run(*scoring, "--stats-json", str(clip)), "is not a text report; not replaced")
    assert {path: digest(path) for path in originals} == originals
    report = tmp_path / "scores.json"
    report.write_text('{"an earlier": "run"}\n')
    assert run(*scoring, "--stats-json", str(report)).returncode == 0
    assert json.loads(report.read_text())["photos"]["n"] == 1


def test_train_never_writes_over_its_data_or_its_starting_weights(tmp_path, tiny_checkpoint, portrait):
    start = tmp_path / "start.pt"
    shutil.copy(tiny_checkpoint, start)
    photo, originals = data_folder(tmp_path / "faces", "celeba_1_000001.jpg", portrait, start)
    for out, more in ((photo, []), (start, ["--init", str(start)])):
        assert_one_line_error(run("train", str(photo.parent), "--out", str(out), "--overwrite", "--steps", "1", *more),
                              "refusing to overwrite an input")
    assert {path: digest(path) for path in originals} == originals


def test_finished_outputs_are_replaced_only_with_overwrite(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    args = ["invert", str(SAMPLES / "astronaut_line.png"), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert run(*args).returncode == 0
    (out / "astronaut_line.png").write_bytes(b"the user's edit")
    assert_one_line_error(run(*args), "already exists; not replaced (pass --overwrite")
    assert (out / "astronaut_line.png").read_bytes() == b"the user's edit"
    assert run(*args, "--overwrite").returncode == 0
    assert cv2.imread(str(out / "astronaut_line.png")) is not None


# ---------------------------------------------------------------------------- the shipped weights are never rewritten


def test_evaluate_record_and_calibrate_never_touch_bundled_weights(tmp_path):
    from colorstream.model.inference import BUNDLED

    before = {name: digest(path) for name, path in BUNDLED.items() if path.exists()}
    faces = tmp_path / "faces"
    faces.mkdir()
    for args in (["evaluate", "--record", "--faces", str(faces)],
                 ["evaluate", "--record", "--faces", str(faces), "--model", "video"],
                 ["evaluate", "--record", "--faces", str(faces), "--model", str(BUNDLED["sketch"])],
                 ["calibrate", "--faces", str(faces), "--model", "sketch"],
                 ["calibrate", "--faces", str(faces), "--model", str(BUNDLED["video"])]):
        assert_one_line_error(run(*args), "the bundled models are never rewritten")
    result = run("calibrate", "--faces", str(faces))
    assert result.returncode == 2 and "--model" in result.stderr  # a path must be given
    assert {name: digest(path) for name, path in BUNDLED.items() if path.exists()} == before


def test_nothing_is_written_inside_the_package(tmp_path, tiny_checkpoint):
    from colorstream.files import OutputError, write_bytes_atomic
    from colorstream.model import checkpoint
    from colorstream.model.inference import WEIGHTS
    from colorstream.model.net import ModelConfig, build

    config = ModelConfig(base_channels=4, levels=2, res_blocks=1)
    with pytest.raises(OutputError, match="inside the installed colorstream package"):
        checkpoint.save(WEIGHTS / "sketch.pt", build(config), tiny_metadata(config))
    with pytest.raises(OutputError, match="inside the installed colorstream package"):
        write_bytes_atomic(WEIGHTS / "notes.txt", b"x")
    assert not (WEIGHTS / "notes.txt").exists()
    assert_one_line_error(run("train", str(tmp_path), "--out", str(WEIGHTS / "video.pt")), "inside the installed")
    assert_one_line_error(run("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(WEIGHTS),
                              "--model", str(tiny_checkpoint)), "inside the installed")


# ---------------------------------------------------------------------------- two runs to one output


def test_two_runs_to_one_output_never_mix(tmp_path, portrait, tiny_checkpoint):
    small = write_video(tmp_path / "small.mp4", moving_face_frames(portrait, 30, 160, 120))
    large = write_video(tmp_path / "large.mp4", moving_face_frames(portrait, 40, 240, 180))
    out = tmp_path / "out.mp4"
    runs = [subprocess.Popen(command("colorize", str(source), "-o", str(out), "--model", str(tiny_checkpoint),
                                     "--quiet"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for source in (small, large)]
    results = [(process.wait(timeout=300), *process.communicate()) for process in runs]
    for status, _, stderr in results:
        assert "Traceback" not in stderr
        # the loser is refused: the winner's file appeared while it wrote, or (a loaded machine starts it
        # late) before it began
        assert status == 0 or "appeared while this run was writing it" in stderr or "already exists" in stderr
    assert sum(status == 0 for status, _, _ in results) >= 1
    frames, _, facts = read_video(out)  # one run's whole output, never a mixture
    assert (len(frames), facts["width"]) in ((30, 160), (40, 240))
    winner = 0 if facts["width"] == 160 else 1
    assert results[winner][0] == 0
    assert not list(tmp_path.glob(".*partial*"))


# ---------------------------------------------------------------------------- signals


def partial_output_in(folder: Path) -> bool:
    """Whether a `.partial` file is anywhere under `folder`; a temporary folder the run removes while it is
    walked counts as none (bench makes and removes one per clip)."""
    try:
        return any(folder.rglob("*.partial*"))
    except FileNotFoundError:
        return False


def wait_for(predicate, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, portrait, tiny_checkpoint, signum, status):
    source = write_video(tmp_path / "long.mp4", moving_face_frames(portrait, 600, 320, 240))
    target = tmp_path / "out.mp4"
    process = subprocess.Popen(command("colorize", str(source), "-o", str(target), "--model", str(tiny_checkpoint),
                                       "--quiet"), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(tmp_path.glob(".out.partial*")), process)
    time.sleep(0.3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr and "Traceback" not in stderr
    assert not target.exists() and not list(tmp_path.glob(".out.partial*"))


def test_sigterm_while_frames_wait_for_a_far_keyframe_stops_at_once(tmp_path, portrait, tiny_checkpoint):
    """Frames 1 to 598 wait for keyframe 599's colour, which the pass beside the pipeline brings back only after
    reading the whole clip: an interrupt must not wait for it."""
    frames = moving_face_frames(portrait, 600, 320, 240)
    source = write_video(tmp_path / "long.mp4", frames)
    keys = []
    for index in (0, 599):
        cv2.imwrite(str(tmp_path / f"{index}.png"), frames[index])
        keys += ["--keyframe", f"{index}={tmp_path / f'{index}.png'}"]
    target = tmp_path / "out.mp4"
    process = subprocess.Popen(command("colorize", str(source), "-o", str(target), "--model", str(tiny_checkpoint),
                                       *keys, "--quiet"), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(tmp_path.glob(".out.partial*")), process)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert time.monotonic() - signalled < 2.5  # not the interrupt handler's 3-second deadline, nor the pass's end
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    assert not target.exists() and not list(tmp_path.glob(".out.partial*"))


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    process = subprocess.Popen(command("invert", str(SAMPLES / "astronaut_line.png"), "-o", str(tmp_path / "o")),
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    time.sleep(0.4)  # parsing is done; torch is loading
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (130, 0), stderr
    assert "Traceback" not in stderr
    if process.returncode == 130:
        assert "interrupted (SIGINT)" in stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_live_keeps_its_recording_and_stats_when_stopped_by_a_signal(tmp_path, portrait, tiny_checkpoint, signum):
    source = write_video(tmp_path / "cam.mp4", moving_face_frames(portrait, 750, 160, 120))  # 30 s at 25 fps
    record, stats = tmp_path / "rec.mp4", tmp_path / "live.json"
    process = subprocess.Popen(command("live", "--source", str(source), "--no-window", "--record", str(record),
                                       "--stats-json", str(stats), "--model", str(tiny_checkpoint)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    wait_for(lambda: list(tmp_path.glob(".rec.partial*")), process)
    time.sleep(1.5)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and f"stopped by {signal.Signals(signum).name}" in stdout
    report = json.loads(stats.read_text())
    assert report["stopped_by"] == signal.Signals(signum).name and report["frames"] > 5
    assert len(read_video(record)[0]) == report["frames"]  # finalised: every rendered frame decodes
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("args", [["evaluate-video"], ["bench", "--no-live", "--repeats", "1"]])
def test_evaluation_and_bench_leave_no_temporary_folders_on_sigterm(tmp_path, portrait, tiny_checkpoint, args):
    source = write_video(tmp_path / "long.mp4", moving_face_frames(portrait, 400, 320, 240))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(command(*args, str(source), "--model", str(tiny_checkpoint)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(scratch)})
    wait_for(lambda: partial_output_in(scratch), process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    deadline = time.time() + 10  # bench's colorize child cleans up as it exits
    while list(scratch.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert list(scratch.iterdir()) == []


# ---------------------------------------------------------------------------- flag values


BAD_VALUES = [
    ("colorize", "--crf", "-5"), ("colorize", "--crf", "52"), ("colorize", "--threads", "-1"),
    ("colorize", "--threads", "0"), ("colorize", "--detect-every", "0"), ("colorize", "--detect-side", "0"),
    ("colorize", "--reach", "0"), ("colorize", "--saturation", "-1"), ("colorize", "--saturation", "inf"),
    ("colorize", "--saturation", "nan"), ("colorize", "--saturation", "0"), ("colorize", "--window", "0"),
    ("colorize", "--batch-frames", "0"), ("colorize", "--min-face", "1"), ("colorize", "--preset", "turbo"),
    ("colorize", "--codec", "nonsense"), ("colorize", "--codec", "aac"), ("live", "--size", "0x0"),
    ("live", "--camera", "-1"), ("bench", "--repeats", "0"), ("bench", "--live-size", "big"),
    ("train", "--batch-size", "0"), ("train", "--resolution", "0"), ("train", "--steps", "0"),
    ("train", "--lr", "0"), ("train", "--lr", "nan"), ("train", "--real-fraction", "2"),
    ("train", "--crop-margin", "0.5"), ("train", "--eval-every", "0"), ("train", "--levels", "0"),
    ("invert", "--batch-size", "0"), ("evaluate", "--limit", "0"), ("evaluate", "--saturation", "-2"),
    ("calibrate", "--limit", "-3"), ("draw", "--port", "70000"),
]


@pytest.mark.parametrize("subcommand, flag, value", BAD_VALUES)
def test_every_numeric_flag_is_checked_when_parsed(subcommand, flag, value, capsys):
    from colorstream.cli import main

    positional = {"colorize": ["in.mp4", "-o", "out.mp4"], "train": ["faces"], "invert": ["s.png", "-o", "o"],
                  "calibrate": ["--model", "m.pt", "--faces", "f"]}.get(subcommand, [])
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, *positional, flag, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in error and ("expected" in error or "invalid choice" in error or "encoder" in error), error


def test_no_arguments_prints_help_and_the_usual_entry_points_work():
    result = subprocess.run(command(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage: colorstream" in result.stdout and "colorize" in result.stdout
    from importlib.metadata import version

    for entry in (command("--version"), [sys.executable, "-m", "colorstream", "--version"]):
        result = subprocess.run(entry, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == f"colorstream {version('colorstream')}"


# ---------------------------------------------------------------------------- one-line errors


@contextmanager
def immutable(folder: Path):
    """A folder nobody can write in, root included (root ignores permission bits, not the immutable flag)."""
    folder.mkdir(exist_ok=True)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_unwritable_folders_are_one_line_errors_before_any_work(tmp_path, clip, tiny_checkpoint):
    with immutable(tmp_path / "locked") as locked:
        for args in (["colorize", str(clip), "-o", str(locked / "o.mp4")],
                     ["live", "--source", str(clip), "--no-window", "--record", str(locked / "r.mp4")],
                     ["train", str(tmp_path), "--out", str(locked / "m.pt")],
                     ["colorize", str(clip), "-o", str(tmp_path / "o.mp4"), "--stats-json", str(locked / "s.json")],
                     ["bench", str(clip), "--markdown", str(locked / "B.md")]):
            assert_one_line_error(run(*args, "--model", str(tiny_checkpoint)) if args[0] != "train" else run(*args),
                                  "cannot write there")
        assert list(locked.iterdir()) == []
    assert not (tmp_path / "o.mp4").exists()  # the report was checked before the run, not after it


def test_images_stay_images_and_videos_stay_videos(tmp_path, clip, tiny_checkpoint, portrait):
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), portrait)
    assert_one_line_error(run("colorize", str(still), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_checkpoint)),
                          "is an image, so the output is one too")
    assert_one_line_error(run("colorize", str(clip), "-o", str(tmp_path / "o.png"), "--model", str(tiny_checkpoint)),
                          "give the output video one of the extensions")
    assert_one_line_error(run("bench", str(still), "--no-live", "--model", str(tiny_checkpoint)),
                          "is an image; bench measures video clips")
    assert not list(tmp_path.glob("o.*"))


def test_image_entries_in_stats_name_their_input_and_output(tmp_path, portrait, tiny_checkpoint):
    still, out, stats = tmp_path / "still.png", tmp_path / "out.png", tmp_path / "s.json"
    cv2.imwrite(str(still), portrait)
    assert run("colorize", str(still), "-o", str(out), "--stats-json", str(stats),
               "--model", str(tiny_checkpoint)).returncode == 0
    entry = json.loads(stats.read_text())["files"][0]
    assert entry["input"] == str(still) and entry["output"] == str(out)


def test_evaluate_video_scores_the_good_clips_past_a_bad_one(tmp_path, clip, tiny_checkpoint):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    stats = tmp_path / "eval.json"
    result = run("evaluate-video", str(bad), str(clip), "--model", str(tiny_checkpoint), "--stats-json", str(stats))
    assert_one_line_error(result, "bad.mp4: not a readable video")
    assert result.returncode == 3 and "1 scored, 1 failed" in result.stderr
    report = json.loads(stats.read_text())
    assert [c["clip"] for c in report["clips"]] == ["clip.mp4"] and len(report["failures"]) == 1


def test_a_failed_training_run_leaves_no_empty_log_folder(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "blank.jpg"), np.full((64, 64, 3), 90, np.uint8))  # no face in it
    result = run("train", str(faces), "--out", str(tmp_path / "runs" / "m.pt"), "--cache-dir", str(tmp_path / "c"))
    assert_one_line_error(result, "too few faces")
    assert not (tmp_path / "runs" / "m_logs").exists() and not (tmp_path / "runs" / "m.pt").exists()


def test_a_second_training_run_to_the_same_output_is_refused_while_the_first_runs(tmp_path):
    from colorstream.files import held_folder

    faces, out = tmp_path / "faces", tmp_path / "runs" / "m.pt"
    faces.mkdir()
    with held_folder(out.with_name("m_logs"), "held"):  # the first run, training
        result = run("train", str(faces), "--out", str(out), "--cache-dir", str(tmp_path / "c"))
        assert_one_line_error(result, "another colorstream train is writing it (its m_logs folder is held)")
        assert out.with_name("m_logs").is_dir()  # the first run's folder, untouched
    assert not out.with_name("m_logs").exists() and not out.exists()  # made by the first run, left empty, removed


def test_full_disk_mid_write_is_one_line_and_leaves_nothing(tmp_path, portrait, tiny_checkpoint):
    import resource

    source = write_video(tmp_path / "in.mp4", moving_face_frames(portrait, 60, 320, 240))
    target = tmp_path / "out.mp4"

    def small_files() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails as a full disk does
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    result = subprocess.run(command("colorize", str(source), "-o", str(target), "--model", str(tiny_checkpoint),
                                    "--quiet", "--crf", "0"), capture_output=True, text=True, timeout=300,
                            preexec_fn=small_files)
    assert_one_line_error(result, "cannot write")
    assert not target.exists() and not list(tmp_path.glob(".*partial*"))


# the keyframe's fine colour (76,800 bytes) is past the first limit: it fails before the pass; the second
# fails in the pass's thread beside the pipeline, at its first frame (221,184 bytes)
@pytest.mark.parametrize("limit", [40_000, 100_000])
def test_a_full_disk_under_the_keyframes_temporary_file_says_where(tmp_path, portrait, tiny_checkpoint, limit):
    import resource

    frames = moving_face_frames(portrait, 8, 320, 240)
    source = write_video(tmp_path / "in.mp4", frames)
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])
    target = tmp_path / "out.mp4"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(command("colorize", str(source), "-o", str(target), "--model", str(tiny_checkpoint),
                                    "--scope", "faces", "--keyframe", f"0={tmp_path / '0.png'}", "--quiet"),
                            capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert_one_line_error(result, "keyframes' temporary file")
    assert "TMPDIR" in result.stderr and not target.exists()
    assert "stage failed" not in result.stderr  # the pass's own error, though it ran beside the pipeline


# ---------------------------------------------------------------------------- the Python API


def test_predictor_wants_a_list_of_images(tiny_checkpoint, portrait):
    from colorstream.model.inference import load

    predictor = load(tiny_checkpoint, device="cpu")
    with pytest.raises(TypeError, match=r"invert\(\[image\]\)"):
        predictor.invert(portrait)
    with pytest.raises(ValueError, match="image 0 is NoneType"):
        predictor.invert([None])
    with pytest.raises(ValueError, match="float64"):
        predictor.predict([portrait.astype(np.float64)])
    assert len(predictor.invert([portrait])) == 1


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    import torch

    from colorstream.model import checkpoint
    from colorstream.model.inference import load
    from colorstream.model.net import ModelConfig, build

    config = ModelConfig(base_channels=4, levels=2, res_blocks=1)
    net = build(config)
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")
    checkpoint.save(tmp_path / "nan.pt", net, tiny_metadata(config))
    with pytest.raises(checkpoint.CheckpointError, match="NaN or infinite"):
        load(tmp_path / "nan.pt", device="cpu")


def test_an_interrupt_waits_for_stage_threads_but_not_for_ever():
    import threading

    from colorstream.cli import let_threads_finish

    done = threading.Event()
    finishing = threading.Thread(target=lambda: (time.sleep(0.3), done.set()), daemon=True)
    stuck = threading.Thread(target=threading.Event().wait, daemon=True)  # never ends
    finishing.start()
    stuck.start()
    started = time.monotonic()
    let_threads_finish(deadline_s=1.0)
    assert done.is_set() and 0.9 <= time.monotonic() - started < 2.0
