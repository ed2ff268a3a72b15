"""Span exporters of our own: one that counts what its inner exporter accepted, one that writes
JSON lines.

Invariant: an export that loses a span is known (``Checked.failed`` or a short ``exported`` count), so
``Trace.to_otel`` never reports a partial export as done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from moa_lab._errors import MoaLabError

__all__ = ["Checked", "JsonLines"]


class Checked(SpanExporter):
    """Passes spans on and counts what the wrapped exporter accepted, so a failure is reported."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.exported = 0
        self.failed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the wrapped exporter and remember the outcome."""
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failed = True
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


class JsonLines(SpanExporter):
    """Writes each span as one line of JSON (the SDK's ``to_json``) to a file, or to an open text
    stream that stays open (the spans of several traces in one file)."""

    def __init__(self, out: str | Path | IO[str]):
        if isinstance(out, (str, Path)):
            path = Path(out)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.file: IO[str] = open(path, "w", encoding="utf-8")  # closed by shutdown
            except OSError as exc:
                raise MoaLabError(f"cannot write the spans to {path}: {exc.strerror}") from None
            self.owned = True
        else:
            self.file, self.owned = out, False
        #: Why a write failed (a full disk), for the one error line; None while all went well.
        self.error: str | None = None

    def export(self, spans: Iterable[ReadableSpan]) -> SpanExportResult:
        """Append the spans, one per line; a write that fails is a failed export, not a traceback
        the SDK would log."""
        try:
            for span in spans:
                self.file.write(span.to_json(indent=None) + "\n")
            self.file.flush()
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file if this exporter opened it."""
        if self.owned:
            try:
                self.file.close()
            except OSError as exc:  # the last buffered bytes did not fit
                self.error = self.error or exc.strerror or str(exc)
