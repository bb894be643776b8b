"""Whole folders: the walk and its mirror, the journal and --resume, worker processes, long videos in segments,
signals and crashes in the middle of a batch, and the Python API for video."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media import moving_face_frames, read_video, write_video
from test_cli import assert_one_line_error, run

JOURNAL = "colorstream-journal.jsonl"


def colorize(*args: str) -> list[str]:
    return [sys.executable, "-m", "colorstream.cli", "colorize", *args]


def journal(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / JOURNAL).read_text().splitlines() if line.strip()]


def started(folder: Path, output: str) -> int:
    return sum(record["output"] == output and record["state"] == "started" for record in journal(folder))


def assert_same_media(source: Path, output: Path) -> None:
    """The output has the input's frame count, size, timestamps and audio."""
    frames_in, times_in, facts_in = read_video(source)
    frames_out, times_out, facts_out = read_video(output)
    assert len(frames_out) == len(frames_in) and times_out == pytest.approx(times_in, abs=1e-3)
    assert (facts_out["width"], facts_out["height"]) == (facts_in["width"], facts_in["height"])
    assert [duration for _, duration in facts_out["audio"]] == pytest.approx(
        [duration for _, duration in facts_in["audio"]], abs=0.03)


def planes(path: Path) -> list[tuple[int, np.ndarray]]:
    """Every decoded frame's pts and its Y, Cb, Cr planes as they are stored."""
    with av.open(str(path)) as container:
        return [(frame.pts, frame.to_ndarray()) for frame in container.decode(container.streams.video[0])]


def no_leftovers(folder: Path) -> bool:
    """No temporary file or folder of pieces anywhere below `folder`."""
    return not [path for path in folder.rglob(".*") if ".partial-" in path.name or ".parts-" in path.name]


@pytest.fixture
def archive(tmp_path, portrait) -> Path:
    """A small collection: nested folders, videos with and without audio, a still, a text file, a hidden file
    and a broken video."""
    root = tmp_path / "archive"
    (root / "reel1" / "cans").mkdir(parents=True)
    (root / "stills").mkdir()
    write_video(root / "intro.mp4", moving_face_frames(portrait, 14, 160, 120), audio_seconds=0.56)
    write_video(root / "reel1" / "scene.mp4", moving_face_frames(portrait, 18, 160, 120))
    write_video(root / "reel1" / "cans" / "can.mov", moving_face_frames(portrait, 10, 160, 120), audio_seconds=0.4)
    cv2.imwrite(str(root / "stills" / "portrait.png"), cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY))
    (root / "stills" / "notes.txt").write_text("shot list\n")
    (root / "reel1" / ".DS_Store").write_bytes(b"\0\0")
    (root / "reel1" / "broken.mp4").write_bytes(b"not a video at all" * 100)
    return root


VIDEOS = ["intro.mp4", "reel1/scene.mp4", "reel1/cans/can.mov"]


def test_a_folder_is_walked_and_mirrored_past_an_output_folder_inside_it(archive, tiny_checkpoint, tmp_path):
    out = archive / "colour"  # inside the input folder: its outputs must not become inputs
    stats = tmp_path / "stats.json"
    result = run("colorize", str(archive), "-o", str(out), "--model", str(tiny_checkpoint), "--scope", "faces",
                 "--quiet", "--stats-json", str(stats))
    assert result.returncode == 3, result.stderr  # some failed: the broken video
    assert "Traceback" not in result.stderr
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()) == sorted(
        [JOURNAL, *VIDEOS, "stills/portrait.png"])
    for name in VIDEOS:
        assert_same_media(archive / name, out / name)
    errors = result.stderr.splitlines()
    assert errors.count(f"colorstream colorize: skipped {archive / 'stills' / 'notes.txt'}: not a video or image "
                        "file") == 1
    assert any(f"{archive / 'reel1' / 'broken.mp4'}: not a readable video" in line for line in errors)
    assert not any("DS_Store" in line for line in errors)  # hidden files are passed over quietly
    report = json.loads(stats.read_text())
    assert report["batch"] | {"seconds": 0, "fps": 0, "files_per_hour": 0} == {
        "inputs": 5, "done": 4, "skipped_done_before": 0, "failed": 1, "not_media": 1,
        "frames": 14 + 18 + 10 + 1, "seconds": 0, "fps": 0, "files_per_hour": 0, "engine": "inline", "workers": 1,
        "segment_seconds": 0.0}
    assert report["skipped"]["not_media"] == [str(archive / "stills" / "notes.txt")]
    states = {(record["output"], record["state"]) for record in journal(out)}
    assert ("reel1/broken.mp4", "failed") in states and ("reel1/scene.mp4", "done") in states
    done = next(record for record in journal(out) if record["output"] == "intro.mp4" and record["state"] == "done")
    assert done["frames"] == 14 and done["size"] == (archive / "intro.mp4").stat().st_size
    assert done["output_size"] == (out / "intro.mp4").stat().st_size and done["settings"]["scope"] == "faces"


def test_existing_outputs_are_named_and_need_resume_or_overwrite(archive, tiny_checkpoint, tmp_path):
    from colorstream.stream import api
    from colorstream.stream.jobs import Models, Options

    out = tmp_path / "out"
    args = ["colorize", str(archive), "-o", str(out), "--model", str(tiny_checkpoint), "--scope", "faces", "--quiet"]
    assert run(*args).returncode == 3
    before = {name: (out / name).stat().st_mtime_ns for name in VIDEOS}
    result = run(*args)
    assert_one_line_error(result, "already exist; not replaced: pass --resume")
    assert result.returncode == 1 and str(out / "intro.mp4") in result.stderr and "--overwrite" in result.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in VIDEOS} == before

    def resume(**options) -> dict:  # the same batch from Python, which is quicker to start
        return api.colorize_batch([archive], out, Options(scope="faces", **options), Models(str(tiny_checkpoint)),
                                  resume=True)

    # the four done are skipped; only the broken one is tried again
    assert resume()["batch"]["skipped_done_before"] == 4
    assert {name: (out / name).stat().st_mtime_ns for name in VIDEOS} == before
    assert started(out, "intro.mp4") == 1 and started(out, "reel1/broken.mp4") == 2

    # an input changed since, and then other settings: made again
    write_video(archive / "intro.mp4", moving_face_frames(np.zeros((256, 256, 3), np.uint8), 6, 160, 120))
    assert resume()["batch"]["done"] == 1 and started(out, "intro.mp4") == 2 and started(out, "reel1/scene.mp4") == 1
    assert len(read_video(out / "intro.mp4")[0]) == 6
    counts = {name: started(out, name) for name in VIDEOS}
    assert resume(crf=30)["batch"]["done"] == 4
    assert {name: started(out, name) for name in VIDEOS} == {name: count + 1 for name, count in counts.items()}

    # a file the journal does not know is never replaced by --resume
    (out / "reel1" / "scene.mp4").write_bytes(b"the user's own file")
    with pytest.raises(ValueError, match="does not show them made there"):
        resume(crf=31)
    assert (out / "reel1" / "scene.mp4").read_bytes() == b"the user's own file"


def test_a_torn_journal_line_is_skipped_and_the_next_record_starts_a_new_line(archive, tiny_checkpoint, tmp_path):
    from colorstream.stream import api
    from colorstream.stream.jobs import Models, Options
    from colorstream.stream.journal import read

    out = tmp_path / "out"

    def colour(**flags) -> dict:
        return api.colorize_batch([archive / "intro.mp4", archive / "reel1"], out, Options(scope="faces"),
                                  Models(str(tiny_checkpoint)), **flags)

    colour()
    with open(out / JOURNAL, "ab") as handle:  # a crash in the middle of a write
        handle.write(b'{"output": "intro.mp4", "state": "sta')
    assert read(out / JOURNAL)["intro.mp4"]["state"] == "done"
    assert colour(resume=True)["batch"]["skipped_done_before"] == 3  # broken.mp4 is tried again
    lines = (out / JOURNAL).read_text().splitlines()
    torn = lines.index('{"output": "intro.mp4", "state": "sta')
    assert [json.loads(line)["output"] for line in lines[torn + 1:]] == ["broken.mp4", "broken.mp4"]


def test_one_run_at_a_time_works_in_a_folder_and_resume_needs_one(archive, tiny_checkpoint, tmp_path):
    from colorstream.stream import api
    from colorstream.stream.jobs import Models, Options
    from colorstream.stream.journal import Journal

    out = tmp_path / "out"
    out.mkdir()
    holder = Journal(out)
    holder.open()  # another run, working in the folder
    try:
        with pytest.raises(ValueError, match="another colorstream run is working in this folder"):
            api.colorize_batch([archive], out, Options(scope="faces"), Models(str(tiny_checkpoint)))
    finally:
        holder.close()
    assert sorted(path.name for path in out.iterdir()) == [JOURNAL]  # the other run's journal, untouched
    assert_one_line_error(run("colorize", str(archive / "intro.mp4"), "-o", str(tmp_path / "one.mp4"), "--resume",
                              "--model", str(tiny_checkpoint)), "--resume needs an output folder")

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, which fails writes as a full disk")
def test_a_journal_that_cannot_be_written_is_an_error_that_names_it(tmp_path):
    from colorstream.files import OutputError
    from colorstream.stream.journal import Journal

    journal = Journal(tmp_path)
    journal.open()
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # the disk fills up after the run began
    try:
        with pytest.raises(OutputError, match=r"colorstream-journal\.jsonl: cannot write the run's journal "
                                              r"\(No space left on device\)"):
            journal.append(tmp_path / "clip.mp4", "started", input="clip.mp4")
    finally:
        journal.close()
    assert journal.last(tmp_path / "clip.mp4") is None  # nothing is taken as recorded that is not on disk



def test_ray_without_the_extra_says_how_to_install_it(archive, tiny_checkpoint, tmp_path, monkeypatch):
    from colorstream.stream import api, ray_runner
    from colorstream.stream.jobs import Models, Options

    monkeypatch.setattr(ray_runner, "available", lambda: False)
    with pytest.raises(ValueError, match=r"--ray needs the ray extra: pip install 'colorstream\[ray\]'"):
        api.colorize_batch([archive], tmp_path / "out", Options(scope="faces"), Models(str(tiny_checkpoint)),
                           ray="local")
    assert not (tmp_path / "out").exists()


def test_outputs_equal_to_inputs_and_an_output_folder_equal_to_an_input_folder_are_refused(archive, tiny_checkpoint):
    from colorstream.stream import api

    before = (archive / "intro.mp4").read_bytes()
    assert_one_line_error(run("colorize", str(archive), "-o", str(archive), "--model", str(tiny_checkpoint)),
                          "is the input folder")
    link = archive.parent / "link"
    link.symlink_to(archive, target_is_directory=True)
    with pytest.raises(ValueError, match="is the input folder"):
        api.colorize_batch([archive], link, overwrite=True)
    with pytest.raises(ValueError, match="refusing to overwrite an input"):  # reel1/ mirrored into archive/
        api.colorize_batch([archive / "reel1", archive / "intro.mp4"], archive, overwrite=True)
    assert (archive / "intro.mp4").read_bytes() == before


def test_workers_and_segments_give_the_one_piece_output(tmp_path, portrait, tiny_checkpoint, tiny_scene_checkpoint):
    """A clip of three shots split into segments at its cuts, by worker processes: frame for frame the output
    of one process colorizing it in one piece (losslessly encoded, so every plane can be compared), with the
    same timestamps and audio."""
    shot = moving_face_frames(portrait, 20, 160, 120)
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_video(inputs / "film.mp4", shot + [255 - frame for frame in shot] + shot[::-1], audio_seconds=2.4)
    write_video(inputs / "short.mp4", shot[:12], audio_seconds=0.48)
    common = ["--model", str(tiny_checkpoint), "--scene-model", str(tiny_scene_checkpoint), "--crf", "0", "--quiet"]
    assert run("colorize", str(inputs), "-o", str(tmp_path / "one"), *common).returncode == 0
    stats = tmp_path / "stats.json"
    result = run("colorize", str(inputs), "-o", str(tmp_path / "split"), *common, "--workers", "2",
                 "--segment-seconds", "0.5", "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())
    assert report["batch"]["engine"] == "processes" and report["batch"]["workers"] == 2
    assert {Path(file["output"]).name: file.get("segments", 1) for file in report["files"]} == {"film.mp4": 3,
                                                                                               "short.mp4": 1}
    for name in ("film.mp4", "short.mp4"):
        one, split = planes(tmp_path / "one" / name), planes(tmp_path / "split" / name)
        assert len(one) == len(split) and all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(one, split))
        assert read_video(tmp_path / "one" / name)[2] == read_video(tmp_path / "split" / name)[2]  # audio too
        assert_same_media(inputs / name, tmp_path / "split" / name)
    assert no_leftovers(tmp_path / "split")


def test_segments_tile_the_video_whatever_the_spans(tmp_path, portrait):
    """Consecutive spans, one of them without a cut, cover every frame once; each starts at a cut."""
    from colorstream.stream.segments import Span, span_frames
    from colorstream.stream.video_io import VideoReader

    shot = moving_face_frames(portrait, 20, 160, 120)
    clip = write_video(tmp_path / "cuts.mp4", shot + [255 - frame for frame in shot] + shot[::-1])  # cuts at 20, 40
    bounds = [None, 0.2, 0.4, 0.6, 1.0, None]  # seconds; the cuts are at 0.8 and 1.6
    covered = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        reader = VideoReader(clip)
        stamp = (lambda seconds: None if seconds is None else round(seconds / reader.time_base))
        covered.append([frame.seconds for frame in span_frames(reader, Span(stamp(start), stamp(end)))])
        reader.close()
    assert [len(part) for part in covered] == [20, 0, 0, 20, 20]  # spans without a cut are empty
    assert [seconds for part in covered for seconds in part] == pytest.approx([index / 25 for index in range(60)])


def interrupt_then_resume(inputs: Path, out: Path, args: list[str]) -> None:
    """`colorize INPUTS -o OUT ARGS` stopped by SIGTERM once an input is done, then finished with --resume:
    the first run loses only the files in flight, and the second does not redo the finished ones."""
    names = sorted(path.name for path in inputs.iterdir())
    args = [str(inputs), "-o", str(out), *args]
    process = subprocess.Popen(colorize(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not (
            (out / JOURNAL).exists() and '"done"' in (out / JOURNAL).read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.strip() == "colorstream colorize: interrupted (SIGTERM)"  # one line, and nothing else
    assert no_leftovers(out)
    finished = {record["output"]: (out / record["output"]).stat().st_mtime_ns for record in journal(out)
                if record["state"] == "done"}
    assert 1 <= len(finished) < len(names)
    for name in names:  # whole or absent
        if (out / name).exists():
            assert_same_media(inputs / name, out / name)

    result = subprocess.run(colorize(*args, "--resume"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in names:
        assert_same_media(inputs / name, out / name)
    for name, mtime in finished.items():  # not done again
        assert (out / name).stat().st_mtime_ns == mtime and started(out, name) == 1


def test_sigterm_in_the_middle_of_a_batch_loses_only_the_files_in_flight(tmp_path, portrait, tiny_checkpoint):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(6):
        write_video(inputs / f"clip{index}.mp4", moving_face_frames(portrait, 40, 200, 150), audio_seconds=1.6)
    interrupt_then_resume(inputs, tmp_path / "out", ["--model", str(tiny_checkpoint), "--scope", "faces", "--quiet",
                                                     "--workers", "2"])


def test_a_killed_run_leaves_a_partial_file_that_resume_removes(tmp_path, portrait, tiny_checkpoint):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(2):
        write_video(inputs / f"clip{index}.mp4", moving_face_frames(portrait, 150, 240, 180))
    out = tmp_path / "out"
    args = [str(inputs), "-o", str(out), "--model", str(tiny_checkpoint), "--scope", "faces", "--quiet",
            "--workers", "1"]  # in this process: SIGKILL leaves its partial file (a worker would remove its own)
    process = subprocess.Popen(colorize(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not list(out.glob(".clip1.partial-*")):
        time.sleep(0.02)
    process.kill()  # SIGKILL: nothing of the process's own cleanup runs
    process.communicate(timeout=60)
    assert list(out.glob(".clip1.partial-*")) and not (out / "clip1.mp4").exists()
    result = run("colorize", *args, "--resume")
    assert result.returncode == 0, result.stderr
    assert no_leftovers(out) and started(out, "clip0.mp4") == 1 and started(out, "clip1.mp4") == 2
    for index in range(2):
        assert_same_media(inputs / f"clip{index}.mp4", out / f"clip{index}.mp4")


def children(parents: set[int], command: bytes) -> list[int]:
    """The processes started by `parents` whose command line holds `command`: workers this test's run made."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            line = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent in parents and command in line:
            found.append(int(entry.name))
    return found


def test_a_killed_worker_process_loses_no_file(tmp_path, portrait, tiny_checkpoint):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(2):
        write_video(inputs / f"clip{index}.mp4", moving_face_frames(portrait, 120, 240, 180), audio_seconds=4.8)
    out = tmp_path / "out"
    process = subprocess.Popen(colorize(str(inputs), "-o", str(out), "--model", str(tiny_checkpoint), "--scope",
                                        "faces", "--quiet", "--workers", "2"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not list(out.glob(".*.partial-*")):
        time.sleep(0.02)
    workers = children({process.pid}, b"spawn_main")  # not its resource tracker
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    for index in range(2):
        assert_same_media(inputs / f"clip{index}.mp4", out / f"clip{index}.mp4")
    assert no_leftovers(out)


# ---------------------------------------------------------------------------- the Python API


def test_the_python_api_colorizes_a_file_a_batch_and_frames(archive, tiny_checkpoint, tmp_path, portrait):
    from colorstream.stream import api
    from colorstream.stream.jobs import Models, Options
    options, models = Options(scope="faces"), Models(model=str(tiny_checkpoint))
    report = api.colorize_file(archive / "intro.mp4", tmp_path / "intro.mp4", options, models)
    assert report["frames"] == 14 and report["output"] == str(tmp_path / "intro.mp4")
    assert_same_media(archive / "intro.mp4", tmp_path / "intro.mp4")
    with pytest.raises(ValueError, match="already exists"):
        api.colorize_file(archive / "intro.mp4", tmp_path / "intro.mp4", options, models)

    stats = api.colorize_batch([archive], tmp_path / "batch", options, models)
    assert stats["batch"]["done"] == 4 and stats["batch"]["failed"] == 1 and len(stats["files"]) == 4
    again = api.colorize_batch([archive], tmp_path / "batch", options, models, resume=True)
    assert again["batch"]["skipped_done_before"] == 4 and again["skipped"]["done_before"]

    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in moving_face_frames(portrait, 12, 160, 120)]
    colorizer = api.FrameColorizer(options, models, fps=25)
    streamed = list(colorizer.stream(iter(frames)))
    one_by_one = [colorizer(frame) for frame in frames]
    assert len(streamed) == 12 and streamed[0].shape == (120, 160, 3)
    assert all(np.array_equal(a, b) for a, b in zip(streamed, one_by_one))
    assert np.abs(streamed[6].astype(int) - cv2.cvtColor(frames[6], cv2.COLOR_GRAY2BGR)).max() > 0  # colour
    with pytest.raises(ValueError, match="uint8"):
        colorizer(np.zeros((4, 4), np.float32))
