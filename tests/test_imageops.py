import cv2
import numpy as np
import pytest

from colorstream import imageops


def test_pencil_sketch_is_the_colour_dodge_of_gray_by_its_blurred_negative():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    blurred_negative = cv2.GaussianBlur(255 - gray, (0, 0), 2.0).astype(np.float64)
    expected = np.clip(np.round(gray * 256.0 / np.maximum(255.0 - blurred_negative, 1e-9)), 0, 255)
    sketch = imageops.pencil_sketch(gray, blur_sigma=2.0)
    assert sketch.shape == gray.shape and sketch.dtype == np.uint8
    assert np.abs(sketch.astype(int) - expected).max() <= 1


def test_pencil_sketch_of_flat_image_is_white_and_accepts_colour(portrait):
    flat = np.full((30, 30), 120, np.uint8)
    assert imageops.pencil_sketch(flat).min() >= 254
    sketch = imageops.pencil_sketch(portrait)
    assert sketch.shape == portrait.shape[:2]
    assert (sketch < 200).mean() > 0.01  # a real face gives strokes


def test_line_sketch_draws_dark_lines_at_edges_only():
    image = np.full((64, 64), 200, np.uint8)
    image[:, 32:] = 40  # one vertical edge
    lines = imageops.line_sketch(image, sigma=1.0)
    assert lines[:, :20].min() == 255 and lines[:, 45:].min() == 255
    assert lines[:, 28:36].min() < 100


def test_make_sketch_dispatches_and_rejects_unknown_kind(portrait):
    assert np.array_equal(imageops.make_sketch(portrait, "pencil", blur_sigma=3.0),
                          imageops.pencil_sketch(portrait, blur_sigma=3.0))
    assert np.array_equal(imageops.make_sketch(portrait, "gray"), imageops.to_gray(portrait))
    with pytest.raises(ValueError, match="unknown input kind"):
        imageops.make_sketch(portrait, "charcoal")


def test_normalize_sketch_maps_paper_to_white_and_ink_to_the_level():
    sketch = np.full((100, 100), 180, np.uint8)  # gray paper
    sketch[40:60, 10:90] = 20  # heavy strokes
    out = imageops.normalize_sketch(sketch, ink_level=64.0, max_gain=10.0)
    assert out[0, 0] == 255
    assert out[50, 50] == 64


def test_normalize_sketch_caps_gain_and_keeps_blank_paper_blank():
    faint = np.full((50, 50), 250, np.uint8)
    faint[20:30, 20:30] = 230  # faint strokes: gain capped at 4 -> 255 - 20 * 4
    assert imageops.normalize_sketch(faint, max_gain=4.0)[25, 25] == 175
    assert (imageops.normalize_sketch(np.full((20, 20), 90, np.uint8)) == 255).all()


def test_detect_faces_finds_the_sample_face_and_scales_boxes_back(portrait):
    faces = imageops.detect_faces(portrait)
    assert len(faces) >= 1
    face = faces[0]
    big = cv2.resize(portrait, (1024, 1024))
    big_face = imageops.largest_face(big, max_side=256)
    assert big_face is not None
    assert abs(big_face.center[0] / 4 - face.center[0]) < 12 and abs(big_face.w / 4 - face.w) < 20
    assert imageops.detect_faces(np.full((100, 100, 3), 128, np.uint8)) == []


def test_square_box_is_centred_and_scaled():
    box = imageops.square_box(imageops.Box(10, 20, 30, 40), margin=1.5)
    assert box.w == box.h == 60
    assert box.center == (25.0, 40.0)


def test_crop_square_pads_by_replicating_the_border():
    image = np.zeros((10, 10), np.uint8)
    image[:, -1] = 200
    crop = imageops.crop_square(image, imageops.Box(5, 0, 10, 10), 10)
    assert (crop[:, 5:] == 200).all()  # beyond the right edge: replicated last column
    filled = imageops.crop_square(image, imageops.Box(5, 0, 10, 10), 10, fill=77)
    assert (filled[:, 6:] == 77).all()


def test_paste_square_inverts_crop_square(portrait):
    box = imageops.Box(60.0, 50.0, 120.0, 120.0)
    crop = imageops.crop_square(portrait, box, 120)
    background = np.zeros_like(portrait)
    pasted = imageops.paste_square(background, crop, box, feather=0.1)
    centre = (slice(80, 150), slice(90, 160))
    assert np.abs(pasted[centre].astype(int) - portrait[centre].astype(int)).max() <= 2
    assert (pasted[:40] == 0).all()  # outside the box the canvas is untouched


def test_feather_mask_is_one_inside_and_falls_to_zero_at_edges():
    mask = imageops.feather_mask(40, feather=0.25)
    assert mask[20, 20] == 1.0
    assert mask[0, 20] < 0.01 and mask[20, 0] < 0.01
    assert np.allclose(mask, mask.T) and np.allclose(mask, mask[::-1])


def test_lab_and_ycrcb_round_trip(portrait):
    lab = imageops.bgr_to_lab(portrait)
    assert 0 <= lab[..., 0].min() and lab[..., 0].max() <= 100
    assert np.abs(imageops.lab_to_bgr(lab).astype(int) - portrait).max() <= 2
    ycc = imageops.bgr_to_ycrcb(portrait)
    assert np.abs(imageops.ycrcb_to_bgr(ycc).astype(int) - portrait).max() <= 3
    gray = np.full((4, 4, 3), 128, np.uint8)
    assert np.abs(imageops.bgr_to_lab(gray)[..., 1:]).max() < 0.5  # gray has no chroma


def test_prepare_sketch_resizes_and_normalizes(portrait):
    prepared = imageops.prepare_sketch(imageops.pencil_sketch(portrait), 48, normalize=True)
    assert prepared.shape == (48, 48) and prepared.dtype == np.uint8
    assert prepared.max() == 255 and prepared.min() <= 70


def test_find_sketch_face_finds_the_face_in_a_sketch(portrait):
    assert imageops.find_sketch_face(imageops.pencil_sketch(portrait)) is not None


def test_video_range_luma_round_trips_and_matches_ffmpeg():
    import av

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    video = np.arange(16, 236, dtype=np.uint8).reshape(4, 55)
    assert np.array_equal(imageops.gray_to_luma(imageops.luma_to_gray(video)), video)  # 219 steps fit in 255
    assert np.abs(imageops.luma_to_gray(imageops.gray_to_luma(levels)).astype(int) - levels).max() <= 1
    assert imageops.gray_to_luma(levels).min() == 16 and imageops.gray_to_luma(levels).max() == 235
    planes = np.concatenate([levels.ravel(), np.full(128, 128, np.uint8)]).reshape(24, 16)
    ffmpeg_gray = av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="gray")
    assert np.array_equal(imageops.luma_to_gray(levels), ffmpeg_gray)


def test_video_chroma_round_trips_through_bgr_and_matches_ffmpeg(portrait):
    import av

    cb, cr = imageops.bgr_to_video_chroma(portrait)
    assert 16 <= min(cb.min(), cr.min()) and max(cb.max(), cr.max()) <= 240
    rebuilt = imageops.gray_with_chroma(imageops.to_gray(portrait), (cb, cr))
    assert np.abs(rebuilt.astype(int) - portrait).mean() < 1.5
    # a flat colour, so chroma upsampling cannot differ: our planes decode as FFmpeg decodes them
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:] = (40, 90, 200)
    cb, cr = imageops.bgr_to_video_chroma(flat)
    luma = imageops.gray_to_luma(imageops.to_gray(flat))
    planes = np.concatenate([luma.ravel(), cb[::2, ::2].ravel(), cr[::2, ::2].ravel()]).reshape(24, 16)
    ffmpeg = av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="bgr24")
    ours = imageops.gray_with_chroma(imageops.luma_to_gray(luma), (cb[::2, ::2], cr[::2, ::2]))
    assert np.abs(ours.astype(int) - ffmpeg).max() <= 3
    assert np.array_equal(imageops.gray_with_chroma(luma), cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR))


def test_chroma_subsampling_is_420_only_for_even_sizes():
    assert imageops.chroma_subsampling(480, 640) == 2
    assert [imageops.chroma_subsampling(h, w) for h, w in [(121, 160), (120, 161), (1, 1)]] == [1, 1, 1]


def test_detect_faces_near_searches_only_around_the_expected_face(portrait):
    canvas = np.full((600, 900, 3), 90, np.uint8)
    canvas[300:556, 600:856] = portrait
    face = imageops.detect_faces(canvas)[0]
    near = imageops.detect_faces_near(canvas, face)
    assert len(near) == 1 and abs(near[0].center[0] - face.center[0]) < 8 and abs(near[0].w - face.w) < 0.2 * face.w
    elsewhere = imageops.Box(50, 50, face.w, face.h)
    assert imageops.detect_faces_near(canvas, elsewhere) == []
    tiny = imageops.Box(650, 350, face.w / 3, face.h / 3)  # the right place, far too small: not searched at its size
    assert imageops.detect_faces_near(canvas, tiny) == []


def test_gray_lightness_table_is_exactly_the_lab_conversion():
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = imageops.bgr_to_lab(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))[:, :, 0]
    assert imageops.gray_lightness(gray).dtype == np.float32
    assert np.array_equal(imageops.gray_lightness(gray), expected)
    assert imageops.gray_lightness(gray)[0, 0] == 0.0 and abs(imageops.gray_lightness(gray)[-1, -1] - 100.0) < 1e-3


def test_face_search_in_a_sliver_finds_nothing_instead_of_failing():
    # a 1x5000 strip once shrank to zero rows inside the cascade search and raised from cv2.resize
    assert imageops.detect_faces(np.full((1, 5000), 255, np.uint8)) == []
    assert imageops.find_sketch_face(np.full((3000, 20), 200, np.uint8)) is None


def test_lab_to_video_chroma_is_the_bgr_route_without_its_roundings(portrait):
    lab = imageops.bgr_to_lab(portrait)
    lab[:, :, 1:] *= 1.8  # pushed out of gamut in places: the clip must hold there too
    cb, cr = imageops.lab_to_video_chroma(lab)
    for ours, theirs in zip((cb, cr), imageops.bgr_to_video_chroma(imageops.lab_to_bgr(lab))):
        difference = ours.astype(int) - theirs
        assert ours.dtype == np.uint8 and ours.shape == portrait.shape[:2]
        assert np.abs(difference).max() <= 2 and abs(difference.mean()) < 0.1
    gray = imageops.bgr_to_lab(cv2.cvtColor(imageops.to_gray(portrait), cv2.COLOR_GRAY2BGR))
    gray[:, :, 1:] = 0.0
    assert all(np.all(plane == 128) for plane in imageops.lab_to_video_chroma(gray))  # no colour stays no colour


@pytest.mark.parametrize("shape, size", [((720, 1280), (32, 32)), ((720, 1280), (192, 108)), ((481, 643), (100, 75)),
                                         ((60, 80), (32, 32))])
def test_shrink_is_an_area_resize(portrait, shape, size):
    image = cv2.resize(imageops.to_gray(portrait), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    ours = imageops.shrink(image, size)
    assert ours.shape == (size[1], size[0]) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    assert difference.max() <= 10 and difference.mean() < 1.0  # a sharp portrait; INTER_LINEAR is 30 off
