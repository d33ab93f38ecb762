"""The validation report: issues with line numbers, statistics, the estimate and fixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_LINES_KEPT = 20


@dataclass
class Issue:
    code: str
    severity: str  # "error" | "warning" | "info"
    message: str
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def line_text(self) -> str:
        if not self.lines:
            return ""
        shown = ", ".join(str(n) for n in self.lines[:8])
        more = f" and {self.count - 8} more" if self.count > 8 else ""
        return f" (line{'s' if self.count > 1 else ''} {shown}{more})"


@dataclass
class Report:
    filename: str
    file_format: str = "unknown"
    data_format: str = "unknown"
    n_examples: int = 0
    issues: dict[str, Issue] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    # Optional fixes not applied: {"name", "description", "rows"}; applied on request by name.
    offers: list[dict[str, Any]] = field(default_factory=list)
    # For a JSON array, issues are numbered by item; this maps item number → its first line.
    items: dict[int, int] = field(default_factory=dict)
    fixed: bytes | None = None
    fixed_train: bytes | None = None
    fixed_valid: bytes | None = None
    task_type: str | None = None
    class_counts: dict[str, int] = field(default_factory=dict)

    def add(
        self, code: str, severity: str, message: str, line: int | None = None, n: int = 1
    ) -> None:
        issue = self.issues.get(code)
        if issue is None:
            issue = self.issues[code] = Issue(code, severity, message)
        issue.count += n
        if line is not None and len(issue.lines) < MAX_LINES_KEPT:
            issue.lines.append(line)

    def count(self, code: str) -> int:
        return self.issues[code].count if code in self.issues else 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def verdict(self) -> str:
        if not self.ok:
            return f"❌ {len(self.errors)} problem(s) must be fixed before training"
        if self.warnings:
            return f"⚠️ Ready to train, with {len(self.warnings)} warning(s)"
        return "✅ Ready to train"

    def top_problems(self, limit: int = 6) -> list[str]:
        ordered = self.errors + self.warnings
        return [f"{i.message}{self.where(i)}" for i in ordered[:limit]]

    def where(self, issue: Issue) -> str:
        """Line numbers, or "item N, line L" for the examples of a JSON array."""
        if not self.items or not issue.lines:
            return issue.line_text()
        shown = "; ".join(
            f"item {n}, line {self.items[n]}" if n in self.items else f"line {n}"
            for n in issue.lines[:8]
        )
        more = f" and {issue.count - 8} more" if issue.count > 8 else ""
        return f" ({shown}{more})"

    def summary_text(self) -> str:
        lines = [f"{self.verdict()}: `{self.filename}`"]
        kind = {"chat": "chat", "completion": "prompt/completion", "preference": "preference (DPO)"}
        lines.append(
            f"{self.n_examples} examples · {kind.get(self.data_format, self.data_format)} format"
            + (f" · {self.task_type}" if self.task_type else "")
        )
        for problem in self.top_problems():
            lines.append(f"• {problem}")
        if self.estimate:
            e = self.estimate
            cost = (
                "price unknown"
                if e.get("cost_usd") is None
                else "free"
                if not e["cost_usd"]
                else f"~${e['cost_usd']:.2f}"
            )
            lines.append(
                f"Estimate for {e['model']}: {e['n_epochs']} epochs × {e['dataset_tokens']:,} tokens "
                f"= ~{e['billed_tokens']:,} trained tokens, {cost}"
            )
        if self.fixes:
            lines.append(
                f"Fixed file available ({len(self.fixes)} fix(es)): " + "; ".join(self.fixes[:3])
            )
        for offer in self.offers:
            lines.append(f"Optional (--apply {offer['name']}): {offer['description']}")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a stored report (without its fixed bytes) to show it again."""
        report = cls(data.get("filename", "file"))
        for key in ("file_format", "data_format", "task_type", "n_examples", "stats"):
            if key in data:
                setattr(report, key, data[key])
        for key in ("class_counts", "estimate", "notes", "fixes", "offers"):
            setattr(report, key, data.get(key) or type(getattr(report, key))())
        report.items = {int(k): v for k, v in (data.get("items") or {}).items()}
        for i in data.get("issues", []):
            report.issues[i["code"]] = Issue(
                i["code"], i["severity"], i["message"], i.get("count", 0), i.get("lines", [])
            )
        return report

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "ok": self.ok,
            "file_format": self.file_format,
            "data_format": self.data_format,
            "task_type": self.task_type,
            "n_examples": self.n_examples,
            "issues": [
                {
                    "code": i.code,
                    "severity": i.severity,
                    "message": i.message,
                    "count": i.count,
                    "lines": i.lines,
                }
                for i in self.issues.values()
            ],
            "stats": self.stats,
            "class_counts": self.class_counts,
            "estimate": self.estimate,
            "notes": self.notes,
            "fixes": self.fixes,
            "offers": self.offers,
            "items": self.items,
        }
