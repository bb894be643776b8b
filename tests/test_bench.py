"""`colorstream bench`: it measures and reports; it asserts nothing about speed, and neither do these tests."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from colorstream import bench
from colorstream.cli import build_parser, stream_options
from media import moving_face_frames, write_video
from colorstream.model.inference import load
from colorstream.stream.jobs import Options
from test_cli import assert_one_line_error, run


def test_options_argv_rebuilds_the_same_options():
    options = replace(Options(), smoothing="ema", window=7, detect_every=2, batch_frames=4, preset="fast", crf=20)
    args = build_parser().parse_args(["colorize", "in.mp4", "-o", "out.mp4", *bench.options_argv(options)])
    assert stream_options(args) == options


def test_floor_decodes_and_encodes_every_frame(tmp_path, portrait):
    clip = write_video(tmp_path / "clip.mp4", moving_face_frames(portrait, 10, 160, 120))
    assert bench.clip_facts(clip) == {"clip": "clip.mp4", "size": "160x120", "frames": 10, "fps": 25.0,
                                      "seconds": 0.4}
    assert bench.floor_fps(clip, Options(), "ultrafast") > 0


def test_inference_timing_is_per_face(tiny_checkpoint):
    predictor = load(tiny_checkpoint, device="cpu")
    assert 0 < bench.inference_ms_per_face(predictor, 4, repeats=2) < 10_000


@pytest.mark.slow
def test_bench_command_writes_markdown_and_json(tmp_path, portrait, tiny_checkpoint):
    clip = write_video(tmp_path / "clip.mp4", moving_face_frames(portrait, 12, 160, 120), audio_seconds=0.5)
    report, stats = tmp_path / "BENCH.md", tmp_path / "bench.json"
    result = run("bench", str(clip), "--repeats", "1", "--model", str(tiny_checkpoint), "--device", "cpu",
                 "--live-size", "160x120", "--markdown", str(report), "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    results = json.loads(stats.read_text())
    clip_result = results["clips"][0]
    assert clip_result["frames"] == 12 and clip_result["colorize_fps"] > 0 and clip_result["floor_fps"] > 0
    assert clip_result["ratio_to_floor"] == pytest.approx(clip_result["colorize_fps"] / clip_result["floor_fps"],
                                                          abs=0.02)
    assert set(clip_result["ms_per_frame"]) >= {"decode", "detect", "inference", "composite", "encode"}
    assert clip_result["peak_rss_mib"] > 50
    assert set(results["inference_ms_per_face"]["cpu"]) == {"1", "8", "32"}
    assert results["live"]["frames_captured"] == 12 and results["live"]["p95_ms"] > 0
    text = report.read_text()
    assert "| clip.mp4 | 160x120 | 12 |" in text and results["command"] in text and "p95" in text


def test_bench_rejects_a_bad_clip_before_measuring(tmp_path, tiny_checkpoint):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    result = run("bench", str(bad), "--model", str(tiny_checkpoint), "--no-live")
    assert_one_line_error(result, "not a readable video")


def test_bench_without_clips_times_inference_alone(tmp_path, tiny_checkpoint):
    stats = tmp_path / "bench.json"
    result = run("bench", "--no-live", "--repeats", "1", "--model", str(tiny_checkpoint), "--device", "cpu",
                 "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    results = json.loads(stats.read_text())
    assert results["clips"] == [] and "live" not in results
    assert set(results["inference_ms_per_face"]["cpu"]) == {"1", "8", "32"}
    assert_one_line_error(run("bench", "--model", str(tiny_checkpoint)), "--no-live")
