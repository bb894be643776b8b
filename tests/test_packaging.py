"""The wheel as a user installs it: one top-level import name, the bundled models inside, the command working."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import SAMPLES

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_installs_colorstream_and_nothing_else_at_the_top(tmp_path):
    source, dist = tmp_path / "source", tmp_path / "dist"  # a copy: building leaves build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("colorstream", "model", "stream", "training"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(source)], check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("colorstream-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        assert tops == {"colorstream"}
        assert "colorstream/model/weights/video.pt" in archive.namelist()

    # A fresh environment outside the repository: the wheel installed into it, and this environment's
    # dependencies (torch, OpenCV, PyAV...) reachable by a plain path, so the editable install is not.
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    env_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(env_site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    (env_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def in_env(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], cwd=work, capture_output=True, text=True, timeout=300)

    found = in_env("-c", "import colorstream.model, colorstream.stream.jobs; print(colorstream.model.__file__)")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(env_site)
    for generic in ("model", "stream", "training"):
        assert "ModuleNotFoundError" in in_env("-c", f"import {generic}").stderr
    result = in_env("-m", "colorstream", "invert", str(SAMPLES / "astronaut_line.png"), "-o", str(work / "out"))
    assert result.returncode == 0, result.stderr
    assert (work / "out" / "astronaut_line.png").stat().st_size > 0
