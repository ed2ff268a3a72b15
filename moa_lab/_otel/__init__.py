"""OpenInference export: a trace as OpenTelemetry spans, for Arize Phoenix or any OTLP backend.

``Trace.to_otel`` lands here. This module checks where the spans go and names what an export sent
(``OtelExport``); ``_spans`` builds and sends them. One span per run (CHAIN, named for its strategy),
one per level of its DAG (CHAIN: a layer, a debate's round, a search's step) and one per call (LLM,
a child of its level's span), with the trace's times and a span link for every edge (which answers
a call read), since a span tree alone cannot hold a DAG.

Invariant: only ``_spans`` and ``_exporters`` import ``opentelemetry`` or ``openinference`` (the
``otel`` extra), and only when an export runs, so ``import moa_lab`` and ``moa_lab.OtelExport`` need
neither; without the extra an export fails with one line that gives the pip command which installs it.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from moa_lab._errors import ConfigError, MoaLabError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moa_lab._trace import Trace

__all__ = ["DEFAULT_ENDPOINT", "OtelExport", "default_endpoint", "export", "scrub_url"]

#: Where a local Arize Phoenix (``phoenix serve``, ``px.launch_app()``) takes OTLP/HTTP spans.
DEFAULT_ENDPOINT = "http://127.0.0.1:6006/v1/traces"


@dataclass(frozen=True)
class OtelExport:
    """What ``Trace.to_otel`` sent: the OpenTelemetry trace id, span counts and where they went."""

    trace_id: str
    """The 32-hex-digit trace id (derived from the run id: exporting a run again reuses it)."""
    spans: int
    """Spans exported: one per call, one per level (layer, round or step) and one for the run."""
    calls: int
    """Call spans among them."""
    links: int
    """Span links to the answers calls read, one per edge of the trace."""
    destination: str
    """The OTLP endpoint (without credentials), the JSON-lines file, or the exporter's class name."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return asdict(self)


def default_endpoint() -> str:
    """The OTLP/HTTP traces URL used when none is given: ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as
    is, else ``$PHOENIX_COLLECTOR_ENDPOINT`` + ``/v1/traces``, else a local Phoenix."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    phoenix = os.environ.get("PHOENIX_COLLECTOR_ENDPOINT", "").rstrip("/")
    if phoenix:
        return phoenix if phoenix.endswith("/v1/traces") else phoenix + "/v1/traces"
    return DEFAULT_ENDPOINT


def export(
    trace: Trace,
    *,
    endpoint: str | None = None,
    out: str | Path | IO[str] | None = None,
    exporter: Any = None,
    headers: Mapping[str, str] | None = None,
    project: str | None = None,
    timeout: float = 10.0,
) -> OtelExport:
    """Send ``trace`` as spans to at most one destination (default: ``default_endpoint()``).

    Raises ``ConfigError`` for two destinations or a URL that is not http(s), and ``MoaLabError`` when
    the otel extra is missing or the destination did not accept every span.
    """
    chosen = [
        name
        for name, value in (("endpoint", endpoint), ("out", out), ("exporter", exporter))
        if value is not None
    ]
    if len(chosen) > 1:
        raise ConfigError(
            f"give one destination, not {' and '.join(chosen)}: an OTLP/HTTP endpoint (such as "
            f"{DEFAULT_ENDPOINT}), a JSON-lines file, or an exporter"
        )
    if out is None and exporter is None:
        endpoint = endpoint or default_endpoint()
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise ConfigError(
                f"{scrub_url(endpoint)!r} is not an http(s) URL; give one like {DEFAULT_ENDPOINT}"
            )
    try:
        from moa_lab._otel import _spans
    except ImportError as exc:
        raise MoaLabError(
            f"OpenInference export needs {exc.name or 'opentelemetry'}, which is not installed; "
            f"install the otel extra: {_install_command()}"
        ) from None
    return _spans.send(
        trace, endpoint=endpoint, out=out, exporter=exporter, headers=headers, project=project,
        timeout=timeout,
    )  # fmt: skip


def _install_command() -> str:
    """The pip command that installs the otel extra into the running Python (editable from a
    checkout, as setup.sh installs moa_lab; from the index otherwise)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        target = "-e " + shlex.quote(f"{checkout}[otel]")
    else:
        target = shlex.quote("moa_lab[otel]")
    return f"{shlex.quote(sys.executable)} -m pip install {target}"


def scrub_url(url: str) -> str:
    """The URL without user info, query or fragment (where a key could hide); ``local`` as is."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number: leave it out
        netloc = host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
