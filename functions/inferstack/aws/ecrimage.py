"""Which platforms (os/architecture) an image in ECR was built for, read-only.

An image index (a multi-platform ``docker buildx`` push, or one with provenance attestations)
lists each manifest's platform. A single-platform manifest says its platform only in its
config blob, which ECR serves through a pre-signed download URL (GetDownloadUrlForLayer);
the blob is a few KB of JSON and its sha256 is checked against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Docker/OCI architecture names for the stack's Lambda/Fargate ones.
DOCKER_ARCHITECTURE = {"arm64": "arm64", "x86_64": "amd64"}

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_CONFIG_BYTES = 1 << 20

_ECR_URI = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

Fetch = Callable[[str], bytes]


class ImageNotFoundError(LookupError):
    """The repository or the tag/digest does not exist (``missing`` says which)."""

    def __init__(self, missing: str, message: str) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class EcrImage:
    registry_id: str
    region: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def image_id(self) -> dict[str, str]:
        # A digest pins the image; the tag alone is looked up otherwise (latest by default).
        if self.digest:
            return {"imageDigest": self.digest}
        return {"imageTag": self.tag or "latest"}

    @property
    def reference(self) -> str:
        return self.digest or f":{self.tag or 'latest'}"


@dataclass(frozen=True)
class ImagePlatforms:
    digest: str
    media_type: str
    platforms: tuple[str, ...]  # "linux/arm64", ...

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(p.split("/")[1] for p in self.platforms)


def parse_image_uri(uri: str) -> EcrImage | None:
    """The parts of a private ECR image URI; None for any other registry."""
    match = _ECR_URI.match(uri.strip())
    if not match:
        return None
    return EcrImage(
        registry_id=match["registry"],
        region=match["region"],
        repository=match["repository"],
        tag=match["tag"],
        digest=match["digest"],
    )


def fetch_https(url: str) -> bytes:
    """GET a pre-signed HTTPS URL, at most MAX_CONFIG_BYTES."""
    if not url.startswith("https://"):
        raise ValueError(f"refusing a non-HTTPS download URL: {url[:40]}...")
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (https only, above)
        return bytes(response.read(MAX_CONFIG_BYTES + 1))


def image_platforms(ecr: Any, image: EcrImage, fetch: Fetch = fetch_https) -> ImagePlatforms:
    """The platforms ``image`` offers; ImageNotFoundError when the repository or tag is absent."""
    try:
        response = ecr.batch_get_image(
            registryId=image.registry_id,
            repositoryName=image.repository,
            imageIds=[image.image_id],
            acceptedMediaTypes=[*INDEX_TYPES, *MANIFEST_TYPES],
        )
    except ecr.exceptions.RepositoryNotFoundException as exc:
        raise ImageNotFoundError("repository", f"repository {image.repository} not found") from exc
    images = response.get("images") or []
    if not images:
        reason = (response.get("failures") or [{}])[0].get("failureReason", "image not found")
        raise ImageNotFoundError("image", f"{image.repository}{image.reference}: {reason}")
    found = images[0]
    manifest = json.loads(found["imageManifest"])
    media_type = found.get("imageManifestMediaType") or manifest.get("mediaType", "")
    digest = found.get("imageId", {}).get("imageDigest", image.digest or "")
    if media_type in INDEX_TYPES or "manifests" in manifest:
        platforms = _index_platforms(manifest)
    else:
        platforms = (_config_platform(ecr, image, manifest, fetch),)
    return ImagePlatforms(digest=digest, media_type=media_type, platforms=platforms)


def _index_platforms(index: dict[str, Any]) -> tuple[str, ...]:
    """Platforms of an index's image manifests (attestation manifests are not images)."""
    platforms = []
    for entry in index.get("manifests", []):
        annotations = entry.get("annotations") or {}
        platform = entry.get("platform") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        os_name, arch = platform.get("os", "unknown"), platform.get("architecture", "unknown")
        if arch == "unknown":
            continue
        variant = f"/{platform['variant']}" if platform.get("variant") else ""
        platforms.append(f"{os_name}/{arch}{variant}")
    return tuple(platforms)


def _config_platform(ecr: Any, image: EcrImage, manifest: dict[str, Any], fetch: Fetch) -> str:
    if "architecture" in manifest:  # Docker schema 1 names it in the manifest itself
        return f"linux/{manifest['architecture']}"
    digest = manifest["config"]["digest"]
    url = ecr.get_download_url_for_layer(
        registryId=image.registry_id, repositoryName=image.repository, layerDigest=digest
    )["downloadUrl"]
    blob = fetch(url)
    if len(blob) > MAX_CONFIG_BYTES:
        raise ValueError(f"image config {digest} is larger than {MAX_CONFIG_BYTES} bytes")
    if f"sha256:{hashlib.sha256(blob).hexdigest()}" != digest:
        raise ValueError(f"image config download does not match its digest {digest}")
    config = json.loads(blob)
    variant = f"/{config['variant']}" if config.get("variant") else ""
    return f"{config.get('os', 'linux')}/{config['architecture']}{variant}"
