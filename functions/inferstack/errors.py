# ruff: noqa: N818  (the names are the public API every entry point uses)
"""Error types shared by every entry point.

Each error carries a stable machine-readable ``code`` and the HTTP status the real-time API
answers with, so handlers map exceptions to responses without a lookup table of their own.
"""

from __future__ import annotations

from typing import ClassVar


class InferstackError(Exception):
    """Base class: a failure that is reported to the caller, never a crash."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The ``{"code", "message"}`` object used in API responses and error records."""
        return {"code": self.code, "message": self.message}


class ImageError(InferstackError):
    """Base class for anything wrong with an input image."""

    code: ClassVar[str] = "invalid_image"
    http_status: ClassVar[int] = 400


class InvalidImage(ImageError):
    """Corrupt, truncated, empty, not an image at all, or too small to classify."""

    code: ClassVar[str] = "invalid_image"
    http_status: ClassVar[int] = 400


class ImageTooLarge(ImageError):
    """Over the byte or pixel limit, including decompression bombs."""

    code: ClassVar[str] = "image_too_large"
    http_status: ClassVar[int] = 413


class UnsupportedMediaType(ImageError):
    """A real image in a format outside the allow-list, or a content type that is not accepted."""

    code: ClassVar[str] = "unsupported_media_type"
    http_status: ClassVar[int] = 415


class InvalidParameter(InferstackError):
    """A request parameter out of range (e.g. top_k)."""

    code: ClassVar[str] = "invalid_parameter"
    http_status: ClassVar[int] = 422


class InvalidRequest(InferstackError):
    """A malformed request: bad JSON body, bad base64."""

    code: ClassVar[str] = "invalid_request"
    http_status: ClassVar[int] = 400


class ModelUnavailable(InferstackError):
    """The model cannot be loaded or used (missing, unreadable, invalid bundle)."""

    code: ClassVar[str] = "model_unavailable"
    http_status: ClassVar[int] = 503


class BundleError(ModelUnavailable):
    """A model bundle that is incomplete or whose model.json is invalid."""

    code: ClassVar[str] = "invalid_bundle"


class BundleIntegrityError(ModelUnavailable):
    """The tflite file's sha256 differs from the one model.json declares: refused."""

    code: ClassVar[str] = "bundle_integrity"


__all__ = [
    "BundleError",
    "BundleIntegrityError",
    "ImageError",
    "ImageTooLarge",
    "InferstackError",
    "InvalidImage",
    "InvalidParameter",
    "InvalidRequest",
    "ModelUnavailable",
    "UnsupportedMediaType",
]
