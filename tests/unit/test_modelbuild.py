"""Model build: Keras ResNet50 -> int8 TFLite bundle.

Tests marked ``build`` import TensorFlow and convert a real ResNet50 (random weights, a
small calibration set); one bundle is built per session and shared. The others check the
pieces that need no TensorFlow: labels, calibration data, argument checks.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from inferstack import modelbuild
from inferstack.bundle import display_label, load_bundle
from inferstack.classifier import Classifier, build_input_lut
from inferstack.images import load_image, preprocess
from inferstack.modelbuild import ModelBuildError
from PIL import Image

NUM_CALIBRATION = 8  # enough to calibrate every layer; keeps the build around half a minute
SEED = 0
SOURCE_DATE_EPOCH = 1_700_000_000  # reproducible builds: the "created" timestamp


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _skimage_file(name: str) -> Path:
    skimage = pytest.importorskip("skimage")
    return Path(skimage.__file__).parent / "data" / name


# --------------------------------------------------------------------------- no TensorFlow


def test_labels_are_the_1000_imagenet_classes_in_keras_order() -> None:
    labels = modelbuild.imagenet_labels()
    assert len(labels) == 1000
    # Spot checks against Keras' imagenet_class_index.json (index: first name).
    expected = {
        0: "tench",
        1: "goldfish",
        19: "chickadee",
        88: "macaw",
        107: "jellyfish",
        285: "Egyptian cat",
        652: "military uniform",
        999: "toilet tissue",
    }
    assert {i: display_label(labels[i]) for i in expected} == expected
    assert all(line == line.strip() and line for line in labels)


def test_labels_match_the_pretrained_fixture(imagenet_fixtures: Path) -> None:
    # The fixture has a background class at line 0; lines 1..1000 are the ImageNet classes.
    fixture = (imagenet_fixtures / "imagenet_labels.txt").read_text(encoding="utf-8")
    assert fixture.splitlines()[1:1001] == modelbuild.imagenet_labels()


def test_input_spec_is_keras_caffe_preprocessing() -> None:
    spec = modelbuild.input_spec(224)
    assert (spec.height, spec.width, spec.channel_order) == (224, 224, "BGR")
    assert spec.normalization.type == "mean_std"
    assert spec.normalization.mean == (103.939, 116.779, 123.68)
    assert spec.normalization.std == (1.0, 1.0, 1.0)
    assert spec.resize == "bilinear"
    assert spec.crop_fraction == 1.0


def test_calibration_normalization_is_what_the_runtime_feeds() -> None:
    # The classifier quantizes (pixel - mean) / std through a lookup table; calibration must
    # see the same real values, or the calibrated ranges would not be the served ones.
    spec = modelbuild.input_spec(224)
    pixels = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    scale, zero_point = 1.0774, -13
    lut = build_input_lut(spec.normalization, np.dtype(np.int8), scale, zero_point)
    served = np.take(lut, pixels + np.array([0, 256, 512]))
    real = modelbuild.normalize(pixels, spec)
    assert real.shape == (1, 224, 224, 3)
    assert real.dtype == np.float32
    ours = np.clip(np.rint(real[0] / scale + zero_point), -128, 127).astype(np.int8)
    assert np.array_equal(ours, served)
    # Channel 0 is blue: a pure-blue BGR pixel minus the blue mean.
    assert real[0, 0, 0, 0] == pytest.approx(pixels[0, 0, 0] - 103.939, abs=1e-4)


def test_skimage_calibration_is_seeded_and_preprocessed() -> None:
    pytest.importorskip("skimage")
    spec = modelbuild.input_spec(224)
    first = modelbuild.skimage_calibration(20, 3, spec)
    again = modelbuild.skimage_calibration(20, 3, spec)
    other = modelbuild.skimage_calibration(20, 4, spec)
    assert len(first) == 20
    assert all(a.shape == (224, 224, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # The first pass over the photos is unaugmented; the rest depend on the seed.
    n = len(modelbuild.SKIMAGE_PHOTOS)
    assert all(np.array_equal(a, b) for a, b in zip(first[:n], other[:n], strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(first[n:], other[n:], strict=True))
    # Real photos, not flat or noise: a wide spread of values in every sample.
    assert all(a.std() > 10 for a in first)


def test_folder_calibration_decodes_like_the_runtime(tmp_path: Path) -> None:
    spec = modelbuild.input_spec(224)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(_encode(photo, "PNG"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.JPG").write_bytes(_encode(photo, "JPEG"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    messages: list[str] = []
    samples = modelbuild.folder_calibration(tmp_path, 10, SEED, spec, messages.append)
    assert len(samples) == 2
    assert any("broken.jpg" in m for m in messages)
    expected = preprocess(load_image((tmp_path / "a.png").read_bytes()), spec)
    assert np.array_equal(samples[0], expected)


def test_folder_calibration_takes_a_seeded_subset(tmp_path: Path) -> None:
    spec = modelbuild.input_spec(32)
    for i in range(6):
        pixels = np.full((40, 40, 3), i * 40, dtype=np.uint8)
        (tmp_path / f"{i}.bmp").write_bytes(_encode(pixels, "BMP"))
    picked = modelbuild.folder_calibration(tmp_path, 3, SEED, spec)
    again = modelbuild.folder_calibration(tmp_path, 3, SEED, spec)
    assert len(picked) == 3
    assert [int(a[0, 0, 0]) for a in picked] == [int(a[0, 0, 0]) for a in again]


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ModelBuildError, match="no readable images"):
        modelbuild.folder_calibration(tmp_path, 10, SEED, modelbuild.input_spec(224))
    with pytest.raises(ModelBuildError, match="not found"):
        modelbuild.folder_calibration(tmp_path / "missing", 10, SEED, modelbuild.input_spec())


@pytest.mark.parametrize(
    ("weights", "message"),
    [("/nonexistent/resnet50.h5", "does not exist"), (__file__, "must end with")],
)
def test_bad_weights_are_refused_before_loading_tensorflow(
    tmp_path: Path, weights: str, message: str
) -> None:
    with pytest.raises(ModelBuildError, match=message):
        modelbuild.build_bundle(weights=weights, out=tmp_path / "bundle")


def test_an_output_folder_with_other_files_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "keep-me.txt").write_text("precious")
    with pytest.raises(ModelBuildError, match="not a model bundle"):
        modelbuild.build_bundle(weights="random", out=tmp_path)
    assert (tmp_path / "keep-me.txt").read_text() == "precious"


def test_a_bad_source_date_epoch_is_refused_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ModelBuildError, match="SOURCE_DATE_EPOCH"):
        modelbuild.build_bundle(weights="random", out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_num_calibration_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ModelBuildError, match="at least 1"):
        modelbuild.build_bundle(weights="random", out=tmp_path / "b", num_calibration=0)


def test_no_inferstack_module_imports_tensorflow() -> None:
    # The functions never load TensorFlow; modelbuild imports it lazily, inside functions.
    code = (
        "import importlib, pkgutil, sys, inferstack\n"
        "for m in pkgutil.walk_packages(inferstack.__path__, 'inferstack.'):\n"
        "    importlib.import_module(m.name)\n"
        "import inferstack.modelbuild\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in {'tensorflow', 'keras'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- with TensorFlow


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One random-weights ResNet50 bundle for the whole session, and its progress lines."""
    out = tmp_path_factory.mktemp("modelbuild") / "resnet50-int8"
    messages: list[str] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOURCE_DATE_EPOCH", str(SOURCE_DATE_EPOCH))
        result = modelbuild.build_bundle(
            weights="random",
            out=out,
            num_calibration=NUM_CALIBRATION,
            seed=SEED,
            progress=messages.append,
        )
    assert result == out
    return out, messages


@pytest.mark.build
def test_bundle_files_and_metadata(built: tuple[Path, list[str]]) -> None:
    out, _ = built
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "model.json", "model.tflite"]
    bundle = load_bundle(out)  # verifies the sha256 too
    meta = bundle.metadata
    assert meta.sha256 == hashlib.sha256((out / "model.tflite").read_bytes()).hexdigest()
    assert (meta.name, meta.version) == ("resnet50-int8", "1")
    assert meta.input == modelbuild.input_spec(224)
    assert (meta.output.activation, meta.output.label_offset) == ("softmax", 0)
    assert meta.predictions_meaningful is False
    assert "meaningless" in meta.notes
    source = meta.source
    assert (source["kind"], source["weights"], source["seed"]) == ("keras-resnet50", "random", 0)
    assert source["tensorflow"].startswith("2.")
    assert source["calibration"]["images"] == NUM_CALIBRATION
    assert source["created"] == "2023-11-14T22:13:20+00:00"  # from SOURCE_DATE_EPOCH
    assert list(bundle.labels) == modelbuild.imagenet_labels()
    # A full ResNet-50 at int8: ~25 MB (fp32 would be ~100 MB).
    assert 20e6 < bundle.model_path.stat().st_size < 30e6


@pytest.mark.build
def test_progress_is_reported(built: tuple[Path, list[str]]) -> None:
    _, messages = built
    text = "\n".join(messages)
    for expected in (
        "loading ResNet50 (random weights)",
        f"calibrating {NUM_CALIBRATION}/{NUM_CALIBRATION}",
        "converting",
        "writing bundle",
        "MiB",
    ):
        assert expected in text


@pytest.mark.build
def test_model_is_full_integer_int8(built: tuple[Path, list[str]]) -> None:
    out, _ = built
    interpreter = Interpreter(model_path=str(out / "model.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outp = interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8
    assert list(inp["shape"]) == [1, 224, 224, 3]
    assert outp["dtype"] == np.int8
    assert list(outp["shape"]) == [1, 1000]
    in_scale, in_zero = inp["quantization"]
    # Calibrated on caffe-preprocessed photos: values span about -124..152, i.e. ~1.08 a step.
    assert 0.5 < in_scale < 2.0
    assert -128 <= in_zero <= 127
    # A quantized softmax: [0, 1) in steps of 1/256.
    assert outp["quantization"] == (pytest.approx(1 / 256), -128)
    # Nothing float is left inside: int8 activations/weights, int32 biases.
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}


@pytest.mark.build
def test_classifies_a_real_photo_through_the_core_classifier(
    built: tuple[Path, list[str]],
) -> None:
    out, _ = built
    bundle = load_bundle(out)
    classifier = Classifier.from_bundle(bundle, num_threads=1)
    photo = _skimage_file("rocket.jpg").read_bytes()
    result = classifier.classify_bytes(photo, top_k=5)
    predictions = result.predictions
    assert len(predictions) == 5
    probabilities = [p["probability"] for p in predictions]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    # Dequantized softmax values (steps of 1/256): their sum stays within rounding of 1.
    assert sum(probabilities) <= 1.0 + 5 / 512
    indices = [p["index"] for p in predictions]
    assert len(set(indices)) == 5
    assert all(0 <= i < 1000 for i in indices)
    assert [p["label"] for p in predictions] == [display_label(bundle.labels[i]) for i in indices]
    assert set(result.timing_ms) >= {"decode", "preprocess", "infer", "total"}


@pytest.mark.build
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_int8_model_tracks_the_float_keras_model(built: tuple[Path, list[str]]) -> None:
    # The same seeded float model the bundle was converted from, on photos that were not in
    # the calibration set: same top-1, and every class probability within a few output
    # steps (1/256) of the float one (measured: at most 0.011 here).
    out, _ = built
    spec = modelbuild.input_spec(224)
    model, _ = modelbuild.load_keras_model("random", seed=SEED)
    classifier = Classifier.from_bundle(load_bundle(out), num_threads=1)
    unseen = modelbuild.SKIMAGE_PHOTOS[NUM_CALIBRATION:][:3]
    for pixels in modelbuild.skimage_calibration(NUM_CALIBRATION + 3, SEED, spec)[-3:]:
        expected = model.predict(modelbuild.normalize(pixels, spec), verbose=0)[0]
        actual = np.zeros(1000, dtype=np.float32)
        for prediction in classifier.classify_array(pixels, top_k=1000):
            actual[prediction["index"]] = prediction["probability"]
        assert int(np.argmax(actual)) == int(np.argmax(expected)), unseen
        assert float(np.abs(actual - expected).max()) < 0.05, unseen


@pytest.mark.build
def test_random_weights_build_is_reproducible(
    built: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out, _ = built
    # Rebuild into a folder holding an older (here: altered) bundle: it is replaced.
    again = tmp_path / "again"
    again.mkdir()
    for name in ("labels.txt", "model.json"):
        (again / name).write_bytes((out / name).read_bytes())
    (again / "model.tflite").write_bytes(b"an older model")
    result = modelbuild.build_bundle(
        weights="random", out=again, num_calibration=NUM_CALIBRATION, seed=SEED
    )
    assert result == again
    # Same seed, same calibration images: byte-identical model.
    assert load_bundle(again).sha256 == load_bundle(out).sha256


@pytest.mark.build
# Keras 3.15 get_weights() trips a NumPy 2 copy-keyword DeprecationWarning per variable.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    # Imported here, not at the top: collecting this module must not load TensorFlow.
    h5py = pytest.importorskip("h5py")
    legacy_h5_format = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    model, _ = modelbuild.load_keras_model("random", seed=5, input_size=64)
    # Weights no seed can produce (all ones, stepped): equal weights after loading can only
    # come from the file.
    weights = [np.full_like(w, 1.0 + i / 1000) for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    native = tmp_path / "resnet50.weights.h5"
    model.save_weights(native)
    # The legacy HDF5 layout Keras' own ImageNet weights file uses (written through Keras'
    # private legacy module: Keras 3 only writes .weights.h5 itself) and a whole .keras model.
    legacy = tmp_path / "resnet50_legacy.h5"
    with h5py.File(legacy, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)
    whole = tmp_path / "resnet50.keras"
    model.save(whole)
    for path in (native, legacy, whole):
        loaded, source = modelbuild.load_keras_model(str(path), seed=6, input_size=64)
        assert source["weights"] == path.name
        assert source["original_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        for expected, actual in zip(weights, loaded.get_weights(), strict=True):
            np.testing.assert_array_equal(actual, expected)


@pytest.mark.build
def test_imagenet_without_internet_is_a_clear_error(tmp_path: Path) -> None:
    # No network is simulated with a proxy on a closed loopback port and an empty Keras
    # cache, so the download fails the same way on machines that do have internet.
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    command = [sys.executable, "-m", "inferstack.modelbuild", "--weights", "imagenet"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot download the ImageNet ResNet50 weights" in result.stderr
    assert "--weights random" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bundle").exists()
