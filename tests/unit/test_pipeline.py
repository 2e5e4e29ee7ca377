"""The shared classification path: its stages, hooks and timing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from inferstack.classifier import Classifier
from inferstack.errors import InvalidImage, InvalidParameter
from inferstack.pipeline import Pipeline


class Recording(Pipeline):
    def __init__(self, classifier: Classifier) -> None:
        super().__init__(classifier)
        self.events: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.events.append(f"enter {name}")
        yield
        self.events.append(f"leave {name}")


def test_every_stage_runs_inside_the_stage_hook_in_order(
    mobilenet: Classifier, imagenet_fixtures: Path
) -> None:
    pipeline = Recording(mobilenet)
    result = pipeline.run((imagenet_fixtures / "parrot.jpg").read_bytes(), top_k=3)
    assert pipeline.events == [
        f"{what} {name}"
        for name in ("decode", "preprocess", "infer")
        for what in ("enter", "leave")
    ]
    assert len(result.predictions) == 3
    timing = result.timing_ms
    assert set(timing) == {"decode", "preprocess", "infer", "total"}
    assert timing["total"] == pytest.approx(
        timing["decode"] + timing["preprocess"] + timing["infer"], abs=0.002
    )


def test_the_same_answer_as_the_classifier(mobilenet: Classifier, imagenet_fixtures: Path) -> None:
    data = (imagenet_fixtures / "grace_hopper.bmp").read_bytes()
    pipeline = Pipeline(mobilenet)
    prepared = pipeline.prepare(data)
    assert pipeline.classify(prepared, top_k=5).predictions == mobilenet.classify_array(
        prepared.pixels, top_k=5
    )


def test_a_bad_top_k_is_refused_before_decoding(mobilenet: Classifier) -> None:
    pipeline = Recording(mobilenet)
    with pytest.raises(InvalidParameter):
        pipeline.run(b"not even an image", top_k=0)
    assert pipeline.events == []
    with pytest.raises(InvalidImage):
        pipeline.run(b"not even an image", top_k=1)


def test_a_decode_hook_replaces_the_decoder(mobilenet: Classifier, imagenet_fixtures: Path) -> None:
    photo = (imagenet_fixtures / "parrot.jpg").read_bytes()

    class Swapped(Pipeline):
        def decode(self, data: bytes):  # type: ignore[no-untyped-def]
            return super().decode(photo)

    swapped = Swapped(mobilenet).run(b"ignored", top_k=1).predictions
    assert swapped == Pipeline(mobilenet).run(photo, top_k=1).predictions
