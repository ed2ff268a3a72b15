"""OpenInference export: a trace as OpenTelemetry spans, for Arize Phoenix or any OTLP backend.

One span per run (CHAIN), one per layer (CHAIN) and one per call (LLM, a child of its layer's span),
timed by the trace and linked to the spans of the answers the call read. Spans are built from the
trace's node-link data alone (``Trace.to_dict()``, or a file read by ``Trace.load``), so they depend on
the trace file format, not on the ``Trace`` class.

Invariant: this is the only module that imports ``opentelemetry`` or ``openinference``, and no span
holds a secret: a trace keeps only the *name* of a key variable, this module reads no environment
value, and base URLs lose their user info, query and fragment before anything is exported.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from moa_lab._errors import ConfigError, MoaLabError
from moa_lab._trace import Trace

try:
    from openinference.semconv.resource import ResourceAttributes
    from openinference.semconv.trace import (
        MessageAttributes,
        OpenInferenceLLMProviderValues,
        OpenInferenceLLMSystemValues,
        OpenInferenceMimeTypeValues,
        OpenInferenceSpanKindValues,
        SpanAttributes,
    )
    from opentelemetry import trace as otel_trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
except ImportError as exc:
    raise MoaLabError(
        f"OpenInference export needs {exc.name or 'opentelemetry'}, which is not installed; "
        "install the otel extra: pip install 'moa_lab[otel]'"
    ) from None

__all__ = ["OtelExport", "export_trace", "to_otel"]

_SERVICE = "moa_lab"
_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_CHAIN = OpenInferenceSpanKindValues.CHAIN.value
_LLM = OpenInferenceSpanKindValues.LLM.value
_JSON = OpenInferenceMimeTypeValues.JSON.value
_TEXT = OpenInferenceMimeTypeValues.TEXT.value
_NO_LIMITS = SpanLimits(
    max_attributes=SpanLimits.UNSET,
    max_span_attributes=SpanLimits.UNSET,
    max_links=SpanLimits.UNSET,
    max_attribute_length=SpanLimits.UNSET,
    max_span_attribute_length=SpanLimits.UNSET,
)

#: Hosts of OpenAI-compatible APIs whose provider OpenInference names (values from its enum).
_PROVIDERS = {
    "api.openai.com": OpenInferenceLLMProviderValues.OPENAI,
    "openai.azure.com": OpenInferenceLLMProviderValues.AZURE,
    "api.together.xyz": OpenInferenceLLMProviderValues.TOGETHER,
    "api.together.ai": OpenInferenceLLMProviderValues.TOGETHER,
    "api.groq.com": OpenInferenceLLMProviderValues.GROQ,
    "api.fireworks.ai": OpenInferenceLLMProviderValues.FIREWORKS,
    "api.deepseek.com": OpenInferenceLLMProviderValues.DEEPSEEK,
    "api.mistral.ai": OpenInferenceLLMProviderValues.MISTRALAI,
    "api.x.ai": OpenInferenceLLMProviderValues.XAI,
}


@dataclass(frozen=True)
class OtelExport:
    """What an export sent: the OpenTelemetry trace id, span counts and where the spans went."""

    trace_id: str
    """The 32-hex-digit trace id (derived from the run id, so re-exporting a run reuses it)."""
    spans: int
    """Spans exported: one per call, one per layer and one for the run."""
    calls: int
    """Call spans among them."""
    links: int
    """Span links, one per edge of the trace (a call read another call's answer)."""
    destination: str
    """The OTLP endpoint, the JSON-lines file, or the exporter's class name."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return asdict(self)


def export_trace(
    path_or_trace: str | Path | Trace | Mapping[str, Any],
    *,
    endpoint: str | None = None,
    out: str | Path | None = None,
    project: str | None = None,
) -> OtelExport:
    """Export a trace file (or trace) to an OTLP/HTTP ``endpoint`` or a JSON-lines file ``out``."""
    if isinstance(path_or_trace, (str, Path)):
        # Trace.load validates the file and reads the journal of an unfinished run too.
        path_or_trace = Trace.load(path_or_trace).to_dict()
    return to_otel(path_or_trace, endpoint=endpoint, out=out, project=project)


def to_otel(
    trace: Trace | Mapping[str, Any],
    *,
    endpoint: str | None = None,
    out: str | Path | None = None,
    exporter: SpanExporter | None = None,
    headers: Mapping[str, str] | None = None,
    project: str | None = None,
    timeout: float = 10.0,
) -> OtelExport:
    """Send a trace (or its node-link dict) as OpenInference spans to exactly one destination.

    ``endpoint``: an OTLP/HTTP traces URL (Phoenix: ``http://127.0.0.1:6006/v1/traces``), sent with
    ``headers``; ``out``: a JSON-lines file, one span per line; ``exporter``: any OpenTelemetry
    ``SpanExporter``. ``project`` sets the Phoenix project (``openinference.project.name``).
    """
    data = trace if isinstance(trace, Mapping) else trace.to_dict()
    chosen = [
        name
        for name, value in (("endpoint", endpoint), ("out", out), ("exporter", exporter))
        if value is not None
    ]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one destination: endpoint= (an OTLP/HTTP URL such as "
            "http://127.0.0.1:6006/v1/traces), out= (a JSON-lines file) or exporter="
        )
    if endpoint is not None:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise ConfigError(
                f"{endpoint!r} is not an http(s) URL; give one like http://127.0.0.1:6006/v1/traces"
            )
        destination = endpoint
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout)
    elif out is not None:
        destination = str(out)
        exporter = _JsonLinesExporter(Path(out))
    else:
        destination = type(exporter).__name__
    return _export(data, _Checked(exporter), destination, project=project, timeout=timeout)


# -- spans from node-link data -----------------------------------------------------------------
def _export(
    data: Mapping[str, Any],
    exporter: _Checked,
    destination: str,
    *,
    project: str | None,
    timeout: float,
) -> OtelExport:
    attrs = data["graph"]
    nodes = {node["id"]: node for node in data["nodes"]}
    reads: dict[str, list[tuple[int, str]]] = {name: [] for name in nodes}
    for edge in data["edges"]:
        reads[edge["target"]].append((edge["position"], edge["source"]))
    order = _topological(nodes, reads)
    layers = sorted({nodes[name]["layer"] for name in nodes})

    resource = {"service.name": _SERVICE}
    if attrs.get("moa_lab_version"):
        resource["service.version"] = attrs["moa_lab_version"]
    if project:
        resource[ResourceAttributes.PROJECT_NAME] = project
    spans = len(nodes) + len(layers) + 1
    # A trace is a finished record, not live traffic: OTEL_* sampling or limits set for live tracing
    # must not drop or truncate part of it (the default cap of 128 attributes would cut long chats).
    provider = TracerProvider(
        resource=Resource.create(resource),
        id_generator=_RunIds(attrs["run_id"]),
        sampler=ALWAYS_ON,
        span_limits=_NO_LIMITS,
    )
    # The queue holds the whole trace, so the processor never drops a span of a large run.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max(2048, spans)))
    tracer = provider.get_tracer("moa_lab", attrs.get("moa_lab_version"))
    try:
        root = _run_span(tracer, attrs, [nodes[n] for n in order])
        root_context = otel_trace.set_span_in_context(root)
        layer_spans = {
            layer: tracer.start_span(
                f"layer {layer}",
                context=root_context,
                start_time=_ns(min(nodes[n]["started_at"] for n in order if nodes[n]["layer"] == layer)),
                attributes={
                    _KIND: _CHAIN,
                    "moa_lab.layer": layer,
                    "moa_lab.calls": [n for n in order if nodes[n]["layer"] == layer],
                },
            )
            for layer in layers
        }
        contexts: dict[str, otel_trace.SpanContext] = {}
        for name in order:
            node = nodes[name]
            links = [
                otel_trace.Link(contexts[source], {"moa_lab.position": position})
                for position, source in sorted(reads[name])
            ]
            span = tracer.start_span(
                f"{node['role']} {name}",
                context=otel_trace.set_span_in_context(layer_spans[node["layer"]]),
                start_time=_ns(node["started_at"]),
                attributes=_call_attributes(name, node, [s for _, s in sorted(reads[name])]),
                links=links,
            )
            if node.get("error"):
                message = _scrub_text(node["error"], node.get("base_url"))
                span.add_event(
                    "exception",
                    {"exception.type": "moa_lab.CallError", "exception.message": message},
                    timestamp=_ns(_ended(node)),
                )
                span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, message))
            else:
                span.set_status(otel_trace.Status(otel_trace.StatusCode.OK))
            contexts[name] = span.get_span_context()
            span.end(end_time=_ns(_ended(node)))
        for layer, span in layer_spans.items():
            span.end(end_time=_ns(max(_ended(nodes[n]) for n in order if nodes[n]["layer"] == layer)))
        ended = [_ended(nodes[n]) for n in order]
        root.end(end_time=_ns(max([attrs.get("finished_at") or attrs["created_at"], *ended])))
        flushed = provider.force_flush(timeout_millis=int((timeout + 5) * 1000))
    finally:
        provider.shutdown()
    if not flushed or exporter.failed or exporter.exported < spans:
        listening = "; is an OTLP/HTTP receiver (Phoenix, a collector) listening there?"
        raise MoaLabError(
            f"could not export the trace's spans to {destination} ({exporter.exported} of {spans} "
            f"accepted){listening if destination.startswith('http') else ''}"
        )
    return OtelExport(
        trace_id=otel_trace.format_trace_id(root.get_span_context().trace_id),
        spans=spans,
        calls=len(order),
        links=sum(len(r) for r in reads.values()),
        destination=destination,
    )


def _run_span(
    tracer: otel_trace.Tracer, attrs: Mapping[str, Any], calls: list[Mapping[str, Any]]
) -> otel_trace.Span:
    """Start the root span of the run: the prompt in, the final answer out, the replay's parent."""
    attributes: dict[str, Any] = {
        _KIND: _CHAIN,
        SpanAttributes.INPUT_VALUE: attrs["prompt"],
        SpanAttributes.INPUT_MIME_TYPE: _TEXT,
        "moa_lab.run_id": attrs["run_id"],
        "moa_lab.status": attrs.get("status", "running"),
    }
    if attrs.get("config"):
        attributes["moa_lab.layers"] = attrs["config"]["layers"]
    if attrs.get("final") is not None:
        attributes[SpanAttributes.OUTPUT_VALUE] = attrs["final"]
        attributes[SpanAttributes.OUTPUT_MIME_TYPE] = _TEXT
    if attrs.get("parent_run_id"):
        attributes["moa_lab.parent_run_id"] = attrs["parent_run_id"]
        attributes["moa_lab.edits"] = json.dumps(attrs.get("edits", []), ensure_ascii=False)
    started = min([attrs["created_at"], *(call["started_at"] for call in calls)])
    span = tracer.start_span("moa_lab run", start_time=_ns(started), attributes=attributes)
    if attrs.get("status") == "complete":
        span.set_status(otel_trace.Status(otel_trace.StatusCode.OK))
    elif attrs.get("status") == "failed":
        failed = [call for call in calls if call.get("error")]
        why = f": {_scrub_text(failed[0]['error'], failed[0].get('base_url'))}" if failed else ""
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, f"the run failed{why}"))
    return span


def _call_attributes(name: str, node: Mapping[str, Any], reads: list[str]) -> dict[str, Any]:
    """OpenInference LLM attributes of one call, plus what moa_lab knows (cache, lineage, reads)."""
    attributes: dict[str, Any] = {
        _KIND: _LLM,
        # Every call goes through the openai client, the product llm.system names (openinference's
        # own OpenAI instrumentor sets it the same way whatever the host).
        SpanAttributes.LLM_SYSTEM: OpenInferenceLLMSystemValues.OPENAI.value,
        SpanAttributes.LLM_MODEL_NAME: node["model"],
        SpanAttributes.LLM_REQUEST_MODEL_NAME: node["model"],
        SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(node.get("params") or {}, sort_keys=True),
        SpanAttributes.INPUT_VALUE: json.dumps(node["messages"], ensure_ascii=False),
        SpanAttributes.INPUT_MIME_TYPE: _JSON,
        "moa_lab.node": name,
        "moa_lab.role": node["role"],
        "moa_lab.layer": node["layer"],
        "moa_lab.index": node["index"],
        "moa_lab.cache_hit": bool(node.get("cache_hit")),
        "moa_lab.references": reads,
    }
    base_url = node.get("base_url")
    if base_url:
        attributes["moa_lab.base_url"] = _scrub_url(base_url)
        provider = _PROVIDERS.get(urlsplit(base_url).hostname or "")
        if provider is not None:
            attributes[SpanAttributes.LLM_PROVIDER] = provider.value
    for number, message in enumerate(node["messages"]):
        prefix = f"{SpanAttributes.LLM_INPUT_MESSAGES}.{number}."
        content = message.get("content")
        attributes[prefix + MessageAttributes.MESSAGE_ROLE] = message["role"]
        attributes[prefix + MessageAttributes.MESSAGE_CONTENT] = (
            content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        )
    if node.get("response") is not None:
        prefix = f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0."
        attributes[prefix + MessageAttributes.MESSAGE_ROLE] = "assistant"
        attributes[prefix + MessageAttributes.MESSAGE_CONTENT] = node["response"]
        attributes[SpanAttributes.OUTPUT_VALUE] = node["response"]
        attributes[SpanAttributes.OUTPUT_MIME_TYPE] = _TEXT
    usage = node.get("usage") or {}
    counts = {
        "prompt": usage.get("prompt_tokens"),
        "completion": usage.get("completion_tokens"),
        "total": usage.get("total_tokens"),
    }
    if node.get("cache_hit"):
        # Nothing was sent: like moa_lab's own totals, count the usage and cost as saved, not spent,
        # so a backend summing llm.token_count / llm.cost does not bill a cache hit twice.
        _put(attributes, {f"moa_lab.saved_tokens.{k}": v for k, v in counts.items()})
        _put(attributes, {"moa_lab.saved_cost": node.get("cost")})
    else:
        _put(
            attributes,
            {
                SpanAttributes.LLM_TOKEN_COUNT_PROMPT: counts["prompt"],
                SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: counts["completion"],
                SpanAttributes.LLM_TOKEN_COUNT_TOTAL: counts["total"],
                SpanAttributes.LLM_COST_TOTAL: node.get("cost"),
            },
        )
    _put(
        attributes,
        {
            SpanAttributes.LLM_FINISH_REASON: node.get("finish_reason"),
            SpanAttributes.LLM_RESPONSE_MODEL_NAME: node.get("served_model"),
            "moa_lab.latency": node.get("latency"),
            "moa_lab.attempts": node.get("attempts"),
            "moa_lab.lineage": node.get("lineage"),
            "moa_lab.origin": node.get("origin"),
            "moa_lab.picked": node.get("picked"),
        },
    )
    retried = [_scrub_text(e, base_url) for e in node.get("retried_errors") or []]
    if retried:
        attributes["moa_lab.retried_errors"] = retried
    return attributes


def _put(attributes: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Set the values that are known: OpenTelemetry attributes cannot be None."""
    attributes.update({key: value for key, value in values.items() if value is not None})


def _topological(nodes: Mapping[str, Any], reads: Mapping[str, list[tuple[int, str]]]) -> list[str]:
    """Calls in run order (layer, index) such that every call comes after the calls it read."""

    def key(name: str) -> tuple[int, int, str]:
        return nodes[name]["layer"], nodes[name]["index"], name

    waiting = {name: len(sources) for name, sources in reads.items()}
    readers: dict[str, list[str]] = {name: [] for name in nodes}
    for name, sources in reads.items():
        for _, source in sources:
            readers[source].append(name)
    ready = [key(name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)[2]
        order.append(name)
        for reader in readers[name]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, key(reader))
    if len(order) != len(nodes):
        raise MoaLabError("the trace's edges form a cycle, so its calls have no order to export")
    return order


def _ended(node: Mapping[str, Any]) -> float:
    """When a call ended (a call recorded without an end is taken to end where it started)."""
    return node.get("ended_at") or node["started_at"]


def _ns(seconds: float) -> int:
    """Unix seconds to the nanoseconds OpenTelemetry takes."""
    return round(seconds * 1_000_000_000)


def _scrub_url(url: str) -> str:
    """The URL without user info, query or fragment (where a key could hide); ``local`` as is."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _scrub_text(text: str, url: str | None) -> str:
    """An error message with the call's URL scrubbed wherever the message quotes it."""
    return text.replace(url, _scrub_url(url)) if url else text


def _hash_bits(text: str, bits: int) -> int:
    """A nonzero id of ``bits`` bits from a SHA-256 of ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: bits // 8], "big") or 1


class _RunIds(IdGenerator):
    """Ids derived from the run id and the span's creation order: re-exporting a run repeats them,
    so a backend that keeps spans by id (Phoenix does) holds one copy, not two."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.count = 0

    def generate_trace_id(self) -> int:
        """The run's trace id."""
        return _hash_bits(f"moa_lab.trace:{self.run_id}", 128)

    def generate_span_id(self) -> int:
        """The next span's id."""
        self.count += 1
        return _hash_bits(f"moa_lab.span:{self.run_id}:{self.count}", 64)


class _Checked(SpanExporter):
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


class _JsonLinesExporter(SpanExporter):
    """Writes each span as one line of JSON (the SDK's ``to_json``), for a file instead of a server."""

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8")  # closed by shutdown
        except OSError as exc:
            raise MoaLabError(f"cannot write the spans to {path}: {exc.strerror}") from None

    def export(self, spans: Iterable[ReadableSpan]) -> SpanExportResult:
        """Append the spans, one per line."""
        for span in spans:
            self.file.write(span.to_json(indent=None) + "\n")
        self.file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        self.file.close()
