"""colorize --ray: a local Ray instance, a two-node cluster simulated on this machine, a killed worker, and
--resume after an interrupted run. Each output is compared frame for frame with a run in one process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'colorstream[ray]'; "
                                        "make test installs it)")

from conftest import save_tiny_checkpoint  # noqa: E402
from media import moving_face_frames, write_video  # noqa: E402
from test_batch import assert_same_media, children, colorize, interrupt_then_resume, no_leftovers, planes  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory, portrait) -> dict:
    """A folder (a three-shot film, a clip, a still), a tiny model, and the outputs of one process."""
    from colorstream.stream import api
    from colorstream.stream.jobs import Models, Options

    root = tmp_path_factory.mktemp("ray")
    folder = root / "in"
    (folder / "sub").mkdir(parents=True)
    shot = moving_face_frames(portrait, 20, 160, 120)
    write_video(folder / "film.mp4", shot + [255 - frame for frame in shot] + shot[::-1], audio_seconds=2.4)
    write_video(folder / "sub" / "clip.mp4", shot[:15], audio_seconds=0.6)
    model = save_tiny_checkpoint(root / "tiny.pt")
    options, models = Options(scope="faces", crf=0), Models(model=str(model))
    api.colorize_batch([folder], root / "reference", options, models)
    return {"root": root, "in": folder, "model": model, "options": options, "models": models,
            "reference": root / "reference"}


NAMES = ["film.mp4", "sub/clip.mp4"]


def assert_as_reference(setup: dict, out: Path) -> None:
    for name in NAMES:
        reference, made = planes(setup["reference"] / name), planes(out / name)
        assert len(made) == len(reference)
        assert all(a[0] == b[0] and (a[1] == b[1]).all() for a, b in zip(reference, made)), name
        assert_same_media(setup["in"] / name, out / name)
    assert no_leftovers(out)


def test_ray_local_starts_ray_here_and_makes_what_one_process_makes(setup):
    out = setup["root"] / "local"
    result = subprocess.run(colorize(str(setup["in"]), "-o", str(out), "--model", str(setup["model"]), "--scope",
                                     "faces", "--crf", "0", "--quiet", "--ray", "local", "--workers", "2"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_as_reference(setup, out)


@pytest.fixture(scope="module")
def cluster(setup):
    """Two Ray nodes of one CPU each on this machine, as `ray.cluster_utils.Cluster` simulates them."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


def test_a_two_node_cluster_runs_files_and_segments_as_one_process_does(setup, cluster):
    from colorstream.stream import api

    out = setup["root"] / "cluster"
    stats = api.colorize_batch([setup["in"]], out, setup["options"], setup["models"], ray=cluster.address,
                               workers=2, segment_seconds=0.5)
    assert stats["batch"] | {"seconds": 0, "fps": 0, "files_per_hour": 0} == {
        "inputs": 2, "done": 2, "skipped_done_before": 0, "failed": 0, "not_media": 0, "frames": 75, "seconds": 0,
        "fps": 0, "files_per_hour": 0, "engine": "ray", "workers": 2, "segment_seconds": 0.5}
    assert {Path(report["output"]).name: report.get("segments", 1) for report in stats["files"]} == {
        "film.mp4": 3, "clip.mp4": 1}
    assert_as_reference(setup, out)


def actor_processes(cluster) -> list[int]:
    """The processes of this cluster's Ray workers that are running a colorstream task now."""
    raylets = {info.process.pid for node in [cluster.head_node, *cluster.worker_nodes]
               for info in node.all_processes["raylet"]}
    return children(raylets, b"ray::Worker.run")


def test_a_killed_worker_is_retried_and_its_output_is_whole(setup, cluster, portrait):
    from colorstream.stream import api

    folder = setup["root"] / "long"
    folder.mkdir()
    for index in range(2):
        write_video(folder / f"clip{index}.mp4", moving_face_frames(portrait, 120, 240, 180), audio_seconds=4.8)
    out = setup["root"] / "killed"
    killed = []

    def kill_one_mid_file() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            if list(out.glob(".*.partial-*")) and (workers := actor_processes(cluster)):
                killed.append(workers[0])
                os.kill(workers[0], signal.SIGKILL)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_one_mid_file)
    watcher.start()
    stats = api.colorize_batch([folder], out, setup["options"], setup["models"], ray=cluster.address, workers=2)
    watcher.join()
    assert killed and stats["batch"]["done"] == 2 and stats["failures"] == []
    for index in range(2):
        assert_same_media(folder / f"clip{index}.mp4", out / f"clip{index}.mp4")
    assert no_leftovers(out)


def test_resume_after_an_interrupted_ray_run_finishes_the_batch(setup, cluster, portrait):
    folder = setup["root"] / "many"
    folder.mkdir()
    for index in range(5):
        write_video(folder / f"clip{index}.mp4", moving_face_frames(portrait, 40, 240, 180), audio_seconds=1.6)
    interrupt_then_resume(folder, setup["root"] / "interrupted", [
        "--model", str(setup["model"]), "--scope", "faces", "--quiet", "--ray", cluster.address, "--workers", "2"])


def test_an_unreachable_cluster_is_a_one_line_error(setup):
    from test_cli import assert_one_line_error, run

    result = run("colorize", str(setup["in"]), "-o", str(setup["root"] / "nowhere"), "--model", str(setup["model"]),
                 "--scope", "faces", "--ray", "127.0.0.1:1")
    assert_one_line_error(result, "cannot reach the Ray cluster at 127.0.0.1:1")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not (setup["root"] / "nowhere").exists()
