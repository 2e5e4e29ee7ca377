"""Builds tiny TFLite classifiers with TensorFlow, run as a script in a subprocess.

The fixture photos only exercise uint8 models whose output is already a softmax. These tiny
models (16x16x3 input, 5 classes, seeded weights) cover the other paths: int8 and float32
inputs, logits outputs (softmax applied by the classifier). Every variant shares the same
weights, so the float model is the reference for the quantized ones.

    python tinymodels.py OUT_DIR   # writes OUT_DIR/<name>.tflite for every name in MODELS
"""

from __future__ import annotations

import sys
from pathlib import Path

SIZE = 16
NUM_CLASSES = 5
# "torch" normalization: a different mean/std per channel, so a channel mix-up shows.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
# name -> (input/output type, softmax layer in the graph)
MODELS = {
    "float_logits": ("float32", False),
    "int8_logits": ("int8", False),
    "int8_softmax": ("int8", True),
    "uint8_softmax": ("uint8", True),
}


def colourful(size: int, seed: int):  # -> np.ndarray (numpy imported lazily)
    """A smooth noisy gradient with one channel darkened: channels differ strongly."""
    import numpy as np  # noqa: PLC0415
    from imagecorpus import gradient_rgb  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    img = gradient_rgb(size, size, seed)
    img[..., rng.integers(0, 3)] //= 3
    return img


def _build(out: Path) -> None:
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    logits = tf.keras.layers.Dense(
        NUM_CLASSES, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=2.0)
    )(x)
    with_logits = tf.keras.Model(inputs, logits)
    with_softmax = tf.keras.Model(inputs, tf.keras.layers.Softmax()(logits))

    rng = np.random.default_rng(0)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)

    def representative():
        # Smooth pictures with colour casts (like the test inputs) and pure noise, so the
        # calibrated activation ranges cover what the tests feed.
        for i in range(96):
            if i % 3 == 0:
                pixels = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.float32)
            else:
                pixels = colourful(SIZE, 1000 + i).astype(np.float32)
            yield [((pixels - mean) / std)[None]]

    for name, (dtype, softmax) in MODELS.items():
        converter = tf.lite.TFLiteConverter.from_keras_model(
            with_softmax if softmax else with_logits
        )
        if dtype != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, dtype)
            converter.inference_output_type = getattr(tf, dtype)
        (out / f"{name}.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    _build(target)
