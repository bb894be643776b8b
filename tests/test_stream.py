"""The streaming pipeline: queues, stages and file-to-file colorization on clips made here."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from colorstream import imageops
from media import (face_canvas, moving_face_frames, read_video, write_cut_video, write_two_video_streams,
                   write_video)
from colorstream.model.inference import load
from colorstream.stream.frames import Face, Frame
from colorstream.stream.jobs import Options, colorize_image, colorize_video
from colorstream.stream.pipeline import END, FrameQueue, Pipeline, PipelineError, Stage, Stopped
from colorstream.stream.stages import Composite, Detect, Smooth
from colorstream.stream import tracking
from colorstream.stream.tracking import FaceTracker, OneEuroFilter, SceneCutDetector
from colorstream.stream.video_io import MediaError, VideoWriter


# --- queues and the pipeline -------------------------------------------------


def test_blocking_queue_applies_back_pressure_and_never_drops():
    stop = threading.Event()
    q = FrameQueue(2, leaky=False, stop=stop)
    received = []

    def consume():
        while (item := q.get()) is not END:
            time.sleep(0.001)
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(50):
        q.put(i)
    q.put(END)
    consumer.join(5)
    assert received == list(range(50)) and q.dropped == 0


def test_leaky_queue_drops_the_oldest_and_counts():
    q = FrameQueue(3, leaky=True, stop=threading.Event())
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(3)] == [7, 8, 9]
    assert q.dropped == 7


def test_blocked_queue_gives_up_when_stopped():
    stop = threading.Event()
    q = FrameQueue(1, leaky=False, stop=stop)
    q.put(1)
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(Stopped):
        q.put(2)


def test_pipeline_keeps_order_batches_and_counts_time():
    sizes = []

    def record(batch):
        sizes.append(len(batch))
        return [x * 2 for x in batch]

    pipeline = Pipeline(range(100), [Stage("double", record, batch=8), Stage("inc", lambda b: [x + 1 for x in b])],
                        leaky=False, queue_size=4)
    assert list(pipeline.run()) == [2 * i + 1 for i in range(100)]
    assert max(sizes) <= 8 and sum(sizes) == 100
    assert set(pipeline.seconds) == {"capture", "double", "inc"}


def test_a_file_pipeline_batches_the_same_however_slowly_items_come():
    """The models' arithmetic differs a little with the batch size, so a file's batches must not depend on
    timing (a frame's colour changed between two runs under load); a live pipeline never waits for a batch."""
    def slow(count):
        for item in range(count):
            time.sleep(0.002 * (item % 3))
            yield item

    for leaky, expected in ((False, [8] * 4 + [3]), (True, None)):
        sizes = []

        def record(batch):
            sizes.append(len(batch))
            return batch

        results = list(Pipeline(slow(35), [Stage("model", record, batch=8)], leaky=leaky, queue_size=16).run())
        if expected is not None:
            assert sizes == expected and results == list(range(35))
        else:
            assert len(sizes) > 5  # it took what was waiting: mostly one at a time


def test_pipeline_error_stops_everything_and_names_the_stage():
    def explode(batch):
        if batch[0] == 5:
            raise ValueError("bad frame 5")
        return batch

    pipeline = Pipeline(iter(range(10 ** 6)), [Stage("boom", explode)], leaky=False)
    with pytest.raises(PipelineError, match="boom stage failed: bad frame 5"):
        list(pipeline.run())
    assert pipeline.stop.is_set()


def test_pipeline_source_error_surfaces():
    def broken():
        yield 1
        raise OSError("camera unplugged")

    with pytest.raises(PipelineError, match="capture stage failed: camera unplugged"):
        list(Pipeline(broken(), [Stage("id", lambda b: b)], leaky=False).run())


def test_closing_the_consumer_stops_all_threads():
    before = threading.active_count()
    results = Pipeline(iter(range(10 ** 6)), [Stage("id", lambda b: b)], leaky=True, queue_size=1).run()
    next(results)
    results.close()
    assert threading.active_count() == before


# --- stages ------------------------------------------------------------------


def test_one_euro_filter_holds_still_values_and_follows_motion():
    still = OneEuroFilter()
    rng = np.random.default_rng(0)
    noisy = [still(np.array([100.0 + rng.normal(0, 2)]), t / 30) for t in range(60)]
    assert np.std(noisy[10:]) < 1.0  # jitter of std 2 is damped
    moving = OneEuroFilter()
    outputs = [moving(np.array([10.0 * t]), t / 30)[0] for t in range(60)]
    assert 590 - outputs[-1] < 60  # follows a fast ramp with little lag


def test_tracker_keeps_identity_of_a_moving_face(portrait):
    tracker = FaceTracker(detect_every=2, min_face=30)
    ids = set()
    for index, image in enumerate(moving_face_frames(portrait, 12, 200, 140)):
        tracks = tracker.update(imageops.to_gray(image), index / 25)
        assert len(tracks) == 1
        ids.add(tracks[0].id)
    assert ids == {0}


def test_tracker_searches_near_its_tracks_between_full_scans(portrait, monkeypatch):
    calls = {"full": 0, "near": 0}
    full, near = imageops.detect_faces, imageops.detect_faces_near

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(imageops, "detect_faces", counted("full", full))
    monkeypatch.setattr(imageops, "detect_faces_near", counted("near", near))
    tracker = FaceTracker(detect_every=2, rescan_seconds=8 / 25, min_face=30)
    for index, image in enumerate(moving_face_frames(portrait, 16, 200, 140)):
        tracks = tracker.update(imageops.to_gray(image), index / 25)
        assert [track.id for track in tracks] == [0]
    # frames 0 and 8 scan the frame; frame 0's new face is confirmed by a near search with the second
    # cascade; 2, 4, 6, 8, 10, 12, 14 look near the face
    assert calls == {"full": 2, "near": 8}


def test_without_a_face_the_frame_is_scanned_every_search_interval_and_at_once_after_a_cut(monkeypatch):
    """A full scan is the tracker's dearest step (120 ms on a 720p frame on our CPU): footage with no face must
    not pay it at every detection."""
    scanned = []
    monkeypatch.setattr(imageops, "detect_faces", lambda gray, **kwargs: scanned.append(index) or [])
    tracker = FaceTracker(detect_every=2, search_seconds=0.25)
    empty = np.zeros((90, 160), np.uint8)
    for index in range(30):  # 24 fps
        if index == 21:
            tracker.reset()  # a scene cut
        tracker.update(empty, index / 24)
    assert scanned == [0, 6, 12, 18, 21, 27]  # every 6th frame, a detection frame; at once after the cut


def test_frames_whose_time_stands_still_or_goes_back_still_get_scanned(monkeypatch):
    """A broken file's repeated timestamps must not stop the search: such a frame counts as 1/30 s."""
    scanned = []
    monkeypatch.setattr(imageops, "detect_faces", lambda gray, **kwargs: scanned.append(index) or [])
    tracker = FaceTracker(detect_every=3, search_seconds=0.2)
    for index in range(24):
        tracker.update(np.zeros((90, 160), np.uint8), 5.0 if index < 12 else 1.0)  # stuck, then back in time
    assert scanned == [0, 6, 12, 18]


def test_a_lost_face_is_searched_for_at_every_detection_for_a_while(monkeypatch):
    scanned = []
    face = [imageops.Box(10, 10, 50, 50)]
    monkeypatch.setattr(imageops, "detect_faces", lambda gray, **kwargs: scanned.append(index) or
                        (face if index < 6 else []))
    monkeypatch.setattr(imageops, "detect_faces_near", lambda gray, box, **kwargs: face if index < 6 else [])
    tracker = FaceTracker(detect_every=2, search_seconds=0.25, lost_seconds=0.5, confirm_cascade=None)
    for index in range(40):  # 24 fps; the face is gone from frame 6, its track dropped at frame 10
        tracker.update(np.zeros((90, 160), np.uint8), index / 24)
    # tracked last at frame 8: every detection for half a second after, then every quarter second
    assert scanned == [0, 12, 14, 16, 18, 24, 30, 36]


def test_rescan_finds_a_new_face_with_the_tracked_one_flattened_out(portrait, monkeypatch):
    full_scans = []
    full = imageops.detect_faces
    monkeypatch.setattr(imageops, "detect_faces", lambda *a, **k: full_scans.append(full(*a, **k)) or full_scans[-1])
    tracker = FaceTracker(detect_every=2, rescan_seconds=8 / 25, min_face=30)
    counts = []
    for index in range(10):
        positions = [(8, 8)] + ([(250, 8)] if index >= 3 else [])  # a second face walks in at frame 3
        counts.append(len(tracker.update(imageops.to_gray(face_canvas(portrait, 370, 121, positions)), index / 25)))
    assert counts == [1] * 8 + [2, 2]  # found at the first rescan after it came, not before
    assert [len(found) for found in full_scans] == [1, 1]  # the rescan did not find the tracked face again
    face = tracker.tracks[0].box
    flattened = tracking.without_faces(imageops.to_gray(face_canvas(portrait, 370, 121, [(8, 8)])), [face])
    assert imageops.detect_faces(flattened, min_face=30) == []


def test_tracker_needs_a_second_cascade_to_start_a_track():
    """Frame 36 of the sample clip: the main cascade also finds a false face on the background."""
    container = av.open("samples/astronaut_gray.mp4")
    gray = next(frame for index, frame in enumerate(container.decode(video=0)) if index == 36).to_ndarray(
        format="gray")
    container.close()
    assert len(imageops.detect_faces(gray, min_face=40)) == 2
    assert len(FaceTracker(confirm_cascade=None).update(gray, 0.0)) == 2
    tracks = FaceTracker().update(gray, 0.0)
    assert len(tracks) == 1 and tracks[0].box.w > 80  # the astronaut's face, not the small false one


def test_scene_cut_detector():
    cuts = SceneCutDetector()
    dark, light = np.full((60, 80), 20, np.uint8), np.full((60, 80), 220, np.uint8)
    assert [cuts(dark), cuts(dark), cuts(light), cuts(light)] == [False, False, True, False]


def test_a_cut_between_two_shots_of_one_tone_is_found_and_motion_flash_and_fade_are_not():
    rng = np.random.default_rng(0)
    stage = cv2.GaussianBlur(rng.integers(0, 120, (120, 200), np.uint8), (0, 0), 6)  # dark, as under stage lights
    close_up = cv2.GaussianBlur(rng.integers(0, 120, (120, 200), np.uint8), (0, 0), 6)
    stage = cv2.normalize(stage, None, 10, 110, cv2.NORM_MINMAX)
    close_up = cv2.normalize(close_up, None, 10, 110, cv2.NORM_MINMAX)
    cuts = SceneCutDetector()
    shots = [stage[:, :160], stage[:, 6:166], stage[:, 12:172], close_up[:, :160], close_up[:, 3:163]]
    change = np.abs(stage[:, 12:172].astype(float) - close_up[:, :160]).mean()
    assert change < 40  # the mean difference alone would not see this cut
    assert [cuts(frame) for frame in shots] == [False, False, False, True, False]
    flash = cv2.add(close_up[:, 3:163], 40)  # a flash: much brighter, the same layout
    fade = [(close_up[:, 3:163] * level).astype(np.uint8) for level in (0.8, 0.6, 0.45, 0.3)]
    assert [cuts(frame) for frame in [flash, close_up[:, 3:163], *fade]] == [False] * 6


def _frame_with_face(colour: np.ndarray, track: int = 0, cut: bool = False) -> Frame:
    frame = Frame(0, np.zeros((64, 64), np.uint8), scene_cut=cut)
    frame.faces = [Face(track, imageops.Box(8, 8, 48, 48), colour=colour)]
    return frame


def test_mean_smoothing_averages_then_resets_on_cut_and_new_track():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 2] = 200
    blue = np.zeros((16, 16, 3), np.uint8)
    blue[..., 0] = 200
    smooth = Smooth("mean", window=2)
    a = smooth([_frame_with_face(red)])[0].faces[0].chroma
    b = smooth([_frame_with_face(blue)])[0].faces[0].chroma
    a_blue = imageops.bgr_to_lab(blue)[:, :, 1:]
    assert np.allclose(b, (a + a_blue) / 2, atol=1e-4)
    after_cut = smooth([_frame_with_face(red, cut=True)])[0].faces[0].chroma
    assert np.allclose(after_cut, a, atol=1e-4)
    new_track = smooth([_frame_with_face(blue, track=7)])[0].faces[0].chroma
    assert np.allclose(new_track, a_blue, atol=1e-4)
    with pytest.raises(ValueError):
        Smooth("median")


def test_ema_smoothing_weights_the_new_frame_by_two_over_window_plus_one():
    grey, red = np.full((8, 8, 3), 128, np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 200
    smooth = Smooth("ema", window=3)
    first = smooth([_frame_with_face(grey)])[0].faces[0].chroma
    second = smooth([_frame_with_face(red)])[0].faces[0].chroma
    assert np.allclose(second, 0.5 * imageops.bgr_to_lab(red)[:, :, 1:] + 0.5 * first, atol=1e-4)


def test_reach_widens_the_coloured_square_around_the_same_face(portrait):
    gray = imageops.to_gray(face_canvas(portrait, 320, 240, [(100, 60)]))
    squares = {}
    for reach in (1.0, Options().reach):
        frame = Detect(FaceTracker(detect_every=1, min_face=30), crop_margin=1.4, reach=reach)([Frame(0, gray)])[0]
        assert len(frame.faces) == 1
        squares[reach] = frame.faces[0].box
    narrow, wide = squares.values()
    assert Options().reach == 1.3  # the default chosen on the colour clips (docs/HISTORY.md)
    assert wide.w == pytest.approx(1.3 * narrow.w)
    assert wide.center == pytest.approx(narrow.center)


def test_composite_keeps_luminance_and_colours_only_the_face():
    rng = np.random.default_rng(0)
    gray = rng.integers(30, 220, (60, 90), dtype=np.uint8)
    frame = Frame(0, gray)
    chroma = np.zeros((16, 16, 2), np.float32)
    chroma[..., 0] = 30.0  # strongly red
    frame.faces = [Face(0, imageops.Box(40, 10, 40, 40), chroma=chroma)]
    output = Composite(feather=0.2)([frame])[0].output_bgr()
    lightness_in = imageops.bgr_to_lab(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))[..., 0]
    lightness_out = imageops.bgr_to_lab(output)[..., 0]
    assert np.abs(lightness_out - lightness_in)[15:45, 45:75].mean() < 1.5
    assert imageops.bgr_to_lab(output)[30, 60, 1] > 15  # the face centre is coloured
    assert np.array_equal(output[:, :35], cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)[:, :35])  # elsewhere untouched


# --- file to file ------------------------------------------------------------


@pytest.fixture
def predictor(tiny_checkpoint):
    return load(tiny_checkpoint, device="cpu")


def test_colorize_keeps_every_frame_timestamp_size_and_the_audio(tmp_path, portrait, predictor):
    frames = moving_face_frames(portrait, 20, width=161, height=121)  # odd size
    pts = [0, 40, 80, 200, 240, 250, 260, 400] + [440 + 40 * i for i in range(12)]  # variable frame rate, ms
    source = write_video(tmp_path / "in.mp4", frames, pts, audio_seconds=1.2)
    report = colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    out_frames, out_times, facts = read_video(tmp_path / "out.mp4")
    _, in_times, in_facts = read_video(source)
    assert len(out_frames) == 20 == report["frames"]
    assert np.allclose(out_times, in_times, atol=1e-3) and np.allclose(out_times, np.array(pts) / 1000, atol=1e-3)
    assert (facts["width"], facts["height"]) == (161, 121) and out_frames[0].shape == (121, 161, 3)
    assert [codec for codec, _ in facts["audio"]] == ["aac"]
    assert facts["audio"][0][1] == pytest.approx(in_facts["audio"][0][1], abs=0.05)
    assert report["frames_with_faces"] >= 15 and report["bad_packets"] == 0
    assert set(report["ms_per_frame"]) >= {"decode", "detect", "sketchify", "inference", "smoothing", "composite",
                                           "encode"}
    assert not list(tmp_path.glob(".*partial*"))


def _audio(path) -> tuple[str, np.ndarray, int, float]:
    """The first audio stream's codec, its decoded samples (first channel), rate and start in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        samples = np.concatenate([frame.to_ndarray().reshape(len(frame.layout.channels), -1)[0] for frame in frames])
        return stream.codec_context.name, samples, stream.rate, float(frames[0].pts * frames[0].time_base)


def test_pcm_audio_is_re_encoded_to_aac_for_mp4(tmp_path, portrait, predictor):
    """mp4 lists PCM among its codecs, yet refuses a Matroska PCM track (no channel layout): the writer re-encodes
    it to AAC, resampled to the encoder's sample format, in time with the video, rather than fail."""
    source = write_video(tmp_path / "in.mkv", moving_face_frames(portrait, 20, 96, 64), audio_seconds=0.8,
                         audio_codec="pcm_s16le", audio_layout="stereo")
    assert _audio(source)[0] == "pcm_s16le"
    report = colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    out_frames, out_times, facts = read_video(tmp_path / "out.mp4")
    assert len(out_frames) == 20 == report["frames"] and out_frames[0].shape == (64, 96, 3)
    assert np.allclose(out_times, np.arange(20) / 25, atol=1e-3)
    assert [codec for codec, _ in facts["audio"]] == ["aac"] and facts["audio"][0][1] == pytest.approx(0.8, abs=0.05)
    codec, samples, rate, start = _audio(tmp_path / "out.mp4")
    assert rate == 16000 and start == pytest.approx(0.0, abs=0.07)  # AAC's priming samples may lead
    spectrum = np.abs(np.fft.rfft(samples[:int(0.5 * rate)]))
    assert np.argmax(spectrum) * rate / int(0.5 * rate) == pytest.approx(440, abs=4)  # the tone, not noise
    assert report["bad_packets"] == 0 and not report["truncated"] and report["dropped_streams"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.mp4", "tiny.pt"]


def test_a_muxer_that_refuses_only_when_finishing_leaves_no_file(tmp_path, portrait, predictor, monkeypatch):
    monkeypatch.setattr("colorstream.stream.video_io.audio_copyable", lambda codec, output: True)  # the old guess
    source = write_video(tmp_path / "in.mkv", moving_face_frames(portrait, 4, 96, 64), audio_seconds=0.2,
                         audio_codec="pcm_s16le", audio_layout="stereo")
    with pytest.raises(MediaError, match="cannot write .*Invalid argument"):  # mp4: no PCM without a layout
        colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "tiny.pt"]


def test_a_video_cut_short_is_reported_with_the_stated_count(tmp_path, predictor):
    cut = write_cut_video(tmp_path)
    report = colorize_video(cut, tmp_path / "out.mp4", predictor, Options(), progress=False)
    assert report["truncated"] and report["frames_expected"] == 50 and 10 <= report["frames"] <= 40
    assert len(read_video(tmp_path / "out.mp4")[0]) == report["frames"]
    whole = colorize_video(tmp_path / "whole.mp4", tmp_path / "whole_out.mp4", predictor, Options(), progress=False)
    assert (whole["frames"], whole["frames_expected"], whole["truncated"]) == (50, 50, False)


def test_streams_left_behind_are_counted_by_kind(tmp_path, predictor):
    """Only the first video stream and the audio go into the output; the rest is reported, not lost silently."""
    source = write_two_video_streams(tmp_path / "two.mkv")
    report = colorize_video(source, tmp_path / "out.mkv", predictor, Options(), progress=False)
    assert report["dropped_streams"] == {"video": 1, "subtitle": 1} and report["frames"] == 5
    with av.open(str(tmp_path / "out.mkv")) as output:
        assert [stream.type for stream in output.streams] == ["video"]


def test_colorize_passes_faceless_frames_through_and_handles_two_faces(tmp_path, portrait, predictor):
    blank = [np.full((64, 96, 3), v, np.uint8) for v in range(60, 90, 3)]
    source = write_video(tmp_path / "blank.mp4", blank)
    report = colorize_video(source, tmp_path / "blank_out.mp4", predictor, Options(), progress=False)
    out_frames, _, _ = read_video(tmp_path / "blank_out.mp4")
    assert report["frames_with_faces"] == 0 and len(out_frames) == 10
    decoded, _, _ = read_video(source)  # unchanged but for one more encode at crf 18
    assert max(np.abs(o.astype(int) - d.astype(int)).max() for o, d in zip(out_frames, decoded)) <= 3
    two = [face_canvas(portrait, 260, 130, [(10, 20), (150, 20)], face_size=100)] * 4
    report = colorize_video(write_video(tmp_path / "two.mp4", two), tmp_path / "two_out.mp4", predictor,
                            Options(detect_every=1), progress=False)
    assert report["frames_with_faces"] == 4


def _y_planes(path) -> list[np.ndarray]:
    """The coded Y plane of every frame, whatever the chroma layout."""
    with av.open(str(path)) as container:
        return [np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)[:, :frame.width]
                for frame in container.decode(video=0)]


@pytest.mark.parametrize("size", [(160, 120), (161, 121)])  # 4:2:0, and 4:4:4 for the odd size
def test_colorize_passes_the_luma_plane_through_bit_for_bit(tmp_path, portrait, predictor, size):
    source = write_video(tmp_path / "in.mp4", moving_face_frames(portrait, 6, *size))
    report = colorize_video(source, tmp_path / "out.mp4", predictor, Options(crf=0, detect_every=1), progress=False)
    assert report["frames_with_faces"] == 6
    out_frames, _, _ = read_video(tmp_path / "out.mp4")
    assert max(np.abs(o.astype(int) - o.mean(axis=2, keepdims=True)).max() for o in out_frames) > 5  # has colour
    # ... yet losslessly encoded (crf 0), its luminance is the source's own, bit for bit
    assert all(np.array_equal(a, b) for a, b in zip(_y_planes(source), _y_planes(tmp_path / "out.mp4")))


@pytest.mark.parametrize("size, preset, search", [((256, 192), "veryfast", b"subme=4 "), ((640, 480), "veryfast", b"subme=4 "),
                                                 ((844, 844), "veryfast", b"subme=2 "), ((256, 192), "medium", b"subme=7 ")])
def test_frames_up_to_640x480_get_a_finer_motion_search_at_the_default_preset(tmp_path, size, preset, search):
    """veryfast's one-pass motion refinement makes a slow pan's re-encoded luma shimmer; where there is time
    for it, subme 4 is used. Another preset keeps its own, and larger frames keep veryfast's speed."""
    width, height = size
    path = tmp_path / "out.mp4"
    with VideoWriter(path, width, height, Fraction(25), Fraction(1, 25), preset=preset) as writer:
        for index in range(2):
            writer.write(np.full((height, width), 60 + index, np.uint8), None, index)
    assert search in path.read_bytes()  # x264 writes its settings into the stream


def test_colorize_keeps_rotation_metadata(tmp_path, portrait, predictor):
    source = write_video(tmp_path / "rot.mp4", moving_face_frames(portrait, 4, 96, 64), rotation=90)
    assert read_video(source)[2]["rotation"] == 90
    colorize_video(source, tmp_path / "rot_out.mp4", predictor, Options(), progress=False)
    assert read_video(tmp_path / "rot_out.mp4")[2]["rotation"] == 90


def test_colorize_image_keeps_size(tmp_path, portrait, predictor):
    odd = cv2.resize(portrait, (263, 251))
    cv2.imwrite(str(tmp_path / "in.png"), odd)
    report = colorize_image(tmp_path / "in.png", tmp_path / "out.png", predictor, Options())
    assert cv2.imread(str(tmp_path / "out.png")).shape == (251, 263, 3) and report["frames_with_faces"] == 1


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "empty file"),
    (np.random.default_rng(0).bytes(5000), "not a readable video"),
])
def test_bad_video_inputs_raise_one_line_errors(tmp_path, predictor, content, message):
    source = tmp_path / "bad.mp4"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    assert list(tmp_path.glob("out*")) == [] and not list(tmp_path.glob(".*partial*"))


def test_damaged_packets_are_skipped_and_counted(tmp_path, portrait, predictor):
    source = write_video(tmp_path / "in.ts", moving_face_frames(portrait, 30, 96, 64), time_base=Fraction(1, 90000))
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = np.random.default_rng(1).bytes(3000)
    source.write_bytes(bytes(data))
    report = colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    assert 10 <= report["frames"] <= 30
    assert read_video(tmp_path / "out.mp4")[0][0].shape == (64, 96, 3)


def test_a_failing_stage_leaves_no_output(tmp_path, portrait, predictor, monkeypatch):
    source = write_video(tmp_path / "in.mp4", moving_face_frames(portrait, 12, 96, 64))

    def broken(self, frames):
        raise RuntimeError("simulated inference failure")

    monkeypatch.setattr("colorstream.stream.stages.Infer.__call__", broken)
    with pytest.raises(PipelineError, match="inference stage failed: simulated inference failure"):
        colorize_video(source, tmp_path / "out.mp4", predictor, Options(), progress=False)
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*partial*"))


def test_face_ab_distance_by_hand():
    from colorstream.stream.evaluation import ab_distance_sum, face_ab, face_pixels

    truth = np.full((20, 20, 3), 128, np.uint8)
    truth[..., 2] = 200  # reddish
    gray = np.full((20, 20, 3), 128, np.uint8)
    box = imageops.Box(5, 5, 10, 10)
    ab = imageops.bgr_to_lab(truth[:1, :1])[0, 0, 1:]
    assert face_pixels(truth, [box, imageops.Box(-2, 18, 4, 4)]).shape == (100 + 4, 3)  # clipped to the frame
    assert face_ab(gray, [box]).shape == (100, 2)
    assert ab_distance_sum(face_ab(gray, [box]), face_ab(truth, [box])) / 100 == pytest.approx(float(np.hypot(*ab)),
                                                                                               rel=1e-3)
    assert ab_distance_sum(face_ab(truth, [box]), face_ab(truth, [box])) == 0.0
    assert face_ab(gray, [imageops.Box(30, 30, 5, 5)]).shape == (0, 2)


def test_evaluate_video_scores_output_gray_baseline_and_temporal_consistency(tmp_path, portrait, predictor):
    from colorstream.stream.evaluation import evaluate_video

    frames = moving_face_frames(portrait, 8, 200, 150)
    source = write_video(tmp_path / "colour.mp4", frames, audio_seconds=0.3)
    strip = tmp_path / "strip.png"
    report = evaluate_video(source, predictor, Options(), workdir=tmp_path, strip=strip)
    assert report["frames"] == 8 and report["frames_with_faces"] >= 4
    assert report["face_ab_error_gray"] > 3  # the portrait's face has colour the gray clip lacks
    assert np.isfinite(report["psnr_output"]) and report["psnr_gray"] > 15
    assert 0 < report["ssim_gray"] < 1 and report["face_colourfulness_truth"] > 5
    assert 0 < report["warp_error_truth"] < 0.05 and report["warp_error_output"] > 0
    assert report["chroma_warp_error_truth"] > 0 and report["chroma_warp_error_output"] > 0
    assert report["face_chroma_flicker_truth"] > 0 and report["cdc_truth"] > 0
    assert report["excess_face_chroma_flicker"] == pytest.approx(
        report["face_chroma_flicker_output"] - report["face_chroma_flicker_truth"], abs=2e-3)
    assert report["smoothing_ms_per_frame"] >= report["ms_per_frame"]["smoothing"] >= 0
    box = imageops.largest_face(frames[0], min_face=Options().min_face)
    skin = frames[0][int(box.y):int(box.y + box.h), int(box.x):int(box.x + box.w)]
    truth_ab = imageops.bgr_to_lab(skin)[..., 1:].reshape(-1, 2).mean(axis=0)  # the face box's mean a*, b*
    assert truth_ab.min() > 5  # skin: red and yellow
    assert [report["face_a_truth"], report["face_b_truth"]] == pytest.approx(truth_ab, abs=1.5)
    plot = cv2.imread(str(strip))
    assert plot is not None and plot.shape[1] >= 8 and plot.std() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mp4", "strip.png", "tiny.pt"]  # scratch cleaned


def test_strip_plot_leaves_gaps_for_frames_without_a_face():
    from colorstream.stream.strip_plot import MARGIN, draw_strip

    means = np.array([[5, -3, 4, -2], [6, -2, 4, -2], [np.nan] * 4, [7, -1, 5, -1]], np.float32)
    image = draw_strip(means, "test clip")
    assert image.dtype == np.uint8 and image.ndim == 3
    red = image[..., 2].astype(int) - image[..., 0] > 100
    assert red.any()  # the output's line is drawn
    step = 1200 // 4  # columns per frame
    assert not red[:, MARGIN + step + 2:MARGIN + 3 * step - 2].any()  # nothing from frame 1 to 3, across the gap
    assert draw_strip(np.full((3, 4), np.nan, np.float32), "no faces").shape[0] == image.shape[0]


def test_track_report_shows_the_false_track_the_second_cascade_drops(tmp_path, capsys):
    from colorstream.stream import track_report

    track_report.main(["samples/astronaut_gray.mp4", "--sheet", str(tmp_path / "sheet.png")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "astronaut_gray.mp4: 2 tracks without the second cascade, 1 with it"
    assert "  frames 0-74 (75): kept" in lines and "  frames 27-35 (9): dropped" in lines
    assert cv2.imread(str(tmp_path / "sheet.png")).shape == (track_report.TILE, 6 * track_report.TILE, 3)


def test_the_chroma_warp_error_sees_colour_flicker_and_not_the_luma():
    """A still scene whose colour blinks (the truth) and one whose gray shimmers (the output): the whole-frame warp
    error sees both, the chroma planes' only the blink."""
    from colorstream.stream.evaluation import ClipScores

    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(40, 220, (48, 64), np.uint8), (0, 0), 2.0)
    scores = ClipScores(min_face=24)
    for index in range(4):
        tint = np.array([0, 0, 40 if index % 2 else 0], np.int16)  # BGR: redder every other frame
        truth = np.clip(np.dstack([texture] * 3).astype(np.int16) + tint, 0, 255).astype(np.uint8)
        shimmer = np.clip(texture.astype(np.int16) + (6 if index % 2 else 0), 0, 255).astype(np.uint8)
        scores.add(truth, np.dstack([texture] * 3), np.dstack([shimmer] * 3))
    report = scores.report()
    assert report["warp_error_output"] > 1e-4 and report["warp_error_truth"] > 1e-3
    assert report["chroma_warp_error_output"] == 0.0  # gray stays gray
    assert report["chroma_warp_error_truth"] > 1e-3
