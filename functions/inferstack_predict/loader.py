"""The model of the real-time function: loaded once at init, or the reason it is not there.

Lambda retries a failed init on the next invocation, but only when the init raises; this
function instead keeps running and answers 503, so it must retry by itself. A transient
failure (S3 throttling, a network blip at cold start) is retried at most once per
``retry_interval_s``; a configuration problem (MODEL_URI unset, bad settings) or a bundle
that is refused (integrity, invalid model.json) is permanent for the life of the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferstack.classifier import Classifier
from inferstack.errors import (
    BundleError,
    BundleIntegrityError,
    InferstackError,
    ModelUnavailable,
)

from inferstack_predict.config import ConfigError, Settings

DEFAULT_RETRY_INTERVAL_S = 30.0


@dataclass
class LoadFailure:
    error: ModelUnavailable  # what clients are told (no bucket names or paths)
    permanent: bool
    failed_at: float


def client_error(exc: BaseException) -> ModelUnavailable:
    """The 503 answer for a load failure; the full cause goes to the logs only."""
    if isinstance(exc, ConfigError):
        reason = f"the function is misconfigured ({exc})"
    elif isinstance(exc, BundleIntegrityError):
        reason = "the model bundle failed its integrity check (sha256 mismatch)"
    elif isinstance(exc, BundleError):
        reason = "the model bundle is invalid"
    else:
        reason = "the model bundle could not be loaded"
    return ModelUnavailable(f"model unavailable: {reason}; the function's logs have the cause")


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, ConfigError | BundleError | BundleIntegrityError)


class ModelLoader:
    """Holds the classifier (or the load failure) for the whole life of the sandbox."""

    def __init__(
        self,
        load: Callable[[], tuple[Settings, Classifier]],
        *,
        logger: Any,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._logger = logger
        self._retry_interval_s = retry_interval_s
        self._clock = clock
        self.settings: Settings | None = None
        self.classifier: Classifier | None = None
        self.failure: LoadFailure | None = None
        self.load_seconds: float | None = None

    def load(self) -> None:
        """Load now; never raises (a failure is logged and kept for the requests)."""
        start = self._clock()
        try:
            self.settings, self.classifier = self._load()
        except Exception as exc:  # every failure becomes a 503, none may crash the init
            self.failure = LoadFailure(client_error(exc), is_permanent(exc), self._clock())
            self._logger.exception(
                "model load failed: every request answers 503 until it loads",
                extra={
                    "error_type": type(exc).__name__,
                    "error_code": exc.code if isinstance(exc, InferstackError) else None,
                    "retry": "never" if self.failure.permanent else "later",
                },
            )
            return
        self.failure = None
        self.load_seconds = self._clock() - start
        bundle = self.classifier.bundle
        self._logger.info(
            "model loaded",
            extra={
                "model_name": bundle.name,
                "model_version": bundle.version,
                "model_sha256": bundle.sha256,
                "num_threads": self.classifier.num_threads,
                "load_seconds": round(self.load_seconds, 3),
            },
        )

    def get(self) -> tuple[Settings, Classifier]:
        """The settings and classifier, or ModelUnavailable (503)."""
        failure = self.failure
        retry_due = (
            failure is not None
            and not failure.permanent
            and self._clock() - failure.failed_at >= self._retry_interval_s
        )
        if retry_due:
            self.load()
        if self.classifier is None or self.settings is None:
            raise self.failure.error if self.failure else ModelUnavailable("model not loaded")
        return self.settings, self.classifier
