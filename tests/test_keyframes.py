"""Keyframes carried through their shot, palette guidance, and the keyframes command, on clips made here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from media import read_video, write_video
from colorstream import imageops
from colorstream.model.inference import load
from colorstream.stream.evaluation import make_gray_clip
from colorstream.stream.frames import Face, Frame
from colorstream.stream import keyframes
from colorstream.stream.jobs import Options, colorize_video
from colorstream.stream.keyframes import KeyframeError, export_keyframes, keyframe_chroma, keyframe_paths, propagate
from colorstream.stream.palette import Palette
from colorstream.stream.stages import Composite, Infer, SceneColour, Sketchify, Smooth
from test_cli import assert_one_line_error, run

FRAMES, CUT = 36, 26  # frames of the clip, and the first frame of its second shot
SIZE = (128, 96)  # width, height


def colour_clip() -> list[np.ndarray]:
    """A red square gliding right over a textured green field; at CUT, a much darker, striped shot."""
    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.integers(0, 255, (SIZE[1], SIZE[0] + 80), np.uint8), (0, 0), 1.5)
    frames = []
    for index in range(FRAMES):
        if index < CUT:
            tones = field[:, index:index + SIZE[0]].astype(np.float32) / 255.0  # the camera pans slowly too
            image = np.dstack([40 + 60 * tones, 120 + 100 * tones, 40 + 60 * tones])  # BGR: green
            x = 10 + 2 * index
            image[30:60, x:x + 30] = (40, 40, 200)  # red
        else:
            stripes = 20 + 25 * (np.arange(SIZE[1]) % 12 < 6)
            image = np.dstack([np.broadcast_to(stripes[:, None], (SIZE[1], SIZE[0]))] * 3).astype(np.float32)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture
def shots(tmp_path):
    frames = colour_clip()
    truth = write_video(tmp_path / "truth.mp4", frames)
    gray = tmp_path / "gray.mp4"
    make_gray_clip(truth, gray, Options(crf=0))
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])
    return frames, gray, tmp_path / "0.png"


def ab_of(image: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    return imageops.bgr_to_lab(image)[region][..., 1:].reshape(-1, 2).mean(axis=0)


def test_keyframe_colour_is_carried_through_the_shot_and_stops_at_the_cut(shots, tmp_path, tiny_checkpoint,
                                                                          tiny_scene_checkpoint):
    frames, gray, keyframe = shots
    out = tmp_path / "out.mp4"
    report = colorize_video(gray, out, load(tiny_checkpoint, "cpu"), Options(scope="frame"), progress=False,
                            scene=load(tiny_scene_checkpoint, "cpu", task="scene"), keyframes={0: keyframe})
    assert report["keyframes"] == [0] and "keyframe propagation" in report["ms_per_frame"]
    output = read_video(out)[0]
    assert len(output) == FRAMES
    at = 20
    x = 10 + 2 * at
    square = (slice(36, 54), slice(x + 6, x + 24))
    assert ab_of(output[at], square)[0] > 25  # the square, 40 pixels from where the keyframe had it, is red
    field = (slice(70, 90), slice(90, 120))
    assert ab_of(output[at], field)[0] < -15  # the field stays green
    assert np.abs(ab_of(output[at], square) - ab_of(frames[at], square)).max() < 12
    # the field just behind the square was beside it in the keyframe: the flow from frame to frame loses it
    # behind the square, and the correction against the keyframe finds it again, green as it is
    assert ab_of(output[at], (slice(36, 54), slice(x - 14, x - 6)))[0] < -15  # not the models' warm colour
    # after the cut the keyframe's colour is gone: the model's own
    after = ab_of(output[CUT + 4], (slice(10, 86), slice(10, 118)))
    assert after[0] > 5 and after[1] > 10


def test_keyframes_bracketing_a_frame_share_it(shots):
    frames, gray, keyframe = shots
    late = keyframe.with_name("20.png")
    recoloured = frames[20].copy()
    recoloured[..., 0], recoloured[..., 2] = frames[20][..., 2], frames[20][..., 0]  # red <-> blue
    cv2.imwrite(str(late), recoloured)
    carried = propagate(gray, {0: keyframe, 20: late})  # the clip is small: carried at its own size

    def square_cr(index: int) -> float:
        share = carried.get(index)
        chroma, weight = share.chroma, share.weight
        x = 10 + 2 * index
        assert weight[36:54, x + 6:x + 24].mean() > 0.5
        return float(chroma[36:54, x + 6:x + 24, 1].mean())  # Cr: high for red, low for blue

    try:
        assert carried.frames == FRAMES and carried.get(0).weight.min() == pytest.approx(1.0)
        red, blue = square_cr(1), square_cr(19)  # blue's Cr is low, red's high
        assert red > blue + 30
        assert square_cr(3) > (red + blue) / 2 > square_cr(17)  # each keyframe leads near itself ...
        assert red > square_cr(10) > blue  # ... and they share the frames between
        assert carried.get(30) is None  # the second shot: no keyframe reaches it
    finally:
        carried.close()


def test_frames_are_final_as_soon_as_no_later_keyframe_can_change_them(shots, monkeypatch):
    """The pass runs beside the pipeline: a frame waits only for a later keyframe of its own shot."""
    frames, gray, keyframe = shots
    marks = []  # (frames the pass has read, frames final)
    mark_final = keyframes.KeyframeColour.mark_final
    monkeypatch.setattr(keyframes.KeyframeColour, "mark_final",
                        lambda self, through: (marks.append((self.frames, through)), mark_final(self, through))[1])

    def final_after(keys: dict) -> dict[int, int]:
        for index in keys:
            cv2.imwrite(str(keyframe.with_name(f"{index}.png")), frames[index])
        marks.clear()
        propagate(gray, {index: keyframe.with_name(f"{index}.png") for index in keys}).close()
        return dict(marks)

    final = final_after([0, 20])  # frames read -> frames final
    assert final[1] == final[20] == 1  # frames 1 to 19 wait for keyframe 20's colour carried back to them
    assert (final[21], final[22], final[FRAMES]) == (21, 22, FRAMES)  # then each is final as it is read
    final = final_after([0, 30])  # 30 is beyond the cut
    assert final[CUT] == 1 and final[CUT + 1] == CUT  # reading the cut's frame releases the first shot ...
    assert final[30] == CUT and final[31] == 31  # ... and 26 to 29 wait for keyframe 30


def test_no_model_runs_where_the_keyframes_colour_covers_the_frame_or_the_face(tiny_checkpoint, tiny_scene_checkpoint):
    covered = np.ones((48, 64), np.float32)  # small, and the 4:2:0 plane of a 128x96 frame
    entering = covered.copy()
    entering[:, :8] = 0.0  # content entering at the left edge: 12% of the frame
    assert not keyframes.models_needed(covered, (96, 128)) and keyframes.models_needed(entering, (96, 128))
    assert keyframes.models_needed(None, (96, 128))  # no keyframe reaches the frame
    left, right = imageops.Box(0, 20, 30, 30), imageops.Box(70, 20, 40, 40)
    assert keyframes.models_needed(entering, (96, 128), left)
    assert not keyframes.models_needed(entering, (96, 128), right)

    gray = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 255, (96, 128), np.uint8), (0, 0), 2)
    chroma = np.zeros((48, 64, 2), np.float32)
    chroma[..., 0] = 20.0  # Cb 148
    frames = [Frame(index, gray.copy(), keyframe_chroma=chroma, keyframe_weight=weight,
                    faces=[Face(0, right), Face(1, left)]) for index, weight in enumerate([covered, entering, covered])]
    scene, predictor = load(tiny_scene_checkpoint, "cpu", task="scene"), load(tiny_checkpoint, "cpu")
    frames = SceneColour(scene, 1.0)(frames)
    assert [frame.scene_ab is not None for frame in frames] == [False, True, False]
    frames = Composite()(Smooth("none")(Infer(predictor, 1.0)(Sketchify(predictor)(frames))))
    assert [[face.colour is not None for face in frame.faces] for frame in frames] == [[False, False],
                                                                                       [False, True], [False, False]]
    cb, cr = frames[0].chroma
    assert (cb == 148).all() and (cr == 128).all()  # the keyframes' colour, exactly
    cb, _ = frames[1].chroma
    assert (cb[:, 24:] == 148).all() and np.abs(cb[:, :4].astype(int) - 148).max() > 0  # the models fill the edge

    # a frame of a later shot that stayed all as it was in the keyframe but for a speck: no model runs, and the
    # speck takes the colour around it, as in the keyframe's own shot (not gray)
    speck = covered.copy()
    speck[20:22, 30:32] = 0.0
    frame = Frame(3, gray.copy(), keyframe_chroma=chroma, keyframe_weight=speck, keyframe_overlay=True)
    assert not keyframes.models_needed(speck, (96, 128))
    frame = Composite()(SceneColour(scene, 1.0)([frame]))[0]
    assert frame.scene_ab is None and np.abs(frame.chroma[0].astype(int) - 148).max() <= 1


def zoom_clip(frames: int = 40, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """A slow zoom (1.2% a frame) and drift across a field of smooth hues over a fine luminance texture."""
    rng = np.random.default_rng(1)
    scene_size = (size[0] * 2, size[1] * 2)
    hue = cv2.resize(rng.integers(0, 180, (6, 8), np.uint8), scene_size, interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.integers(0, 255, scene_size[::-1], np.uint8), (0, 0), 2.0)
    scene = cv2.cvtColor(np.dstack([hue, np.full_like(hue, 200), (60 + 0.7 * texture).astype(np.uint8)]),
                         cv2.COLOR_HSV2BGR)
    clip = []
    for index in range(frames):
        scale, x, y = 0.5 * (1.0 + 0.012 * index), scene_size[0] / 2 + 0.6 * index, scene_size[1] / 2 + 0.3 * index
        view = np.array([[scale, 0, size[0] / 2 - scale * x], [0, scale, size[1] / 2 - scale * y]], np.float32)
        clip.append(cv2.warpAffine(scene, view, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return clip


def test_the_chain_is_corrected_against_the_keyframe_so_a_zoom_does_not_drift(tmp_path, monkeypatch):
    frames = zoom_clip()
    gray = tmp_path / "gray.mp4"
    make_gray_clip(write_video(tmp_path / "truth.mp4", frames), gray, Options(crf=0))
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])

    def last_frame_error() -> float:
        """Mean |Cb, Cr| error of the colour carried to the last frame, away from the border (levels)."""
        carried = propagate(gray, {0: tmp_path / "0.png"})
        try:
            last = carried.get(len(frames) - 1)
        finally:
            carried.close()
        truth = np.dstack(imageops.bgr_to_video_chroma(frames[-1])).astype(np.float32) - 128.0
        assert last.weight[20:-20, 20:-20].mean() > 0.9
        return float(np.abs(last.chroma - truth)[20:-20, 20:-20].mean())

    corrected = last_frame_error()
    monkeypatch.setattr(keyframes._Carried, "_refine", lambda self, *args: None)
    chained = last_frame_error()  # 39 steps of flow alone: their small errors add up
    assert corrected < 3.0 and corrected < 0.6 * chained


def test_a_small_still_logo_over_a_pan_keeps_its_keyframe_colour(tmp_path, monkeypatch):
    """A channel's logo, 7 small pixels a side, over a field that pans 2 frame pixels a frame: the flow drags the
    logo along with the field, the comparison with the keyframe at the same place keeps it where it is."""
    width, height, side = 192, 144, 96  # the working size is half the frame
    rng = np.random.default_rng(4)
    field = cv2.GaussianBlur(rng.integers(0, 255, (height, width + 60), np.uint8), (0, 0), 2.0).astype(np.float32)
    field = cv2.normalize(field, None, 0, 1, cv2.NORM_MINMAX)
    logo = np.zeros((14, 14, 3), np.float32)
    logo[:] = (200, 90, 30)  # BGR: blue
    logo[3:11:3, 2:12] = (250, 250, 250)  # white strokes: the logo has tones of its own
    frames = []
    for index in range(24):
        tones = field[:, 2 * index:2 * index + width, None]
        image = np.concatenate([40 + 60 * tones, 110 + 110 * tones, 40 + 60 * tones], axis=2)  # BGR: green
        image[8:22, 170:184] = logo
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    gray = tmp_path / "gray.mp4"
    make_gray_clip(write_video(tmp_path / "truth.mp4", frames), gray, Options(crf=0))
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])

    def logo_colour() -> tuple[float, float]:
        """The carried colour's confidence over the logo on the last frame, and its mean |Cb, Cr| error there."""
        carried = propagate(gray, {0: tmp_path / "0.png"}, side=side)
        try:
            last = carried.get(len(frames) - 1)
        finally:
            carried.close()
        truth = np.dstack([cv2.resize(plane, (side, side * height // width), interpolation=cv2.INTER_AREA)
                           for plane in imageops.bgr_to_video_chroma(frames[-1])]).astype(np.float32) - 128.0
        inside = (slice(5, 10), slice(86, 91))  # the logo, a pixel in from its edge
        return float(last.weight[inside].mean()), float(np.abs(last.chroma - truth)[inside].mean())

    weight, error = logo_colour()
    assert weight > 0.9 and error < 2.0
    monkeypatch.setattr(keyframes._Carried, "_keep_still", lambda self, *args: None)
    _, dragged_error = logo_colour()
    assert dragged_error > 20.0  # the flow alone carries the field's green onto it, and is sure of it


def test_a_logo_that_stays_through_a_cut_keeps_its_keyframe_colour_and_nothing_else_does(tmp_path, monkeypatch,
                                                                                          tiny_checkpoint,
                                                                                          tiny_scene_checkpoint):
    """A channel's logo over two shots: a green field, then (a cut) a brighter brown one. The only keyframe is frame
    0; in the second shot the logo keeps its blue, and the field around it takes the models' colour untinted."""
    width, height, cut = 192, 144, 8
    rng = np.random.default_rng(5)
    logo = np.zeros((14, 14, 3), np.float32)
    logo[:] = (200, 90, 30)  # BGR: blue
    logo[3:11:3, 2:12] = (250, 250, 250)  # white strokes: the logo has tones of its own
    fields = [cv2.normalize(cv2.GaussianBlur(rng.uniform(0, 1, (height, width + 40)).astype(np.float32), (0, 0), 2.0),
                            None, 0, 1, cv2.NORM_MINMAX)[..., None] for _ in range(2)]
    frames = []
    for index in range(16):  # each shot a slow pan
        tones = fields[index >= cut][:, 2 * index:2 * index + width]
        if index < cut:  # a green field
            image = np.concatenate([40 + 60 * tones, 110 + 110 * tones, 40 + 60 * tones], axis=2)
        else:  # a brighter, brown one
            image = np.concatenate([90 + 60 * tones, 130 + 80 * tones, 170 + 80 * tones], axis=2)
        image[8:22, 170:184] = logo
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    gray = tmp_path / "gray.mp4"
    make_gray_clip(write_video(tmp_path / "truth.mp4", frames), gray, Options(crf=0))
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])
    inside, around = (slice(10, 20), slice(172, 182)), (slice(0, 40), slice(120, 160))  # frame pixels

    carried = propagate(gray, {0: tmp_path / "0.png"})  # the frame is the working size
    try:
        share = carried.get(cut + 4)
        assert share.overlay and share.weight[inside].mean() > 0.8
        elsewhere = np.ones(share.weight.shape, bool)
        elsewhere[5:25, 167:187] = False  # the logo and 3 pixels around it
        assert share.weight[elsewhere].max() == 0.0
    finally:
        carried.close()

    def blue_in_second_shot() -> tuple[np.ndarray, np.ndarray]:
        """Cb of the output's second shot, minus 128: (logo, the field beside it), (frames, ...)."""
        out = tmp_path / "out.mp4"
        colorize_video(gray, out, load(tiny_checkpoint, "cpu"), Options(scope="frame"), progress=False,
                       scene=load(tiny_scene_checkpoint, "cpu", task="scene"), keyframes={0: tmp_path / "0.png"},
                       overwrite=True)
        cb = np.array([imageops.bgr_to_video_chroma(image)[0] for image in read_video(out)[0][cut:]], np.float32)
        return cb[:, inside[0], inside[1]] - 128.0, cb[:, around[0], around[1]] - 128.0

    logo_cb, beside = blue_in_second_shot()
    truth_cb = imageops.bgr_to_video_chroma(frames[-1])[0][inside].astype(np.float32) - 128.0
    monkeypatch.setattr(keyframes._Carried, "overlay", lambda self, gray, source: None)
    logo_without, beside_without = blue_in_second_shot()
    # the models do not know the logo is blue (Cb 128 - 30 against 128 + 40); the keyframe does
    assert np.abs(logo_cb.mean() - truth_cb.mean()) < 0.5 * np.abs(logo_without.mean() - truth_cb.mean())
    # and the field beside it is as the models coloured it: the logo's blue tells nothing of their miss there
    # (corrected by it, as the keyframe's own shot is, the field within 40 pixels turned bluer by up to 17 levels)
    difference = np.abs(beside - beside_without)
    assert difference.mean() < 0.3 and difference.max() < 10


def test_the_carried_colour_keeps_the_keyframes_fine_colour_edges(tmp_path):
    """Stripes of colour 4 chroma pixels wide (no luma edge), too fine for the working size, stay sharp as they
    drift with the texture the flow follows: 0.0 against 7.5 levels of error on the keyframe, 9.0 against 14.7
    eleven frames on, where the flow is 0.1 small pixel off."""
    width, height = 384, 288  # the chroma planes (4:2:0) are 192x144, twice the working size of 96x72 below
    columns = (np.arange(width + 40) // 8) % 2  # 8 frame pixels: 4 chroma pixels, 2 small ones
    scene = np.where(columns[None, :, None] > 0, np.array([60, 60, 180]), np.array([180, 112, 30])).astype(np.uint8)
    texture = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 255, (height, width + 40), np.uint8), (0, 0), 6)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)  # what the flow follows, seen at the work size
    scene = np.clip(scene * (0.6 + 0.4 * texture[..., None] / 255.0), 0, 255).astype(np.uint8)
    frames = [scene[:, 2 * index:2 * index + width] for index in range(12)]  # a pan, 2 pixels a frame
    gray = tmp_path / "gray.mp4"
    make_gray_clip(write_video(tmp_path / "truth.mp4", frames), gray, Options(crf=0))
    cv2.imwrite(str(tmp_path / "0.png"), frames[0])
    carried = propagate(gray, {0: tmp_path / "0.png"}, side=96)  # the plane is twice the working size
    try:
        stage = keyframes.KeyframeStage(carried)
        for index, most in ((0, 0.05), (11, 0.75)):  # exact on the keyframe; 11 frames on, resampled at a drift
            frame = stage([Frame(index, imageops.to_gray(frames[index]))])[0]
            truth = np.dstack([cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
                               for plane in imageops.bgr_to_video_chroma(frames[index])]).astype(np.float32) - 128
            small = cv2.resize(carried.get(index).chroma, (width // 2, height // 2), interpolation=cv2.INTER_LINEAR)
            inner = (slice(8, -8), slice(8, -24))  # not the right edge, which entered the frame after the keyframe
            sharp, blurred = (float(np.abs(chroma - truth)[inner].mean()) for chroma in (frame.keyframe_chroma, small))
            assert frame.keyframe_chroma.shape == truth.shape and sharp < most * blurred, (index, sharp, blurred)
    finally:
        carried.close()


def test_where_the_carried_colour_gives_up_the_models_colour_is_corrected_by_its_miss_nearby():
    rng = np.random.default_rng(3)
    truth = cv2.GaussianBlur(rng.uniform(100, 160, (60, 240, 2)).astype(np.float32), (0, 0), 4)  # plane, Cb/Cr
    model = truth + np.array([12.0, -8.0], np.float32)  # the models miss by a steady bias
    keyframe = truth.copy()
    keyframe[20:40, 20:40] = 128.0  # a mouth that opened: carried, but wrong, so its confidence is 0
    weight = np.zeros((30, 120), np.float32)  # small: half the plane's size
    weight[:, :50] = 1.0
    weight[10:20, 10:20] = 0.0
    corrected = keyframes.corrected_model(model, keyframe, weight)
    hole = (slice(24, 36), slice(24, 36))
    assert np.abs(corrected[hole] - truth[hole]).max() < 1.0  # the bias seen around the hole is taken off
    assert np.allclose(corrected[:, 200:], model[:, 200:])  # far from any carried colour the models' stands


def test_keyframe_arguments_are_checked(tmp_path, shots):
    frames, gray, keyframe = shots
    with pytest.raises(KeyframeError, match="expected INDEX=IMAGE"):
        keyframe_paths(["first=frame.png"], None)
    with pytest.raises(KeyframeError, match="no such file"):
        keyframe_paths([f"3={tmp_path / 'absent.png'}"], None)
    with pytest.raises(KeyframeError, match="already has the keyframe"):
        keyframe_paths([f"0={keyframe}", f"0={keyframe}"], None)
    folder = tmp_path / "keys"
    folder.mkdir()
    with pytest.raises(KeyframeError, match="no images named"):
        keyframe_paths([], folder)
    cv2.imwrite(str(folder / "12.png"), frames[12])
    (folder / "notes.txt").write_text("the dress is red")  # not an image: left alone
    assert keyframe_paths([f"0={keyframe}"], folder) == {0: keyframe, 12: folder / "12.png"}
    cv2.imwrite(str(folder / "frame_40.png"), frames[12])  # an archivist's keyframe, misnamed
    with pytest.raises(KeyframeError, match="frame_40.png is not named <frame index>.png"):
        keyframe_paths([], folder)
    with pytest.raises(KeyframeError, match="the frames are 128x96"):
        keyframe_chroma(np.zeros((100, 100, 3), np.uint8), 96, 128, (64, 48))
    assert keyframe_chroma(cv2.resize(frames[0], (256, 192)), 96, 128, (64, 48)).shape == (48, 64, 2)
    with pytest.raises(KeyframeError, match="has only 36 frames"):
        propagate(gray, {40: keyframe})
    carried = propagate(gray, {40: keyframe}, wait=False)  # beside a pipeline: the last shot's frames wait, then fail
    try:
        assert carried.get(0) is None  # the cut at 26 released the first shot, which no keyframe reaches
        with pytest.raises(KeyframeError, match="has only 36 frames"):
            carried.get(30)
    finally:
        carried.close()
    carried = propagate(gray, {0: keyframe}, wait=False)
    carried.close()  # stops the pass, if it still runs
    assert not carried._thread.is_alive()


def test_colorize_keyframe_errors_are_one_line(tmp_path, shots, tiny_checkpoint, tiny_scene_checkpoint):
    frames, gray, keyframe = shots
    models = ["--model", str(tiny_checkpoint), "--scene-model", str(tiny_scene_checkpoint), "--quiet"]
    out = str(tmp_path / "o.mp4")
    assert_one_line_error(run("colorize", str(gray), "-o", out, "--keyframe", "x=1.png", *models), "INDEX=IMAGE")
    assert_one_line_error(run("colorize", str(gray), "-o", out, "--keyframe", "0=none.png", *models), "no such file")
    assert_one_line_error(run("colorize", str(gray), "-o", out, "--keyframe", f"99={keyframe}", *models),
                          "has only 36 frames")
    square = tmp_path / "square.png"
    cv2.imwrite(str(square), np.zeros((50, 50, 3), np.uint8))
    assert_one_line_error(run("colorize", str(gray), "-o", out, "--keyframe", f"0={square}", *models),
                          "a keyframe must show the whole frame")
    assert not (tmp_path / "o.mp4").exists()
    result = run("colorize", str(gray), "-o", out, "--keyframe", f"0={keyframe}", *models)
    assert result.returncode == 0, result.stderr


def test_the_keyframes_command_exports_a_frame_per_shot_and_per_long_stretch(tmp_path, shots):
    frames, gray, keyframe = shots
    written = export_keyframes(gray, tmp_path / "keys", every_seconds=0.5)  # 25 fps: every 12.5 frames
    assert [path.name for path in written] == ["0.png", "13.png", "26.png"]  # 26: the first after the cut
    assert cv2.imread(str(written[2]), cv2.IMREAD_UNCHANGED).shape == (96, 128)
    result = run("keyframes", str(gray), "-o", str(tmp_path / "keys"))
    assert_one_line_error(result, "already exists")
    result = run("keyframes", str(gray), "-o", str(tmp_path / "cli"), "--every", "100")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "cli").iterdir()) == ["0.png", "26.png"]


def test_palette_steers_towards_what_the_reference_knows_and_leaves_the_rest():
    reference = np.zeros((90, 120, 3), np.uint8)
    reference[:45] = (220, 160, 90)  # a bright blue sky above ...
    reference[45:] = (40, 110, 50)  # ... dark green grass below
    palette = Palette.from_image(reference)
    gray = imageops.to_gray(reference)
    ab = np.zeros((45, 60, 2), np.float32)  # the model's guess: gray
    steered = palette.steer(gray, ab)
    sky, grass = steered[:15].mean(axis=(0, 1)), steered[-15:].mean(axis=(0, 1))
    assert sky[1] < -15 and grass[0] < -15
    unknown = np.full((90, 120), 235, np.uint8)  # a tone the reference does not have: no opinion
    assert np.allclose(palette.steer(unknown, ab + 7.0), ab + 7.0)


def test_a_palette_pooled_from_images_trusts_less_where_they_disagree():
    blue, red = np.zeros((60, 80, 3), np.uint8), np.zeros((60, 80, 3), np.uint8)
    blue[:], red[:] = (230, 140, 105), (90, 120, 200)  # two colours of one lightness ...
    blue_palette, pooled = Palette.from_image(blue), Palette.from_images([blue, red])
    assert np.allclose(Palette.from_images([blue]).ab, blue_palette.ab)
    known = blue_palette.reliability > 0
    assert known.any() and np.all(pooled.reliability[known] < 0.5 * blue_palette.reliability[known])  # ... disagree
    same = Palette.from_images([blue, blue])
    assert np.allclose(same.ab, blue_palette.ab, atol=1e-4) and np.allclose(same.reliability, blue_palette.reliability)


def test_a_reference_steers_colorize_and_live(tmp_path, shots, tiny_checkpoint, tiny_scene_checkpoint):
    frames, gray, keyframe = shots
    models = ["--model", str(tiny_checkpoint), "--scene-model", str(tiny_scene_checkpoint)]
    plain, guided = tmp_path / "plain.mp4", tmp_path / "guided.mp4"
    assert run("colorize", str(gray), "-o", str(plain), *models, "--quiet").returncode == 0
    assert run("colorize", str(gray), "-o", str(guided), "--reference", str(keyframe), *models,
               "--quiet").returncode == 0
    field = (slice(70, 90), slice(90, 120))
    truth = ab_of(frames[10], field)
    plain_error = np.linalg.norm(ab_of(read_video(plain)[0][10], field) - truth)
    guided_error = np.linalg.norm(ab_of(read_video(guided)[0][10], field) - truth)
    assert guided_error < plain_error - 5
    stats = tmp_path / "live.json"
    result = run("live", "--source", str(gray), "--no-window", "--reference", str(keyframe), "--stats-json",
                 str(stats), *models)
    assert result.returncode == 0, result.stderr
    assert json.loads(stats.read_text())["frames"] > 0
    assert_one_line_error(run("colorize", str(gray), "-o", str(tmp_path / "x.mp4"), "--reference", str(keyframe),
                              "--scope", "faces", *models), "needs --scope frame")
