"""Shared fixtures: small images and checkpoints made inside the tests."""

from __future__ import annotations

import contextlib
import os
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# a command that crashes in native code (a signal test under load) prints where each thread was
os.environ.setdefault("PYTHONFAULTHANDLER", "1")


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """The public-domain astronaut portrait from samples/, BGR 256x256."""
    image = cv2.imread(str(SAMPLES / "astronaut.jpg"))
    assert image is not None
    return image


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """An untrained but well-formed checkpoint of a very small network, the same one whatever ran before.

    (Its weights once came from torch's global random state, so they depended on the tests before it:
    about one init in ten is symmetric enough to fail the flip-averaging test.)
    """
    return save_tiny_checkpoint(tmp_path / "tiny.pt")


def save_tiny_checkpoint(path: Path) -> Path:
    import torch

    from colorstream.model import checkpoint
    from colorstream.model.net import ModelConfig, build

    config = ModelConfig(base_channels=4, levels=2, res_blocks=1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build(config)
    checkpoint.save(path, net, tiny_metadata(config))
    return path


@pytest.fixture
def tiny_scene_checkpoint(tmp_path: Path) -> Path:
    """An untrained scene checkpoint whose head leans towards one warm colour, so its output is visibly coloured."""
    path = tmp_path / "tiny_scene.pt"
    save_tiny_scene(path)
    return path


def save_tiny_scene(path: Path, ab: tuple[float, float] = (30.0, 40.0), side: int = 64) -> None:
    import torch

    from colorstream import imageops
    from colorstream.model import checkpoint
    from colorstream.model.net import ModelConfig, build

    bins = imageops.ab_gamut_bins()
    config = ModelConfig(arch="scene", base_channels=4, levels=3, res_blocks=1, outputs=len(bins))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build(config)
    with torch.no_grad():
        favourite = int(np.argmin(np.linalg.norm(bins - np.array(ab), axis=1)))
        net.head.bias[favourite] += 8.0
    metadata = {"task": "scene", "model": config.to_dict(), "input_kind": "gray", "resolution": side,
                "color_space": "lab-ab-bins", "ab_bins": bins.tolist(), "decode_temperature": 0.38,
                "saturation_gains": {"colourfulness": 1.2, "ab_error": 1.0},
                "training": {"data_fingerprint": {"scenes": "test"}, "command": "test"}, "metrics": {}}
    checkpoint.save(path, net, metadata)


def tiny_metadata(config) -> dict:
    return {"model": config.to_dict(), "input_kind": "pencil", "sketch_params": {"blur_sigma": 1.0},
            "normalize_sketch": True, "resolution": 32, "crop_margin": 1.4, "color_space": "rgb",
            "training": {"data_fingerprint": {"faces": "test"}, "command": "test"}, "metrics": {}}


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[socketserver.BaseServer]:
    """`server` serving in a thread for the block, then shut down and closed, so no test leaves a port open."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def draw_server():
    """`colorstream draw`'s server with the bundled model, serving on a free port in a thread."""
    from colorstream.draw.server import DrawServer
    from colorstream.model.inference import load

    with serving(DrawServer(("127.0.0.1", 0), load(device="cpu"))) as server:
        yield server
