"""Model bundles: a folder or an s3:// prefix with model.tflite, labels.txt and model.json.

model.json states everything the runtime needs (nothing is guessed): input size, channel
order, resize, crop, normalization, output activation and label offset, and the sha256 of the
tflite file. A bundle whose tflite does not match that sha256 is refused.

A deployment can also pin the sha256 it expects (``expected_sha256``, from the value Terraform
computed when it uploaded the bundle): then a bundle whose model.json declares another
checksum is refused before its model is downloaded, so replacing both files in the bucket
does not swap the model either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferstack import s3 as s3util
from inferstack.errors import BundleError, BundleIntegrityError, ModelUnavailable
from inferstack.s3 import S3Location, is_s3_uri, parse_s3_uri

MODEL_FILE = "model.tflite"
LABELS_FILE = "labels.txt"
METADATA_FILE = "model.json"
BUNDLE_FILES = (METADATA_FILE, LABELS_FILE, MODEL_FILE)
SCHEMA_VERSION = 1
DEFAULT_CACHE_ROOT = Path(tempfile.gettempdir()) / "inferstack-models"

CHANNEL_ORDERS = ("RGB", "BGR")
RESIZE_METHODS = ("bilinear", "bicubic", "nearest", "area")
ACTIVATIONS = ("softmax", "none")
NORMALIZATION_TYPES = ("raw", "mean_std")

_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------- metadata schema


@dataclass(frozen=True)
class Normalization:
    type: str  # "raw" | "mean_std"
    mean: tuple[float, float, float] | None = None  # in the channel order fed to the model
    std: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "raw":
            return {"type": "raw"}
        return {"type": self.type, "mean": list(self.mean or ()), "std": list(self.std or ())}


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channel_order: str = "RGB"
    resize: str = "bilinear"
    crop_fraction: float = 1.0
    normalization: Normalization = field(default_factory=lambda: Normalization("raw"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "channel_order": self.channel_order,
            "resize": self.resize,
            "crop_fraction": self.crop_fraction,
            "normalization": self.normalization.to_dict(),
        }


@dataclass(frozen=True)
class OutputSpec:
    activation: str  # "softmax": outputs already are probabilities; "none": apply softmax
    label_offset: int = 0  # 1: output index 0 is a background class

    def to_dict(self) -> dict[str, Any]:
        return {"activation": self.activation, "label_offset": self.label_offset}


@dataclass(frozen=True)
class BundleMetadata:
    name: str
    version: str
    sha256: str
    input: InputSpec
    output: OutputSpec
    source: Mapping[str, Any] = field(default_factory=dict)
    predictions_meaningful: bool = True
    notes: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "source": dict(self.source),
            "predictions_meaningful": self.predictions_meaningful,
        }
        if self.notes:
            data["notes"] = self.notes
        return data

    @classmethod
    def from_dict(cls, data: Any) -> BundleMetadata:
        return parse_metadata(data)


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise BundleError(f"model.json: missing field {where}{key}")
    return data[key]


def _as_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BundleError(f"model.json: {name} must be a non-empty string, got {value!r}")
    return value


def _as_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BundleError(f"model.json: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise BundleError(f"model.json: {name} must be one of {list(options)}, got {value!r}")
    return value


def _as_triple(value: Any, name: str, *, positive: bool) -> tuple[float, float, float]:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    )
    if not ok or (positive and any(v <= 0 for v in value)):
        what = "3 positive numbers" if positive else "3 numbers"
        raise BundleError(f"model.json: {name} must be a list of {what}, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_normalization(data: Any) -> Normalization:
    if not isinstance(data, Mapping):
        raise BundleError(f"model.json: input.normalization must be an object, got {data!r}")
    kind = _as_choice(
        _require(data, "type", "input.normalization."),
        "input.normalization.type",
        NORMALIZATION_TYPES,
    )
    if kind == "raw":
        return Normalization("raw")
    mean = _as_triple(
        _require(data, "mean", "input.normalization."), "normalization.mean", positive=False
    )
    std = _as_triple(
        _require(data, "std", "input.normalization."), "normalization.std", positive=True
    )
    return Normalization("mean_std", mean, std)


def _parse_input(data: Any) -> InputSpec:
    if not isinstance(data, Mapping):
        raise BundleError(f"model.json: input must be an object, got {data!r}")
    crop = _require(data, "crop_fraction", "input.")
    if isinstance(crop, bool) or not isinstance(crop, int | float) or not 0 < crop <= 1:
        raise BundleError(f"model.json: input.crop_fraction must be in (0, 1], got {crop!r}")
    return InputSpec(
        height=_as_int(_require(data, "height", "input."), "input.height", minimum=1),
        width=_as_int(_require(data, "width", "input."), "input.width", minimum=1),
        channel_order=_as_choice(
            _require(data, "channel_order", "input."), "input.channel_order", CHANNEL_ORDERS
        ),
        resize=_as_choice(_require(data, "resize", "input."), "input.resize", RESIZE_METHODS),
        crop_fraction=float(crop),
        normalization=_parse_normalization(_require(data, "normalization", "input.")),
    )


def _parse_output(data: Any) -> OutputSpec:
    if not isinstance(data, Mapping):
        raise BundleError(f"model.json: output must be an object, got {data!r}")
    offset = _require(data, "label_offset", "output.")
    if isinstance(offset, bool) or offset not in (0, 1):
        raise BundleError(f"model.json: output.label_offset must be 0 or 1, got {offset!r}")
    return OutputSpec(
        activation=_as_choice(
            _require(data, "activation", "output."), "output.activation", ACTIVATIONS
        ),
        label_offset=int(offset),
    )


def _is_sha256(text: str) -> bool:
    """64 lower-case hex digits."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def parse_metadata(data: Any) -> BundleMetadata:
    """Validate a model.json document; every problem is a BundleError naming the field."""
    if not isinstance(data, Mapping):
        raise BundleError("model.json: the document must be a JSON object")
    schema = _require(data, "schema_version", "")
    if schema != SCHEMA_VERSION:
        raise BundleError(
            f"model.json: unsupported schema_version {schema!r} "
            f"(this runtime reads {SCHEMA_VERSION})"
        )
    sha = _as_str(_require(data, "sha256", ""), "sha256").lower()
    if not _is_sha256(sha):
        raise BundleError(f"model.json: sha256 must be 64 hex digits, got {sha!r}")
    version = _require(data, "version", "")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    source = data.get("source", {})
    if not isinstance(source, Mapping):
        raise BundleError("model.json: source must be an object")
    meaningful = data.get("predictions_meaningful", True)
    if not isinstance(meaningful, bool):
        raise BundleError("model.json: predictions_meaningful must be true or false")
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise BundleError("model.json: notes must be a string")
    return BundleMetadata(
        name=_as_str(_require(data, "name", ""), "name"),
        version=_as_str(version, "version"),
        sha256=sha,
        input=_parse_input(_require(data, "input", "")),
        output=_parse_output(_require(data, "output", "")),
        source=dict(source),
        predictions_meaningful=meaningful,
        notes=notes,
    )


def read_labels(text: str) -> tuple[str, ...]:
    """labels.txt lines; a line may list synonyms separated by ", " (kept whole here)."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BundleError("labels.txt is empty")
    return tuple(lines)


def display_label(line: str) -> str:
    """The label shown to users: the first synonym of a labels.txt line."""
    return line.split(", ", 1)[0].strip()


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class ModelBundle:
    path: Path
    metadata: BundleMetadata
    labels: tuple[str, ...]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def sha256(self) -> str:
        return self.metadata.sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_metadata_file(path: Path) -> BundleMetadata:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"bundle has no {METADATA_FILE}: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    return parse_metadata(data)


def _verify_sha256(model_path: Path, expected: str, origin: str) -> None:
    actual = sha256_file(model_path)
    if actual != expected:
        raise BundleIntegrityError(
            f"refusing model bundle {origin}: sha256 of {MODEL_FILE} is {actual}, "
            f"but model.json declares {expected}"
        )


def normalize_sha256(value: str | None) -> str | None:
    """A sha256 given by a deployment (64 hex digits, any case), or None when unset."""
    if value is None or not value.strip():
        return None
    sha = value.strip().lower()
    if not _is_sha256(sha):
        raise ValueError(f"an expected model sha256 must be 64 hex digits, got {value!r}")
    return sha


def check_expected_sha256(metadata: BundleMetadata, expected: str | None, origin: str) -> None:
    """Refuse a bundle whose model.json declares another model than the deployment pinned."""
    if expected is not None and metadata.sha256 != expected:
        raise BundleIntegrityError(
            f"refusing model bundle {origin}: model.json declares sha256 {metadata.sha256}, "
            f"but this deployment expects {expected}"
        )


def load_bundle_dir(
    path: Path,
    *,
    origin: str | None = None,
    verify: bool = True,
    expected_sha256: str | None = None,
) -> ModelBundle:
    """Load and verify a bundle folder (against ``expected_sha256`` too, when given)."""
    path = Path(path)
    origin = origin or str(path)
    if not path.is_dir():
        raise ModelUnavailable(f"model bundle not found: {origin} is not a directory")
    metadata = _read_metadata_file(path / METADATA_FILE)
    check_expected_sha256(metadata, expected_sha256, origin)
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise BundleError(f"bundle {origin} has no {MODEL_FILE}")
    try:
        labels = read_labels((path / LABELS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"bundle {origin} has no {LABELS_FILE}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {LABELS_FILE} of bundle {origin}: {exc}") from exc
    if verify:
        _verify_sha256(model_path, metadata.sha256, origin)
    return ModelBundle(path=path, metadata=metadata, labels=labels)


def default_cache_root() -> Path:
    env = os.environ.get("MODEL_CACHE_DIR")
    return Path(env) if env else DEFAULT_CACHE_ROOT


def cache_dir_for(uri: str, cache_dir: Path | None = None) -> Path:
    """Where the bundle at ``uri`` is cached: <root>/<sha256 of the normalised URI>[:16]."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    key = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return root / key


def _fetch_object(client: Any, location: S3Location) -> bytes:
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except Exception as exc:
        raise ModelUnavailable(f"cannot read {location.uri}: {exc}") from exc


def _download(client: Any, location: S3Location, dest: Path) -> None:
    try:
        body = client.get_object(Bucket=location.bucket, Key=location.key)["Body"]
        with dest.open("wb") as fh:
            for chunk in iter(lambda: body.read(_HASH_CHUNK), b""):
                fh.write(chunk)
    except OSError:
        raise  # local disk trouble: reported as a cache error by the caller
    except Exception as exc:
        raise ModelUnavailable(f"cannot download {location.uri}: {exc}") from exc


def _client_for(uri: str, client: Any) -> Any:
    """``client``, or a new S3 client; a configuration problem makes the model unavailable."""
    if client is not None:
        return client
    try:
        return s3util.s3_client()
    except Exception as exc:  # botocore configuration errors (region, profile, ...)
        raise ModelUnavailable(f"cannot create an S3 client for {uri}: {exc}") from exc


def _fetch_metadata(client: Any, location: S3Location) -> tuple[bytes, BundleMetadata]:
    """The model.json of the bundle at ``location``: its bytes and what they say."""
    target = location.child(METADATA_FILE)
    raw = _fetch_object(client, target)
    try:
        return raw, parse_metadata(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{target.uri} is not valid JSON: {exc}") from exc


def _load_s3_bundle(
    uri: str, cache_dir: Path | None, client: Any, expected_sha256: str | None = None
) -> ModelBundle:
    """Fetch model.json (small) each time; download the rest only when the cache lacks it.

    The cache is keyed by URI and by the tflite sha256 model.json declares, so a new model
    uploaded under the same prefix is downloaded again, and a complete cached copy is reused
    without downloading anything but model.json. A download goes to a temporary folder beside
    the final one and is renamed into place only once verified, so a crash or a concurrent
    process never sees a partial bundle.
    """
    location = parse_s3_uri(uri)
    client = _client_for(uri, client)
    raw_metadata, metadata = _fetch_metadata(client, location)
    check_expected_sha256(metadata, expected_sha256, uri)

    base = cache_dir_for(uri, cache_dir)
    final = base / metadata.sha256
    if final.is_dir():
        try:
            # Verified on every load, not only after the download.
            return load_bundle_dir(final, origin=f"{uri} (cached in {final})")
        except (BundleError, BundleIntegrityError):
            # The cache is not a source of truth: a copy damaged on disk is thrown away and
            # downloaded again (and that download is verified like any other).
            shutil.rmtree(final, ignore_errors=True)
    try:
        bundle = _download_bundle(client, location, raw_metadata, base, final)
    except OSError as exc:
        raise ModelUnavailable(f"cannot write the model cache under {base}: {exc}") from exc
    _remove_old_versions(base, keep=final)
    return bundle


def _download_bundle(
    client: Any, location: S3Location, raw_metadata: bytes, base: Path, final: Path
) -> ModelBundle:
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=base))
    try:
        (staging / METADATA_FILE).write_bytes(raw_metadata)
        for name in (LABELS_FILE, MODEL_FILE):
            _download(client, location.child(name), staging / name)
        bundle = load_bundle_dir(staging, origin=location.uri)  # sha256 checked before rename
        try:
            staging.rename(final)
        except OSError:
            # Another process finished the same download first: use its copy.
            if not final.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ModelBundle(path=final, metadata=bundle.metadata, labels=bundle.labels)


def _remove_old_versions(base: Path, keep: Path) -> None:
    """Drop cached copies of models previously published under the same URI (/tmp is small).

    Only completed copies (named by their sha256) are removed, never another process's
    staging folder; an interpreter that still has an old file open keeps reading it.
    """
    for entry in base.iterdir():
        if entry != keep and len(entry.name) == 64 and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def load_metadata(uri: str | os.PathLike[str], *, s3_client: Any = None) -> BundleMetadata:
    """Only the model.json of a bundle (a folder or an ``s3://`` URI): which model it names,
    without downloading or verifying the tflite (``inferstack batch reconcile`` needs only
    its sha256)."""
    text = os.fspath(uri)
    if not is_s3_uri(text):
        return _read_metadata_file(Path(text) / METADATA_FILE)
    try:
        location = parse_s3_uri(text)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from exc
    return _fetch_metadata(_client_for(text, s3_client), location)[1]


def load_bundle(
    uri: str | os.PathLike[str],
    *,
    cache_dir: Path | None = None,
    s3_client: Any = None,
    expected_sha256: str | None = None,
) -> ModelBundle:
    """Load a bundle from a local folder or an ``s3://bucket/prefix/`` URI.

    S3 bundles are downloaded once into ``cache_dir`` (default ``$MODEL_CACHE_DIR`` or
    ``<tmp>/inferstack-models``), under a folder named after the URI. The tflite sha256 is
    checked against model.json on every load: BundleIntegrityError if it differs. With
    ``expected_sha256`` (64 hex digits, or None/empty for no pin) model.json must also declare
    exactly that checksum.
    """
    try:
        expected = normalize_sha256(expected_sha256)
    except ValueError as exc:
        raise BundleError(str(exc)) from exc
    text = os.fspath(uri)
    if is_s3_uri(text):
        try:
            parse_s3_uri(text)
        except ValueError as exc:
            raise ModelUnavailable(str(exc)) from exc
        return _load_s3_bundle(text, cache_dir, s3_client, expected)
    return load_bundle_dir(Path(text), expected_sha256=expected)


def write_bundle(
    out: Path,
    *,
    tflite: Path | bytes,
    labels: Iterable[str],
    metadata: Mapping[str, Any],
    overwrite: bool = False,
) -> ModelBundle:
    """Write a bundle folder: copies the tflite, writes labels and model.json with its sha256.

    ``metadata`` is a model.json document without (or with a placeholder) ``sha256``; it is
    validated before anything is written. Written into a temporary folder renamed into place.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BundleError(f"output path {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BundleError(f"output folder {out} exists and is not empty")
    data = tflite if isinstance(tflite, bytes) else Path(tflite).read_bytes()
    document = dict(metadata)
    document["sha256"] = hashlib.sha256(data).hexdigest()
    document.setdefault("schema_version", SCHEMA_VERSION)
    parsed = parse_metadata(document)
    label_lines = [line.rstrip("\n") for line in labels]
    if not label_lines:
        raise BundleError("no labels given")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (staging / MODEL_FILE).write_bytes(data)
        (staging / LABELS_FILE).write_text("\n".join(label_lines) + "\n", encoding="utf-8")
        (staging / METADATA_FILE).write_text(
            json.dumps(parsed.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return load_bundle_dir(out)


__all__ = [
    "BUNDLE_FILES",
    "LABELS_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "BundleMetadata",
    "InputSpec",
    "ModelBundle",
    "Normalization",
    "OutputSpec",
    "cache_dir_for",
    "check_expected_sha256",
    "display_label",
    "load_bundle",
    "load_bundle_dir",
    "load_metadata",
    "normalize_sha256",
    "parse_metadata",
    "read_labels",
    "sha256_file",
    "write_bundle",
]
