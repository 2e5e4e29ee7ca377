"""Classifier: correctness on real photos, quantization paths, post-processing, threads."""

from __future__ import annotations

import concurrent.futures
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_LABELS
from imagecorpus import ImageCase, gradient_rgb, image_cases, jpeg_bytes
from inferstack.bundle import Normalization, load_bundle, write_bundle
from inferstack.classifier import Classifier, build_input_lut, softmax
from inferstack.errors import BundleError, InvalidParameter
from inferstack.images import ImageLimits
from inferstack.runtime import make_interpreter
from PIL import Image

# ImageNet class ids (0..999, background removed) of the expected answers.
MACAW, CHICKADEE, MILITARY_UNIFORM = 88, 19, 652
CATS = {"Egyptian cat", "tabby", "tiger cat"}
PHOTOS = {
    "parrot.jpg": {"macaw"},
    "bird.bmp": {"chickadee"},
    "grace_hopper.bmp": {"military uniform"},
    "cat.bmp": CATS,
}


# ----------------------------------------------------------------------------- real photos


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_mobilenet_raw_photos(mobilenet: Classifier, imagenet_fixtures: Path, photo: str) -> None:
    result = mobilenet.classify_bytes((imagenet_fixtures / photo).read_bytes(), top_k=5)
    top = result.predictions[0]
    assert top["label"] in PHOTOS[photo], result.predictions
    assert top["probability"] > 0.5
    assert len(result.predictions) == 5


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_tf2_mobilenet_tf_preprocessing(
    tf2_bundle: Path, imagenet_fixtures: Path, photo: str
) -> None:
    bundle = load_bundle(tf2_bundle)
    norm = bundle.metadata.input.normalization
    assert (norm.type, norm.mean, norm.std) == ("mean_std", (127.5,) * 3, (127.5,) * 3)
    classifier = Classifier.from_bundle(bundle)
    result = classifier.classify_bytes((imagenet_fixtures / photo).read_bytes(), top_k=3)
    assert result.predictions[0]["label"] in PHOTOS[photo], result.predictions
    assert result.predictions[0]["probability"] > 0.5


def test_wrong_preprocessing_is_detectably_wrong(imagenet_fixtures: Path, tmp_path: Path) -> None:
    """The photo tests can fail: fed BGR, the model is much less sure of the uniform."""
    meta = load_bundle(_import(imagenet_fixtures, tmp_path / "ok", "raw")).metadata.to_dict()
    meta["input"]["channel_order"] = "BGR"
    bundle = write_bundle(
        tmp_path / "bgr",
        tflite=imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite",
        labels=(imagenet_fixtures / "imagenet_labels.txt").read_text().splitlines(),
        metadata=meta,
    )
    right = Classifier.from_bundle(load_bundle(tmp_path / "ok"))
    wrong = Classifier.from_bundle(bundle)
    data = (imagenet_fixtures / "grace_hopper.bmp").read_bytes()
    p_right = right.classify_bytes(data, top_k=1).predictions[0]
    p_wrong = {
        p["index"]: p["probability"] for p in wrong.classify_bytes(data, top_k=5).predictions
    }
    assert p_right["index"] == MILITARY_UNIFORM
    assert p_wrong.get(MILITARY_UNIFORM, 0.0) < p_right["probability"] - 0.2


def _import(fixtures: Path, out: Path, preprocess: str) -> Path:
    from inferstack.cli import main  # noqa: PLC0415

    argv = [
        "model", "import", "--tflite", str(fixtures / "mobilenet_v2_1.0_224_quant.tflite"),
        "--labels", str(fixtures / "imagenet_labels.txt"), "--preprocess", preprocess,
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def test_indices_are_class_ids_and_background_is_never_reported(
    mobilenet: Classifier, imagenet_fixtures: Path
) -> None:
    data = (imagenet_fixtures / "parrot.jpg").read_bytes()
    preds = mobilenet.classify_bytes(data, top_k=1000).predictions
    assert len(preds) == 1000
    assert sorted(p["index"] for p in preds) == list(range(1000))
    assert all(p["label"] != "background" for p in preds)
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True)
    assert 0.95 < sum(probs) <= 1.0 + 1e-6
    lines = (imagenet_fixtures / "imagenet_labels.txt").read_text().splitlines()
    by_index = {p["index"]: p["label"] for p in preds}
    assert by_index[MACAW] == lines[MACAW + 1].split(", ")[0] == "macaw"
    assert by_index[0] == "tench"  # first synonym of "tench, Tinca tinca"


def test_top_k_limits(mobilenet: Classifier, imagenet_fixtures: Path) -> None:
    data = (imagenet_fixtures / "bird.bmp").read_bytes()
    assert len(mobilenet.classify_bytes(data, top_k=1).predictions) == 1
    for bad in (0, -1, 1001, True, 2.5):
        with pytest.raises(InvalidParameter):
            mobilenet.classify_bytes(data, top_k=bad)  # type: ignore[arg-type]


def test_timing_parts(mobilenet: Classifier, imagenet_fixtures: Path) -> None:
    result = mobilenet.classify_bytes((imagenet_fixtures / "parrot.jpg").read_bytes())
    timing = result.timing_ms
    assert set(timing) == {"decode", "preprocess", "infer", "total"}
    assert all(v >= 0 for v in timing.values())
    parts = timing["decode"] + timing["preprocess"] + timing["infer"]
    assert parts <= timing["total"] + 0.01
    assert result.to_dict()["predictions"] == result.predictions


def test_prepare_then_classify_array_matches_classify_bytes(
    mobilenet: Classifier, imagenet_fixtures: Path
) -> None:
    data = (imagenet_fixtures / "cat.bmp").read_bytes()
    pixels = mobilenet.prepare(data, ImageLimits())
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8
    assert (
        mobilenet.classify_array(pixels, top_k=3)
        == mobilenet.classify_bytes(data, top_k=3).predictions
    )


def test_classify_array_rejects_wrong_shape(mobilenet: Classifier) -> None:
    with pytest.raises(ValueError, match="224x224x3"):
        mobilenet.classify_array(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        mobilenet.classify_array(np.zeros((224, 224, 3), np.float32))


def test_concurrent_use_gives_sequential_results(
    mobilenet: Classifier, imagenet_fixtures: Path
) -> None:
    """prepare() in many threads plus classify_array() from many threads (internal lock)."""
    blobs = [(imagenet_fixtures / photo).read_bytes() for photo in sorted(PHOTOS)] * 4
    expected = [mobilenet.classify_bytes(b, top_k=3).predictions for b in blobs]

    def work(data: bytes) -> list:
        return mobilenet.classify_array(mobilenet.prepare(data, ImageLimits()), top_k=3)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(work, blobs))
    assert got == expected


@pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
def test_corpus_through_classifier(mobilenet: Classifier, case: ImageCase) -> None:
    if case.expected_error is not None:
        with pytest.raises(case.expected_error):
            mobilenet.classify_bytes(case.data)
        return
    result = mobilenet.classify_bytes(case.data, top_k=5)
    assert len(result.predictions) == 5
    assert all(0.0 <= p["probability"] <= 1.0 for p in result.predictions)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize("draft_factor", [1.0, 2.0, None])
def test_large_jpeg_draft_keeps_the_answer(
    mobilenet_bundle: Path, imagenet_fixtures: Path, photo: str, draft_factor: float | None
) -> None:
    """A 1080p JPEG of each photo, decoded at 1/4 (factor 1, the default), 1/2 (factor 2)
    or full size, gives the photo's expected top-1."""
    classifier = Classifier.from_bundle(load_bundle(mobilenet_bundle), draft_factor=draft_factor)
    big = Image.open(imagenet_fixtures / photo).convert("RGB")
    buf = io.BytesIO()
    big.resize((1920, 1080), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
    result = classifier.classify_bytes(buf.getvalue(), top_k=1)
    assert result.predictions[0]["label"] in PHOTOS[photo], result.predictions
    expected = {1.0: (224, 224), 2.0: (448, 448), None: None}[draft_factor]
    assert classifier.draft_size == expected


def test_activation_none_applies_softmax(mobilenet_bundle: Path, tmp_path: Path) -> None:
    """Declaring the outputs logits makes the classifier apply softmax to them."""
    bundle = load_bundle(mobilenet_bundle)
    meta = bundle.metadata.to_dict()
    meta["output"]["activation"] = "none"
    as_logits = Classifier.from_bundle(
        write_bundle(
            tmp_path / "logits", tflite=bundle.model_path, labels=bundle.labels, metadata=meta
        )
    )
    pixels = np.asarray(Image.fromarray(gradient_rgb(224, 224)))
    # Reference computed straight from a separate interpreter.
    interpreter = make_interpreter(bundle.model_path, 1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    scale, zero = out["quantization"]
    raw = interpreter.get_tensor(out["index"])[0].astype(np.float64)
    expected = softmax((raw - zero) * scale)[1:]
    got = as_logits.classify_array(pixels, top_k=1000)
    got_probs = np.zeros(1000)
    for p in got:
        got_probs[p["index"]] = p["probability"]
    np.testing.assert_allclose(got_probs, expected, rtol=1e-4, atol=1e-6)
    # The model's own softmax output: must not be softmaxed again.
    plain = Classifier.from_bundle(bundle).classify_array(pixels, top_k=1000)
    plain_probs = np.zeros(1000)
    for p in plain:
        plain_probs[p["index"]] = p["probability"]
    np.testing.assert_allclose(plain_probs, ((raw - zero) * scale)[1:], atol=1e-6)


# ----------------------------------------------------------------------------- tiny models


def _by_index(predictions: list) -> np.ndarray:
    out = np.zeros(len(predictions))
    for p in predictions:
        out[p["index"]] = p["probability"]
    return out


def _probs(classifier: Classifier, pixels: np.ndarray) -> np.ndarray:
    return _by_index(classifier.classify_array(pixels, top_k=len(classifier.labels)))


def _colourful(size: int, seed: int) -> np.ndarray:
    from tinymodels import colourful  # noqa: PLC0415

    return colourful(size, seed)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["int8_logits", "int8_softmax", "uint8_softmax"])
def test_quantized_matches_float_model(tiny_bundle, name: str) -> None:  # type: ignore[no-untyped-def]
    """Same weights: the quantized model fed through the lookup table agrees with the float
    model fed (pixel - mean) / std directly, so scale, zero point and channels are right."""
    reference = Classifier.from_bundle(tiny_bundle("float_logits", activation="none"))
    activation = "softmax" if "softmax" in name else "none"
    quantized = Classifier.from_bundle(tiny_bundle(name, activation=activation))
    for seed in range(6):
        pixels = _colourful(16, seed)
        expected, got = _probs(reference, pixels), _probs(quantized, pixels)
        assert abs(got.sum() - 1.0) < 0.03
        np.testing.assert_allclose(got, expected, atol=0.04)


def test_tiny_model_detects_channel_mixup(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    """The float/int8 agreement test is sensitive: BGR instead of RGB changes the output."""
    rgb = Classifier.from_bundle(tiny_bundle("int8_logits", activation="none"))
    bgr = Classifier.from_bundle(tiny_bundle("int8_logits", activation="none", channel_order="BGR"))
    diffs = []
    for seed in range(6):
        data = _png(_colourful(16, seed))
        p_rgb = _by_index(rgb.classify_bytes(data, top_k=5).predictions)
        p_bgr = _by_index(bgr.classify_bytes(data, top_k=5).predictions)
        diffs.append(np.abs(p_rgb - p_bgr).max())
    assert max(diffs) > 0.1


def test_float_input_is_fed_normalized_floats(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    from tinymodels import MEAN, STD  # noqa: PLC0415

    classifier = Classifier.from_bundle(tiny_bundle("float_logits", activation="none"))
    pixels = _colourful(16, 1)
    tensor = classifier.quantize(pixels)
    assert tensor.dtype == np.float32
    assert tensor.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(
        tensor[0], (pixels - np.array(MEAN)) / np.array(STD), rtol=1e-5, atol=1e-5
    )


def test_logits_model_gets_softmax(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier.from_bundle(tiny_bundle("int8_logits", activation="none"))
    probs = _probs(classifier, _colourful(16, 2))
    assert abs(probs.sum() - 1.0) < 1e-5
    # Declared (wrongly) as softmax: raw dequantized logits come out, not probabilities.
    wrong = Classifier.from_bundle(tiny_bundle("int8_logits", activation="softmax"))
    assert abs(_probs(wrong, _colourful(16, 2)).sum() - 1.0) > 0.05


def test_label_offset_with_labels_for_real_classes_only(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    """5 outputs, label_offset 1, 4 labels: output 0 is background, index 0 is output 1."""
    full = Classifier.from_bundle(tiny_bundle("int8_softmax", activation="softmax"))
    offset = Classifier.from_bundle(
        tiny_bundle("int8_softmax", activation="softmax", label_offset=1, labels=TINY_LABELS[1:])
    )
    pixels = _colourful(16, 3)
    p_full, p_offset = _probs(full, pixels), _probs(offset, pixels)
    assert offset.labels == ("class one", "class two", "class three", "class four")
    assert full.labels[0] == "class zero"  # first synonym
    np.testing.assert_allclose(p_offset, p_full[1:])
    preds = offset.classify_array(pixels, top_k=10)
    assert len(preds) == 4  # top_k larger than the class count: every class once
    assert {p["label"] for p in preds} == set(offset.labels)


def test_label_offset_with_background_line(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier.from_bundle(
        tiny_bundle("int8_softmax", activation="softmax", label_offset=1, labels=TINY_LABELS)
    )
    assert classifier.labels == ("class one", "class two", "class three", "class four")


def test_label_count_mismatch_is_refused(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BundleError, match="labels"):
        Classifier.from_bundle(
            tiny_bundle("int8_softmax", activation="softmax", labels=TINY_LABELS[:3])
        )


def test_input_size_mismatch_is_refused(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BundleError, match="16x16"):
        Classifier.from_bundle(tiny_bundle("int8_softmax", activation="softmax", height=32))


def test_tiny_model_classifies_bytes(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier.from_bundle(
        tiny_bundle("int8_softmax", activation="softmax", crop_fraction=0.875, resize="area")
    )
    result = classifier.classify_bytes(jpeg_bytes(640, 480), top_k=2)
    assert len(result.predictions) == 2
    assert result.predictions[0]["probability"] >= result.predictions[1]["probability"]


# ----------------------------------------------------------------------------- lookup table


def test_lut_raw() -> None:
    raw = Normalization("raw")
    u8 = build_input_lut(raw, np.dtype(np.uint8), 1 / 128, 128)
    i8 = build_input_lut(raw, np.dtype(np.int8), 1 / 128, 0)
    assert u8.shape == (3, 256)
    assert (u8 == np.arange(256)).all()
    assert i8.dtype == np.int8
    assert (i8[:, 0] == -128).all() and (i8[:, 128] == 0).all() and (i8[:, 255] == 127).all()


@pytest.mark.parametrize(
    ("dtype", "scale", "zero_point"), [(np.uint8, 2 / 255, 127), (np.int8, 0.0187, -14)]
)
def test_lut_mean_std_dequantizes_to_the_normalized_value(
    dtype: type, scale: float, zero_point: int
) -> None:
    norm = Normalization("mean_std", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    lut = build_input_lut(norm, np.dtype(dtype), scale, zero_point)
    assert lut.dtype == dtype
    pixels = np.arange(256)
    for c in range(3):
        wanted = (pixels - norm.mean[c]) / norm.std[c]
        info = np.iinfo(dtype)
        representable = (wanted / scale + zero_point >= info.min) & (
            wanted / scale + zero_point <= info.max
        )
        back = (lut[c].astype(float) - zero_point) * scale
        assert np.all(np.abs(back - wanted)[representable] <= scale / 2 + 1e-9)
        # Out of range values saturate instead of wrapping around.
        assert np.all(np.diff(lut[c].astype(int)) >= 0)


def test_lut_tf_on_tf2_mobilenet_input() -> None:
    """tf normalization on scale 2/255, zero point 127: pixel p -> about p (minus half a step)."""
    norm = Normalization("mean_std", (127.5,) * 3, (127.5,) * 3)
    lut = build_input_lut(norm, np.dtype(np.uint8), 0.007843137718737125, 127)
    assert np.abs(lut[0].astype(int) - np.arange(256)).max() <= 1


def test_softmax_is_stable() -> None:
    out = softmax(np.array([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(out, [0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    ("name", "normalization", "shared"),
    [
        ("int8_logits", None, False),  # torch mean/std: one table per channel
        ("int8_logits", {"type": "mean_std", "mean": [127.5] * 3, "std": [127.5] * 3}, True),
        ("int8_logits", {"type": "raw"}, True),
    ],
)
def test_quantize_applies_each_channels_table(tiny_bundle, name, normalization, shared) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier.from_bundle(
        tiny_bundle(name, activation="none", normalization=normalization)
    )
    assert classifier._shared_lut is shared  # which fast path runs
    pixels = _colourful(16, 4)
    lut = build_input_lut(
        classifier.bundle.metadata.input.normalization,
        np.dtype(np.int8),
        *classifier.input_detail["quantization"],
    )
    expected = np.stack([lut[c][pixels[..., c]] for c in range(3)], axis=-1)
    tensor = classifier.quantize(pixels)
    assert tensor.dtype == np.int8
    np.testing.assert_array_equal(tensor[0], expected)
    # A non-contiguous view (e.g. a BGR flip) gives the same tensor as its copy.
    flipped = pixels[..., ::-1]
    np.testing.assert_array_equal(
        classifier.quantize(flipped), classifier.quantize(np.ascontiguousarray(flipped))
    )


def test_draft_factor(mobilenet_bundle: Path) -> None:
    bundle = load_bundle(mobilenet_bundle)
    assert Classifier.from_bundle(bundle, num_threads=1, draft_factor=None).draft_size is None
    assert Classifier.from_bundle(bundle, num_threads=1, draft_factor=1.0).draft_size == (224, 224)
    assert Classifier.from_bundle(bundle, num_threads=1).num_threads == 1


def test_unusable_tflite_is_model_unavailable(tmp_path: Path) -> None:
    from conftest import base_metadata  # noqa: PLC0415
    from inferstack.errors import ModelUnavailable  # noqa: PLC0415

    bundle = write_bundle(
        tmp_path / "b", tflite=b"not a flatbuffer at all", labels=["a"], metadata=base_metadata()
    )
    with pytest.raises(ModelUnavailable, match="cannot load"):
        Classifier.from_bundle(bundle)


def test_from_uri(mobilenet_bundle: Path, imagenet_fixtures: Path) -> None:
    classifier = Classifier.from_uri(mobilenet_bundle, num_threads=1)
    data = (imagenet_fixtures / "bird.bmp").read_bytes()
    assert classifier.classify_bytes(data, top_k=1).predictions[0]["label"] == "chickadee"
