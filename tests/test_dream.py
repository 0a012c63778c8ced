"""The dream core: the loss climbs, seeds decide everything, tiles don't show, nothing retraces."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from zoomdream import objectives
from zoomdream.dream import (
    GradientFilter,
    GradientStep,
    dream,
    dream_image,
    image_gradient,
    octave_note,
    octave_shapes,
    tile_plan,
    tile_spans,
    to_uint8,
    to_unit,
)
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import DreamSettings


def _history(photo, backbone, settings, objective):
    hist = []
    dream(to_unit(photo), objective, backbone, settings, history=hist)
    return hist


@pytest.mark.parametrize("kind", ["layer", "channels", "guide", "sum"])
def test_loss_rises_for_each_objective_kind(kind, photo, backbone, tiny_settings):
    settings = dataclasses.replace(tiny_settings, octaves=1, iterations=6, jitter=0)
    if kind == "layer":
        obj = objectives.layer("block3_conv1")
    elif kind == "channels":
        obj = objectives.layer("block3_conv1", channels=[3, 17, 40])
    elif kind == "guide":
        guide_img = np.ascontiguousarray(photo[::-1, ::-1])  # another picture with the same palette
        obj = objectives.guide("block3_conv1", objectives.guide_features(backbone, guide_img, "block3_conv1"))
    else:
        obj = 0.5 * objectives.layer("block2_conv2") + 1.5 * objectives.layer("block3_conv1", border=1)
    hist = _history(photo, backbone, settings, obj)
    assert len(hist) == 6
    assert hist[-1] > hist[0] * 1.05, hist
    assert all(b > a for a, b in zip(hist, hist[1:])), hist


def test_channel_pick_changes_the_result(photo, backbone, tiny_settings):
    a = dream_image(photo, settings=tiny_settings, backbone=backbone, objective=objectives.layer("block3_conv1", [1]))
    b = dream_image(photo, settings=tiny_settings, backbone=backbone, objective=objectives.layer("block3_conv1", [2]))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_same_seed_same_bytes_other_seed_differs(photo, backbone, tiny_settings):
    a = dream_image(photo, settings=tiny_settings, backbone=backbone)
    b = dream_image(photo, settings=tiny_settings, backbone=backbone)
    c = dream_image(photo, settings=tiny_settings, backbone=backbone, seed=1)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    assert np.abs(a.astype(int) - photo.astype(int)).mean() > 1.0  # it did dream


def test_frame_index_changes_jitter(photo, backbone, tiny_settings):
    a = dream_image(photo, settings=tiny_settings, backbone=backbone, frame=0)
    b = dream_image(photo, settings=tiny_settings, backbone=backbone, frame=1)
    assert a.tobytes() != b.tobytes()


@pytest.mark.parametrize("n,tile", [(64, 64), (65, 64), (200, 64), (511, 128), (1000, 300), (4000, 512)])
def test_tile_spans_cover_everything_with_overlap(n, tile):
    overlap = max(8, tile // 4)
    spans = tile_spans(n, tile, overlap)
    covered = np.zeros(n, bool)
    for a, b in spans:
        assert 0 <= a < b <= n and b - a <= tile
        covered[a:b] = True
    assert covered.all()
    assert spans[-1][1] == n  # the last row/column is never skipped
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert b0 - a1 >= overlap


def test_feather_windows_sum_to_one(backbone):
    plan = tile_plan(150, 230, 64)
    total = np.zeros((150, 230))
    for (y0, y1, x0, x1), win in zip(plan.boxes, plan.windows):
        total[y0:y1, x0:x1] += win.numpy()[..., 0]
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_single_tile_equals_untiled(photo, backbone):
    obj = objectives.layer("block3_conv1")
    step = GradientStep.get(backbone, obj)
    img = to_unit(photo)
    h, w = img.shape[:2]
    plan = tile_plan(h, w, max(h, w))
    assert len(plan.boxes) == 1
    l1, g1 = image_gradient(step, img, obj.weight_tensor(), [3, -2], None)
    l2, g2 = image_gradient(step, img, obj.weight_tensor(), [3, -2], plan)
    assert float(l1) == pytest.approx(float(l2), rel=1e-6)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-5, atol=1e-7)


def test_tiled_gradient_matches_untiled_without_seams(sample_path, backbone):
    import cv2

    img = cv2.cvtColor(cv2.imread(str(sample_path)), cv2.COLOR_BGR2RGB)
    img = to_unit(cv2.resize(img, (192, 128), interpolation=cv2.INTER_AREA))
    obj = objectives.layer("block3_conv1")
    step = GradientStep.get(backbone, obj)
    plan = tile_plan(128, 192, 96)
    assert len(plan.boxes) > 2
    _, full = image_gradient(step, img, obj.weight_tensor(), [0, 0], None)
    _, tiled = image_gradient(step, img, obj.weight_tensor(), [0, 0], plan)
    full, tiled = full.numpy().ravel(), tiled.numpy()
    cos = float(np.dot(full, tiled.ravel()) / (np.linalg.norm(full) * np.linalg.norm(tiled)))
    assert cos > 0.9
    # No seam: the jump between neighbouring columns at tile borders is no larger than elsewhere.
    mag = np.abs(tiled).mean(axis=(0, 2))  # (W,)
    jumps = np.abs(np.diff(mag))
    borders = sorted({b for (_, _, x0, x1) in plan.boxes for b in (x0, x1) if 0 < b < 192})
    at_borders = np.mean([jumps[b - 1] for b in borders])
    assert at_borders < 3 * np.median(jumps) + 1e-9


def test_tiled_dream_is_seam_free(sample_path, backbone, tiny_settings):
    import cv2

    img = cv2.cvtColor(cv2.imread(str(sample_path)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (192, 128), interpolation=cv2.INTER_AREA)
    s = dataclasses.replace(tiny_settings, octaves=1, iterations=4, tile=96)
    out = dream_image(img, settings=s, backbone=backbone).astype(np.float32)
    delta = np.abs(out - img).mean(axis=(0, 2))  # (W,) how much each column changed
    assert delta.mean() > 1.0
    assert delta.min() > 0.3 * delta.mean()  # no dead (unchanged) strip where tiles meet


def test_octaves_are_clamped_and_say_so_once(caplog, photo, backbone, tiny_settings):
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        shapes = octave_shapes((40, 60), 6, 1.4, 32)
    assert shapes[-1] == (40, 60) and min(shapes[0]) >= 32
    assert len(shapes) == 1 and caplog.text == ""  # the clamp is in the result, not in the log
    assert octave_shapes((300, 400), 4, 1.4, 32) == [(109, 145), (153, 204), (214, 285), (300, 400)]
    six = dataclasses.replace(tiny_settings, octaves=6, iterations=1)
    assert octave_note(photo.shape[:2], six, 32) == ("using 2 of 6 octaves: a smaller octave would fall below "
                                                     "the model's 32 px minimum")
    assert octave_note((300, 400), dataclasses.replace(six, octaves=4), 32) is None
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        for frame in range(3):  # a video's frames: dream() stays silent
            dream(to_unit(photo), objectives.layer("block3_conv1"), backbone, six.frame(frame=frame))
        assert caplog.text == ""
        dream_image(photo, settings=six, backbone=backbone)  # a still says it once
    assert caplog.text.count("using 2 of 6 octaves") == 1


def test_compiled_steps_belong_to_their_backbone(backbone):
    obj = objectives.layer("block3_conv1")
    step = GradientStep.get(backbone, obj)
    assert GradientStep.get(backbone, obj.with_weights({"block3_conv1": 2.0})) is step  # same structure
    assert backbone.compiled_steps[obj.structure] is step
    other = dataclasses.replace(backbone, compiled_steps={})  # another network object: its own steps
    assert GradientStep.get(other, obj) is not step and other.compiled_steps[obj.structure].backbone is other


def test_too_small_image_is_a_clear_error(backbone, tiny_settings):
    with pytest.raises(ZoomdreamError, match="at least 32"):
        dream_image(np.zeros((20, 20, 3), np.uint8), settings=tiny_settings, backbone=backbone)


def test_no_retracing_across_sizes_and_calls(photo, backbone, tiny_settings):
    step = GradientStep.get(backbone, objectives.layer("block3_conv1"))
    for _ in range(2):
        dream_image(photo, settings=tiny_settings, backbone=backbone)
    before = step.fn.experimental_get_tracing_count()
    for size in [(48, 64), (52, 70), (48, 64)]:
        dream_image(np.ascontiguousarray(np.resize(photo, (*size, 3))), settings=tiny_settings, backbone=backbone)
    assert step.fn.experimental_get_tracing_count() == before


def test_layer_weights_do_not_retrace(photo, backbone, tiny_settings):
    obj = objectives.layer("block3_conv1") + objectives.layer("block2_conv2")
    step = GradientStep.get(backbone, obj)
    dream(to_unit(photo), obj, backbone, tiny_settings)
    before = step.fn.experimental_get_tracing_count()
    a = dream(to_unit(photo), obj.with_weights({"block3_conv1": 0.1, "block2_conv2": 2.0}), backbone, tiny_settings)
    b = dream(to_unit(photo), obj.with_weights({"block3_conv1": 2.0}), backbone, tiny_settings)
    assert step.fn.experimental_get_tracing_count() == before
    assert np.abs(a - b).mean() > 1e-3


def test_mask_limits_where_the_image_changes(photo, backbone, tiny_settings):
    mask = np.zeros(photo.shape[:2], np.float32)
    mask[:, 32:] = 1.0
    out = dream(to_unit(photo), objectives.layer("block3_conv1"), backbone,
                dataclasses.replace(tiny_settings, octaves=1), mask=mask)
    change = np.abs(to_uint8(out).astype(int) - photo.astype(int)).mean(axis=(0, 2))
    assert change[:28].max() < 0.5 and change[36:].mean() > 1.0


def test_max_loss_stops_an_octave_early(photo, backbone, tiny_settings):
    s = dataclasses.replace(tiny_settings, octaves=1, iterations=10, jitter=0)
    hist = _history(photo, backbone, s, objectives.layer("block3_conv1"))
    limit = (hist[1] + hist[2]) / 2
    capped = _history(photo, backbone, dataclasses.replace(s, max_loss=limit), objectives.layer("block3_conv1"))
    assert len(capped) == 3 and capped[-1] > limit


def test_bf16_dreams_close_to_fp32(photo, tiny_settings):
    from zoomdream.backbones import load_backbone

    s = dataclasses.replace(tiny_settings, precision="bf16")
    bf = load_backbone("vgg16-hed", precision="bf16")
    assert bf.precision == "bf16"
    a = dream_image(photo, settings=tiny_settings, backbone=load_backbone("vgg16-hed", precision="fp32"))
    b = dream_image(photo, settings=s, backbone=bf)
    diff = np.abs(a.astype(int) - b.astype(int)).mean()
    moved = np.abs(a.astype(int) - photo.astype(int)).mean()
    assert diff < 0.5 * moved


def test_tiles_are_balanced_not_mostly_overlap():
    spans = tile_spans(600, 512, 128)
    assert len(spans) == 2
    work = sum(b - a for a, b in spans)
    assert work <= 1.25 * 600  # full 512 px tiles would push 1024 px (1.71x) through the network
    assert spans[0][1] - spans[1][0] >= 128


def _hatch_share(delta: np.ndarray) -> float:
    """Share of the dream delta's energy near the Nyquist frequencies: the pixel-scale checkerboard hatch."""
    d = delta.mean(axis=2)
    spectrum = np.abs(np.fft.fft2(d - d.mean())) ** 2
    fy, fx = np.abs(np.fft.fftfreq(d.shape[0]))[:, None], np.abs(np.fft.fftfreq(d.shape[1]))[None, :]
    return float(spectrum[np.maximum(fy, fx) > 0.375].sum() / spectrum.sum())  # 0.5 cycles/px is Nyquist


@pytest.mark.parametrize("levels,blur", [(4, 0.0), (0, 1.0), (4, 0.7)])
def test_gradient_conditioning_lowers_the_hatch_and_still_climbs(sample_path, backbone, levels, blur):
    import cv2

    img = cv2.cvtColor(cv2.imread(str(sample_path)), cv2.COLOR_BGR2RGB)
    img = to_unit(cv2.resize(img, (96, 64), interpolation=cv2.INTER_AREA))
    raw = dataclasses.replace(DreamSettings(layers={"block3_conv1": 1.0}), octaves=1, iterations=8, step=0.02,
                              jitter=0, precision="fp32", grad_levels=0, grad_blur=0.0)
    obj = objectives.layer("block3_conv1")
    plain = dream(img, obj, backbone, raw)
    hist = []
    smooth = dream(img, obj, backbone, dataclasses.replace(raw, grad_levels=levels, grad_blur=blur), history=hist)
    assert _hatch_share(smooth - img) < 0.8 * _hatch_share(plain - img)
    assert hist[-1] > 2 * hist[0], hist
    assert np.abs(smooth - img).mean() > 0.02  # it did dream


def test_gradient_filter_goldens():
    flat = np.full((20, 30, 3), -0.25, np.float32)
    np.testing.assert_allclose(GradientFilter.get(4, 0.0).fn(flat).numpy(), -1.0, atol=1e-3)  # one band, unit RMS
    np.testing.assert_allclose(GradientFilter.get(0, 1.5).fn(flat).numpy(), -0.25, atol=1e-6)  # borders kept
    checker = np.indices((20, 30)).sum(axis=0) % 2 * 2.0 - 1.0  # (20, 30) the Nyquist checkerboard
    blurred = GradientFilter.get(0, 1.0).fn(np.repeat(checker[..., None], 3, 2).astype(np.float32)).numpy()
    assert np.abs(blurred[3:-3, 3:-3]).max() < 0.05
    assert GradientFilter.get(0, 0.0) is None  # both off: the seed's raw gradient


def test_gradient_filter_does_not_retrace_across_sizes():
    filt = GradientFilter.get(3, 0.5)
    filt.fn(np.zeros((40, 50, 3), np.float32))
    before = filt.fn.experimental_get_tracing_count()
    for shape in [(41, 57, 3), (64, 33, 3), (7, 5, 3)]:
        out = filt.fn(np.random.default_rng(0).normal(size=shape).astype(np.float32))
        assert out.shape == shape
    assert filt.fn.experimental_get_tracing_count() == before


# ---------------------------------------------------------------- the public function checks its arguments
def test_dream_image_evaluates_schedules_at_its_frame(photo, backbone, tiny_settings):
    """Schedule text in the settings (step, layer weights) is taken at ``frame``: the same dream as the
    numbers the schedules give there."""
    scheduled = dataclasses.replace(tiny_settings, step="0.01 + 0.005*t", layers={"block3_conv1": "0:(1), 4:(3)"})
    at_two = dataclasses.replace(tiny_settings, step=0.02, layers={"block3_conv1": 2.0})
    a = dream_image(photo, settings=scheduled, backbone=backbone, frame=2)
    b = dream_image(photo, settings=at_two, backbone=backbone, frame=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dream_image(photo, settings=scheduled, backbone=backbone, frame=0))
    with pytest.raises(ZoomdreamError, match=r"^step \(--step\): '0.5\*t' is 1.5 at frame 0; expected a number in "
                                             r"0..1$"):
        dream_image(photo, settings=dataclasses.replace(tiny_settings, step="0.5*t"), backbone=backbone, frame=3)
    with pytest.raises(ZoomdreamError, match="uses the audio feature 'beat' but there is no audio"):
        dream_image(photo, settings=dataclasses.replace(tiny_settings, step="0.01*beat"), backbone=backbone)


def test_dream_image_takes_a_whole_settings_and_render_image_a_dream_settings(photo, backbone, tiny_settings,
                                                                              small_photo, tmp_path):
    from zoomdream.render.stills import render_image
    from zoomdream.settings import Settings

    whole = Settings(dream=tiny_settings)
    np.testing.assert_array_equal(dream_image(photo, settings=whole, backbone=backbone),
                                  dream_image(photo, settings=tiny_settings, backbone=backbone))
    vgg = dataclasses.replace(tiny_settings, model="vgg16-hed", iterations=1)
    out = render_image(small_photo, tmp_path / "d.png", settings=vgg, quiet=True)
    assert out.shape == photo.shape and (tmp_path / "d.png").is_file()
    for bad in ({"step": 0.1}, "default", 3):
        with pytest.raises(ZoomdreamError, match=r"^dream_image: settings: expected DreamSettings"):
            dream_image(photo, settings=bad, backbone=backbone)
        with pytest.raises(ZoomdreamError, match=r"^settings: expected a Settings object"):
            render_image(small_photo, tmp_path / "e.png", settings=bad)
    assert not (tmp_path / "e.png").exists()


BAD_ARGUMENTS = [
    ({"seed": -1}, r"^dream_image: seed: expected an integer in 0..4294967295, got -1$"),
    ({"seed": 2.5}, r"^dream_image: seed: expected an integer"),
    ({"frame": -5}, r"^dream_image: frame: expected an integer in 0..1000000, got -5$"),
    ({"frame": "3"}, r"^dream_image: frame: expected an integer"),
    ({"guide": np.zeros((8, 8), np.uint8)}, r"^dream_image: guide: expected an \(H, W, 3\) uint8 RGB array, "
                                            r"got \(8, 8\) uint8$"),
    ({"guide": np.zeros((8, 8, 3), np.float32)}, r"^dream_image: guide: expected an \(H, W, 3\) uint8"),
    ({"mask": np.full((48, 64), np.nan, np.float32)}, r"^dream_image: mask: expected numbers in 0..1, got nan at "
                                                      r"\(row 0, column 0\) and 3071 more$"),
    ({"mask": np.full((48, 64), np.inf)}, r"^dream_image: mask: expected numbers in 0..1, got inf"),
    ({"mask": np.full((48, 64), 2.0)}, r"^dream_image: mask: expected numbers in 0..1, got 2.0"),
    ({"mask": np.ones((24, 32), np.float32)}, r"^dream_image: mask: expected an \(48, 64\) array of numbers in 0..1 "
                                              r"like the image, got \(24, 32\) float32$"),
    ({"mask": [[1.0]]}, r"^dream_image: mask: expected an \(48, 64\) array"),
    ({"backbone": "vgg16"}, r"^dream_image: backbone: expected a Backbone"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS, ids=[next(iter(k)) + str(i) for i, (k, _) in
                                                               enumerate(BAD_ARGUMENTS)])
def test_dream_image_refuses_bad_arguments_at_the_door(photo, tiny_settings, kwargs, message, monkeypatch):
    """One line naming the argument, before any network is built (load_backbone is never reached)."""
    from zoomdream import dream as dream_module

    def no_network(*args, **kw):
        raise AssertionError("the network was built before the arguments were checked")

    monkeypatch.setattr(dream_module, "load_backbone", no_network)
    with pytest.raises(ZoomdreamError, match=message):
        dream_image(photo, settings=tiny_settings, **kwargs)


@pytest.mark.parametrize("image", [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32),
                                   np.zeros((0, 64, 3), np.uint8), "photo.png"])
def test_dream_image_refuses_an_image_that_is_not_rgb_uint8(image, tiny_settings):
    with pytest.raises(ZoomdreamError, match=r"^dream_image: image: expected an \(H, W, 3\) uint8 RGB array"):
        dream_image(image, settings=tiny_settings)


def test_the_dream_core_takes_one_resolved_frame_of_numbers(photo, backbone, tiny_settings):
    """``dream`` takes a DreamFrame (numbers only); a DreamSettings of numbers is resolved the same way,
    and one that still holds a schedule is refused: it has a value only at a frame."""
    from zoomdream.settings import DreamFrame

    frame = tiny_settings.frame()
    assert isinstance(frame, DreamFrame) and frame.step == tiny_settings.step
    obj = objectives.layer("block3_conv1")
    np.testing.assert_array_equal(dream(to_unit(photo), obj, backbone, frame),
                                  dream(to_unit(photo), obj, backbone, tiny_settings))
    with pytest.raises(ZoomdreamError, match="step: '0.01\\*t' is a schedule"):
        dream(to_unit(photo), obj, backbone, dataclasses.replace(tiny_settings, step="0.01*t"))
