"""Results of the pre-flight checks: one line each, a table for people and JSON for tools."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 (a status, not a password)
    WARN = "WARN"  # the stack deploys, but something will not work as configured, or unknown
    FAIL = "FAIL"  # terraform apply, or the batch path, will fail as things stand


@dataclass(frozen=True)
class CheckResult:
    """One check: what was found (``detail``) and, unless it passed, what to do (``fix``)."""

    check: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
            "data": self.data,
        }


@dataclass(frozen=True)
class Report:
    account_id: str
    region: str
    results: tuple[CheckResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(r.status is Status.FAIL for r in self.results)

    def counts(self) -> dict[str, int]:
        return {str(s): sum(r.status is s for r in self.results) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "region": self.region,
            "ok": not self.failed,
            "counts": self.counts(),
            "checks": [r.to_dict() for r in self.results],
            "settings": self.settings,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def to_table(self, width: int = 100) -> str:
        """Status, check name, what was found; the fix indented under each non-PASS line."""
        name_width = max((len(r.check) for r in self.results), default=5)
        indent = " " * (4 + 2 + name_width + 2)
        text_width = max(width - len(indent), 40)
        lines = [f"account {self.account_id}, region {self.region}", ""]
        for result in self.results:
            detail = textwrap.wrap(result.detail, text_width) or [""]
            head = f"{result.status!s:<4}  {result.check:<{name_width}}  "
            lines.append(head + detail[0])
            lines.extend(indent + more for more in detail[1:])
            if result.fix and result.status is not Status.PASS:
                for i, fix_line in enumerate(textwrap.wrap(result.fix, text_width - 2)):
                    lines.append(indent + ("> " if i == 0 else "  ") + fix_line)
        counts = self.counts()
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        lines += ["", f"{summary}: " + ("ready to apply" if not self.failed else "fix the FAILs")]
        return "\n".join(lines)
