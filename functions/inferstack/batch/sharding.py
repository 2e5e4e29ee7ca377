"""Shard arithmetic shared by the submitters and the worker.

A manifest of ``count`` images is cut into consecutive shards of ``images_per_child`` images
(the last one may be shorter); array child ``i`` takes shard ``i``. A job has at most
``max_array_size`` children, so a larger set of images is split into several manifests first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")

# AWS Batch array jobs have 2..10000 children; a single child is submitted as a plain job.
BATCH_MAX_ARRAY_SIZE = 10_000
BATCH_MIN_ARRAY_SIZE = 2


def validate(images_per_child: int, max_array_size: int) -> None:
    if images_per_child < 1:
        raise ValueError(f"images per child must be >= 1, got {images_per_child}")
    if not 1 <= max_array_size <= BATCH_MAX_ARRAY_SIZE:
        raise ValueError(f"max array size must be 1..{BATCH_MAX_ARRAY_SIZE}, got {max_array_size}")


def shard_count(count: int, images_per_child: int) -> int:
    """Children needed for ``count`` images: ceil(count / images_per_child)."""
    if count < 0 or images_per_child < 1:
        raise ValueError(f"invalid count {count} or images per child {images_per_child}")
    return -(-count // images_per_child)


def shard_bounds(count: int, images_per_child: int, index: int) -> tuple[int, int]:
    """The half-open range [start, stop) of items child ``index`` takes."""
    n = shard_count(count, images_per_child)
    if not 0 <= index < n:
        raise IndexError(f"array index {index} out of range for {n} shards")
    start = index * images_per_child
    return start, min(count, start + images_per_child)


def max_images_per_job(images_per_child: int, max_array_size: int) -> int:
    validate(images_per_child, max_array_size)
    return images_per_child * max_array_size


def array_properties(children: int) -> dict[str, int] | None:
    """``arrayProperties`` for submit_job: None for one child (Batch rejects size 1)."""
    if children < 1 or children > BATCH_MAX_ARRAY_SIZE:
        raise ValueError(f"a job has 1..{BATCH_MAX_ARRAY_SIZE} children, got {children}")
    return {"size": children} if children >= BATCH_MIN_ARRAY_SIZE else None


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), streaming."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
