"""Shard arithmetic and manifest building: every key in exactly one shard, none lost."""

from __future__ import annotations

import random

import pytest
from inferstack.batch.manifest import Item, Manifest, build_manifests, parse_shard, unique_sorted
from inferstack.batch.sharding import (
    array_properties,
    chunked,
    shard_bounds,
    shard_count,
)


class MemoryShardStore:
    """Keeps shard bodies in a dict, as S3 would under their content-addressed keys."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def __call__(self, body: bytes, sha256: str) -> str:
        key = f"manifests/shards/{sha256}.jsonl"
        self.objects[key] = body
        return key


def make_items(n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    keys = {f"input/{rng.randrange(10**9):09d}/img-{i}.jpg" for i in range(n)}
    return unique_sorted(Item(k, f"{rng.getrandbits(128):032x}") for k in keys)


def build(items: list[Item], ipc: int, max_array: int) -> tuple[list[Manifest], MemoryShardStore]:
    store = MemoryShardStore()
    manifests = list(
        build_manifests(
            items,
            bucket="data",
            input_prefix="input/",
            images_per_child=ipc,
            max_array_size=max_array,
            store_shard=store,
        )
    )
    return manifests, store


def all_sharded_items(manifests: list[Manifest], store: MemoryShardStore) -> list[Item]:
    out = []
    for built in manifests:
        # Round-trip through JSON, as the worker reads it.
        manifest = Manifest.from_json(built.to_json())
        for shard in manifest.shards:
            out.extend(parse_shard(store.objects[shard.key], shard))
    return out


def test_10000_key_manifest_every_key_exactly_once() -> None:
    items = make_items(10_000)
    assert len(items) == 10_000
    manifests, store = build(items, ipc=500, max_array=10_000)
    assert len(manifests) == 1
    assert manifests[0].children == 20
    assert manifests[0].count == 10_000
    sharded = all_sharded_items(manifests, store)
    assert len(sharded) == len(set(sharded)) == 10_000
    assert sorted(sharded) == items


@pytest.mark.parametrize(
    ("n", "ipc", "max_array"),
    [(1, 1, 1), (1, 500, 10_000), (7, 3, 2), (10_000, 1, 10_000), (10_000, 7, 13), (999, 1000, 5)],
)
def test_sharding_sizes(n: int, ipc: int, max_array: int) -> None:
    items = make_items(n, seed=n)
    manifests, store = build(items, ipc, max_array)
    assert sorted(all_sharded_items(manifests, store)) == items
    for manifest in manifests:
        assert 1 <= manifest.children <= max_array
        assert all(1 <= s.count <= ipc for s in manifest.shards)
        # Only a manifest's last shard may be short.
        assert all(s.count == ipc for s in manifest.shards[:-1])
    # Manifests are full except the last one.
    assert all(m.count == ipc * max_array for m in manifests[:-1])
    assert len(manifests) == -(-n // (ipc * max_array))


def test_property_random_sizes() -> None:
    rng = random.Random(42)
    for _ in range(100):
        n = rng.randrange(0, 2000)
        ipc = rng.randrange(1, 400)
        max_array = rng.randrange(1, 30)
        items = make_items(n, seed=n)
        manifests, store = build(items, ipc, max_array)
        sharded = all_sharded_items(manifests, store)
        assert len(sharded) == len(set(sharded)) == len(items), (n, ipc, max_array)
        assert sum(m.count for m in manifests) == n
        # The worker's arithmetic agrees with the builder's cut.
        for manifest in manifests:
            count = manifest.count
            assert shard_count(count, ipc) == manifest.children
            for index, shard in enumerate(manifest.shards):
                start, stop = shard_bounds(count, ipc, index)
                assert stop - start == shard.count


def test_shard_bounds_cover_range_without_overlap() -> None:
    for count in range(0, 60):
        for ipc in range(1, 12):
            covered = []
            for index in range(shard_count(count, ipc)):
                start, stop = shard_bounds(count, ipc, index)
                covered.extend(range(start, stop))
            assert covered == list(range(count))
            with pytest.raises(IndexError):
                shard_bounds(count, ipc, shard_count(count, ipc))


def test_array_properties_single_child_is_a_plain_job() -> None:
    assert array_properties(1) is None
    assert array_properties(2) == {"size": 2}
    assert array_properties(10_000) == {"size": 10_000}
    with pytest.raises(ValueError, match="children"):
        array_properties(10_001)
    with pytest.raises(ValueError, match="children"):
        array_properties(0)


def test_invalid_sharding_parameters() -> None:
    with pytest.raises(ValueError, match="images per child"):
        list(
            build_manifests(
                [],
                bucket="b",
                input_prefix="",
                images_per_child=0,
                max_array_size=1,
                store_shard=MemoryShardStore(),
            )
        )
    with pytest.raises(ValueError, match="max array size"):
        list(
            build_manifests(
                [],
                bucket="b",
                input_prefix="",
                images_per_child=1,
                max_array_size=10_001,
                store_shard=MemoryShardStore(),
            )
        )


def test_unsorted_input_is_refused() -> None:
    items = [Item("input/b.jpg", "1"), Item("input/a.jpg", "1")]
    with pytest.raises(ValueError, match="strictly increasing"):
        build(items, 10, 10)
    with pytest.raises(ValueError, match="strictly increasing"):
        build([Item("input/a.jpg", "1")] * 2, 10, 10)


def test_chunked_streams() -> None:
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []
