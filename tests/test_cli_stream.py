"""`colorstream colorize` and `colorstream live` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from media import moving_face_frames, read_video, write_cut_video, write_two_video_streams, write_video
from test_cli import assert_one_line_error, default_sigint, run


@pytest.fixture
def clip(tmp_path, portrait):
    return write_video(tmp_path / "clip.mp4", moving_face_frames(portrait, 15, 160, 120), audio_seconds=0.6)


@pytest.mark.parametrize("command", [["colorize", "in.mp4", "-o", "out.mp4"], ["live"], ["bench", "--no-live"],
                                     ["evaluate-video", "clip.mp4"]])
def test_stream_commands_default_to_the_pipeline_options(command):
    from colorstream.cli import build_parser, stream_options
    from colorstream.stream.jobs import Options

    assert stream_options(build_parser().parse_args(command)) == Options()


def test_colorize_several_inputs_into_a_directory_with_stats(tmp_path, clip, portrait, tiny_checkpoint):
    image = tmp_path / "still.jpg"
    cv2.imwrite(str(image), portrait)
    stats = tmp_path / "stats.json"
    result = run("colorize", str(clip), str(image), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                 "--stats-json", str(stats), "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "colorstream-journal.jsonl", "still.jpg"]
    assert len(read_video(tmp_path / "out" / "clip.mp4")[0]) == 15
    report = json.loads(stats.read_text())
    assert report["failures"] == [] and report["files"][0]["frames"] == 15
    assert "fps" in result.stdout and "ms/frame" in result.stdout


def test_colorize_warns_of_a_cut_video_and_of_streams_left_behind(tmp_path, tiny_checkpoint):
    cut = write_cut_video(tmp_path)  # a faststart mp4 that states 50 frames, cut in half
    two = write_two_video_streams(tmp_path / "two.mkv")
    result = run("colorize", str(cut), str(two), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                 "--quiet")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    decoded = len(read_video(tmp_path / "out" / "cut.mp4")[0])  # the output keeps what could be decoded
    assert 10 <= decoded <= 40
    assert f"colorstream colorize: warning: {cut}: video ends after {decoded} of 50 frames the file states" in warnings
    assert (f"colorstream colorize: warning: {two}: dropped 2 streams (1 video, 1 subtitle): only the first video "
            "stream and the audio are kept") in warnings
    assert len(warnings) == 2


def test_colorize_reports_each_bad_input_and_keeps_the_good(tmp_path, clip, tiny_checkpoint):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    text = tmp_path / "notes.txt"
    text.write_text("a text file passed as video\n" * 50)
    result = run("colorize", str(clip), str(empty), str(noise), str(text), str(tmp_path / "absent.mp4"),
                 "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "--quiet")
    assert_one_line_error(result, "empty.mp4: empty file")
    assert "noise.mkv: not a readable video" in result.stderr and "absent.mp4: no such file" in result.stderr
    assert "notes.txt: not a readable video" in result.stderr
    assert result.returncode == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "colorstream-journal.jsonl"]


def test_colorize_rejects_bad_checkpoint_and_unwritable_output(tmp_path, clip):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(run("colorize", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(junk)),
                          "not a readable checkpoint")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run("colorize", str(clip), "-o", str(blocker / "sub" / "o.mp4")), "cannot write there")
    assert not (tmp_path / "o.mp4").exists()


def test_ctrl_c_leaves_no_file_under_the_final_name(tmp_path, portrait, tiny_checkpoint):
    source = write_video(tmp_path / "long.mp4", moving_face_frames(portrait, 600, 320, 240))
    target = tmp_path / "out.mp4"
    process = subprocess.Popen([sys.executable, "-m", "colorstream.cli", "colorize", str(source), "-o", str(target),
                                "--model", str(tiny_checkpoint), "--quiet"], stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.partial*")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not target.exists() and not list(tmp_path.glob(".out.partial*"))


def test_live_from_a_file_measures_latency_without_a_window(tmp_path, clip, tiny_checkpoint):
    stats = tmp_path / "live.json"
    record = tmp_path / "rec.mp4"
    result = run("live", "--source", str(clip), "--realtime", "--no-window", "--stats-json", str(stats),
                 "--record", str(record), "--size", "200x150", "--model", str(tiny_checkpoint))
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())
    assert report["frames"] + report["dropped"] >= 15 - 2 and report["frames"] > 0
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    frames, _, facts = read_video(record)
    assert len(frames) == report["frames"] and (facts["width"], facts["height"]) == (200, 150)
    assert b"subme=2 " in record.read_bytes()  # the preset's own motion search: a live frame waits for the encoder
    assert "latency p50" in result.stdout


def test_live_errors_name_the_camera_and_suggest_no_window(tmp_path, clip, tiny_checkpoint):
    assert_one_line_error(run("live", "--camera", "97", "--no-window", "--model", str(tiny_checkpoint)),
                          "camera 97 could not be opened")
    assert_one_line_error(run("live", "--source", str(clip), "--size", "big", "--no-window"), "expected WIDTHxHEIGHT")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "colorstream.cli", "live", "--source", str(clip), "--model",
                             str(tiny_checkpoint)], capture_output=True, text=True, env=env, timeout=120)
    assert_one_line_error(result, "use --no-window")


def test_evaluate_video_writes_report_and_strip_plots(tmp_path, clip, tiny_checkpoint):
    stats, plots = tmp_path / "eval.json", tmp_path / "plots"
    result = run("evaluate-video", str(clip), str(clip), "--smoothing", "flow", "--model", str(tiny_checkpoint),
                 "--stats-json", str(stats), "--plots", str(plots))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("mean over clips:") and "warp error" in lines[0]
    report = json.loads(stats.read_text())
    assert [c["smoothing"] for c in report["clips"]] == ["flow", "flow"]
    assert report["mean_over_clips"]["cdc_truth"] == pytest.approx(report["clips"][0]["cdc_truth"])
    assert {"excess_face_chroma_flicker", "warp_error_output", "ssim_output"} <= set(report["mean_over_clips"])
    assert cv2.imread(str(plots / "clip_flow_face_ab.png")) is not None
