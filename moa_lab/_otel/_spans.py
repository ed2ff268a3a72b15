"""A trace's spans, built with the OpenTelemetry SDK under the OpenInference conventions, and sent.

The run is the root span (CHAIN, ``MoA run``, ``debate run``, ``Tree of Thoughts run``; ``... replay``
for a replay), each level of its DAG a CHAIN child (``layer 2``, ``round 1``, ``step 3``) and each call
an LLM grandchild (``proposer L1.0``, ``debater D2.1``, ``evaluator V1.0.2``). Spans span the trace's
own times. A call's span is the endpoint's work, as moa_lab's timeline draws it and ``Call.latency``
counts it: from when the endpoint began serving it (``served_at``, else ``sent_at``; a cache hit's
``started_at``) to ``ended_at``, with a ``first token`` event for a streamed call; the wait before it
(for a slot, the model, failed attempts) is ``moa_lab.queued``. A level spans from its first call's
start (``started_at``, waits included) to its last call's end, the run from its creation to its end.
A run imported from a log that records no times (the ToT paper's) keeps the import's clock, every
call an instant in the log's order, and says so (``moa_lab.times_recorded``). Each edge u -> v
becomes a link on v's span to u's; a replayed call also links to the call it stands for in the
parent run's trace.

Invariant: span ids are derived from the run id and the node id (trace ids from the run id), so a
link can point at any call whatever the order, re-exporting a run repeats every id (a backend that
keeps spans by id, as Phoenix does, holds one copy), and a replay can name its parent's spans. No
span holds a secret: no key, no key variable's name, no URL user info, query or fragment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from openinference.semconv.resource import ResourceAttributes
from openinference.semconv.trace import (
    MessageAttributes,
    OpenInferenceLLMProviderValues,
    OpenInferenceLLMSystemValues,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry import trace as otel
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from moa_lab._errors import MoaLabError
from moa_lab._otel import OtelExport, scrub_url
from moa_lab._otel._exporters import Checked, JsonLines
from moa_lab._trace import Call, Trace, Usage

__all__ = ["send"]

_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_CHAIN = OpenInferenceSpanKindValues.CHAIN.value
_LLM = OpenInferenceSpanKindValues.LLM.value
_JSON = OpenInferenceMimeTypeValues.JSON.value
_TEXT = OpenInferenceMimeTypeValues.TEXT.value
_SAMPLED = otel.TraceFlags(otel.TraceFlags.SAMPLED)
# A trace is a finished record, not live traffic: OTEL_* limits set for live tracing must not cut it
# (the default cap of 128 attributes would drop most of a long chat's messages).
_NO_LIMITS = SpanLimits(
    max_attributes=SpanLimits.UNSET,
    max_span_attributes=SpanLimits.UNSET,
    max_links=SpanLimits.UNSET,
    max_attribute_length=SpanLimits.UNSET,
    max_span_attribute_length=SpanLimits.UNSET,
)
#: A strategy's name in span names, and its word for one level of its DAG (as the views say it).
_WORDS = {"moa": ("MoA", "layer"), "debate": ("debate", "round"), "tot": ("Tree of Thoughts", "step")}
#: Hosts of OpenAI-compatible APIs whose provider OpenInference names.
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


def send(
    trace: Trace,
    *,
    endpoint: str | None,
    out: str | Path | IO[str] | None,
    exporter: SpanExporter | None,
    headers: Mapping[str, str] | None,
    project: str | None,
    timeout: float,
) -> OtelExport:
    """Export the trace's spans to the one destination given (``moa_lab._otel.export`` checked it)."""
    if endpoint is not None:
        destination = scrub_url(endpoint)
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout)
    elif out is not None:
        destination = str(
            out if isinstance(out, (str, Path)) else getattr(out, "name", type(out).__name__)
        )
        exporter = JsonLines(out)
    else:
        destination = type(exporter).__name__
    checked = Checked(exporter)
    attrs = trace.graph.graph
    calls = trace.records()
    levels: dict[int, list[Call]] = {}
    for call in calls:
        levels.setdefault(call.layer, []).append(call)
    spans = 1 + len(levels) + len(calls)
    resource = {"service.name": "moa_lab", "service.version": attrs.get("moa_lab_version") or ""}
    if project:
        resource[ResourceAttributes.PROJECT_NAME] = project
    ids = _DerivedIds(trace.run_id)
    provider = TracerProvider(
        resource=Resource.create(resource), id_generator=ids, sampler=ALWAYS_ON, span_limits=_NO_LIMITS
    )
    # The queue holds the whole trace, so the processor never drops a span of a large run.
    provider.add_span_processor(BatchSpanProcessor(checked, max_queue_size=max(2048, spans)))
    tracer = provider.get_tracer("moa_lab", attrs.get("moa_lab_version"))
    try:
        label, word = _WORDS.get(trace.config.get("strategy") or "moa", (None, "depth"))
        root = _root_span(trace, tracer, ids, label or str(trace.config.get("name", "custom")))
        for layer, mine in levels.items():
            aggregating = all(call.role == "aggregator" for call in mine)
            ids.next = f"level:{layer}"
            level = tracer.start_span(
                f"{word} {layer}" + (" (aggregator)" if aggregating else ""),
                context=otel.set_span_in_context(root),
                start_time=_ns(min(call.started_at for call in mine)),
                attributes={
                    _KIND: _CHAIN,
                    "moa_lab.layer": layer,
                    "moa_lab.calls": [c.id for c in mine],
                },
            )
            for call in mine:
                _call_span(trace, call, tracer, ids, otel.set_span_in_context(level))
            level.end(end_time=_ns(max(_ended(call) for call in mine)))
        finished = attrs.get("finished_at") or attrs["created_at"]
        root.end(end_time=_ns(max([finished, *(_ended(call) for call in calls)])))
        flushed = provider.force_flush(timeout_millis=int((timeout + 5) * 1000))
    finally:
        provider.shutdown()
    written = getattr(exporter, "error", None)  # JsonLines: why the file could not be written
    if not flushed or checked.failed or checked.exported < spans or written:
        listening = "; is an OTLP/HTTP receiver (Phoenix, a collector) listening there?"
        raise MoaLabError(
            f"could not export the trace's spans to {destination} ({checked.exported} of {spans} "
            f"accepted{': ' + written if written else ''}){listening if endpoint else ''}"
        )
    return OtelExport(
        trace_id=otel.format_trace_id(_trace_id(trace.run_id)),
        spans=spans,
        calls=len(calls),
        links=trace.graph.number_of_edges(),
        destination=destination,
    )


def _root_span(trace: Trace, tracer: otel.Tracer, ids: _DerivedIds, label: str) -> otel.Span:
    """Start the run's span: the prompt in, the final answer out, what made the run in metadata."""
    attrs = trace.graph.graph
    lineage = attrs.get("lineage") or []
    metadata = {
        "strategy": trace.config.get("strategy") or "moa",
        "config": _public(trace.config),
        **{key: attrs[key] for key in ("decision", "imported", "edits") if attrs.get(key)},
    }
    attributes: dict[str, Any] = {
        _KIND: _CHAIN,
        SpanAttributes.INPUT_VALUE: trace.prompt,
        SpanAttributes.INPUT_MIME_TYPE: _TEXT,
        SpanAttributes.METADATA: json.dumps(metadata, ensure_ascii=False),
        # A run and its replays share a session: the original run's id.
        SpanAttributes.SESSION_ID: lineage[-1]["run_id"] if lineage else trace.run_id,
        "moa_lab.run_id": trace.run_id,
        "moa_lab.status": trace.status,
        "moa_lab.layers": trace.layers,
        "moa_lab.times_recorded": not attrs.get("imported"),
    }
    if trace.final is not None:
        attributes[SpanAttributes.OUTPUT_VALUE] = trace.final
        attributes[SpanAttributes.OUTPUT_MIME_TYPE] = _TEXT
    if attrs.get("outputs"):
        attributes["moa_lab.outputs"] = list(attrs["outputs"])
    if trace.parent_run_id:
        attributes["moa_lab.parent_run_id"] = trace.parent_run_id
    started = min([attrs["created_at"], *(call.started_at for call in trace.records())])
    ids.next = "run"
    kind = "replay" if trace.parent_run_id else "run"
    span = tracer.start_span(f"{label} {kind}", start_time=_ns(started), attributes=attributes)
    if trace.status == "complete":
        span.set_status(otel.Status(otel.StatusCode.OK))
    elif trace.status == "failed":
        failed = next((call for call in trace.records() if call.error), None)
        why = f": {_scrub_text(failed.error, failed.base_url)}" if failed else ""
        span.set_status(otel.Status(otel.StatusCode.ERROR, f"the run failed{why}"))
    return span


def _call_span(
    trace: Trace, call: Call, tracer: otel.Tracer, ids: _DerivedIds, context: otel.Context
) -> None:
    """Record one call as an LLM span, linked to the calls it read (and, in a replay, its origin)."""
    edges = sorted((position, u) for u, _, position in trace.graph.in_edges(call.id, data="position"))
    links = [
        otel.Link(_context(trace.run_id, u), {"moa_lab.relation": "read", "moa_lab.position": position})
        for position, u in edges
    ]
    if trace.parent_run_id and call.origin:
        links.append(
            otel.Link(_context(trace.parent_run_id, call.origin), {"moa_lab.relation": "replays"})
        )
    ids.next = f"call:{call.id}"
    span = tracer.start_span(
        f"{call.role} {call.id}",
        context=context,
        start_time=_ns(_begun(call)),
        attributes=_call_attributes(call, [u for _, u in edges]),
        links=links,
    )
    if call.ttft is not None:
        span.add_event("first token", timestamp=_ns(_begun(call) + call.ttft))
    if call.error:
        message = _scrub_text(call.error, call.base_url)
        span.add_event(
            "exception",
            {"exception.type": "moa_lab.CallError", "exception.message": message},
            timestamp=_ns(_ended(call)),
        )
        span.set_status(otel.Status(otel.StatusCode.ERROR, message))
    elif call.ok:
        span.set_status(otel.Status(otel.StatusCode.OK))
    span.end(end_time=_ns(_ended(call)))


def _call_attributes(call: Call, read: list[str]) -> dict[str, Any]:
    """OpenInference LLM attributes of one call, and what moa_lab knows beside (cache, lineage)."""
    attributes: dict[str, Any] = {
        _KIND: _LLM,
        # Every call goes through the openai client, the product llm.system names (openinference's
        # own OpenAI instrumentor sets it the same way whatever the host).
        SpanAttributes.LLM_SYSTEM: OpenInferenceLLMSystemValues.OPENAI.value,
        SpanAttributes.LLM_MODEL_NAME: call.model,
        SpanAttributes.LLM_REQUEST_MODEL_NAME: call.model,
        SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(dict(call.params), sort_keys=True),
        SpanAttributes.INPUT_VALUE: json.dumps([dict(m) for m in call.messages], ensure_ascii=False),
        SpanAttributes.INPUT_MIME_TYPE: _JSON,
        "moa_lab.node": call.id,
        "moa_lab.role": call.role,
        "moa_lab.layer": call.layer,
        "moa_lab.index": call.index,
        "moa_lab.cache_hit": call.cache_hit,
        "moa_lab.references": read,
        "moa_lab.base_url": scrub_url(call.base_url),
    }
    provider = _PROVIDERS.get(urlsplit(call.base_url).hostname or "")
    if provider is not None:
        attributes[SpanAttributes.LLM_PROVIDER] = provider.value
    for number, message in enumerate(call.messages):
        prefix = f"{SpanAttributes.LLM_INPUT_MESSAGES}.{number}."
        attributes[prefix + MessageAttributes.MESSAGE_ROLE] = message["role"]
        attributes[prefix + MessageAttributes.MESSAGE_CONTENT] = message["content"]
    if call.response is not None:
        prefix = f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0."
        attributes[prefix + MessageAttributes.MESSAGE_ROLE] = "assistant"
        attributes[prefix + MessageAttributes.MESSAGE_CONTENT] = call.response
        attributes[SpanAttributes.OUTPUT_VALUE] = call.response
        attributes[SpanAttributes.OUTPUT_MIME_TYPE] = _TEXT
    usage = call.usage or Usage()
    counts = {
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: usage.prompt_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: usage.completion_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_TOTAL: usage.total_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING: usage.reasoning_tokens,
        SpanAttributes.LLM_COST_TOTAL: call.cost,
    }
    if call.cache_hit:
        # Nothing was sent: as in moa_lab's own totals the usage and cost are saved, not spent, so a
        # backend that sums llm.token_count and llm.cost does not bill a cache hit twice.
        counts = {key.replace("llm.", "moa_lab.saved.", 1): value for key, value in counts.items()}
    _put(attributes, counts)
    _put(
        attributes,
        {
            SpanAttributes.LLM_FINISH_REASON: call.finish_reason,
            SpanAttributes.LLM_RESPONSE_MODEL_NAME: call.served_model,
            SpanAttributes.METADATA: (
                json.dumps(call.annotations, ensure_ascii=False) if call.annotations else None
            ),
            "moa_lab.reasoning": call.reasoning,
            "moa_lab.latency": call.latency,
            "moa_lab.ttft": call.ttft,
            "moa_lab.token_rate": call.token_rate,
            "moa_lab.queued": call.queued,
            "moa_lab.attempts": call.attempts,
            "moa_lab.lineage": call.lineage,
            "moa_lab.origin": call.origin,
            "moa_lab.picked": call.picked,
            "moa_lab.retried_errors": [_scrub_text(e, call.base_url) for e in call.retried_errors],
            "moa_lab.retry_waits": list(call.retry_waits),
            "moa_lab.warnings": list(call.warnings),
            **{f"moa_lab.timings.{key}": value for key, value in (call.timings or {}).items()},
        },
    )
    return attributes


def _begun(call: Call) -> float:
    """When the endpoint began the call's work: served, else sent, else (nothing sent) started."""
    if call.served_at is not None:
        return call.served_at
    return call.sent_at if call.sent_at is not None else call.started_at


def _put(attributes: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Set the values that are known and not empty: OpenTelemetry attributes cannot be None."""
    attributes.update({key: value for key, value in values.items() if value not in (None, [])})


def _public(value: Any) -> Any:
    """Config data fit for a span: URLs without credentials, no key variable names."""
    if isinstance(value, Mapping):
        return {
            key: scrub_url(item) if key == "base_url" and isinstance(item, str) else _public(item)
            for key, item in value.items()
            if key != "api_key_env"
        }
    if isinstance(value, list):
        return [_public(item) for item in value]
    return value


def _ended(call: Call) -> float:
    """When a call ended (a call recorded without an end is taken to end where it began)."""
    return call.ended_at if call.ended_at is not None else _begun(call)


def _ns(seconds: float) -> int:
    """Unix seconds to the nanoseconds OpenTelemetry takes."""
    return round(seconds * 1_000_000_000)


def _scrub_text(text: str, url: str) -> str:
    """An error message with the call's URL scrubbed wherever the message quotes it."""
    return text.replace(url, scrub_url(url))


def _bits(text: str, bits: int) -> int:
    """A nonzero id of ``bits`` bits from a SHA-256 of ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: bits // 8], "big") or 1


def _trace_id(run_id: str) -> int:
    return _bits(f"moa_lab.trace:{run_id}", 128)


def _span_id(run_id: str, key: str) -> int:
    return _bits(f"moa_lab.span:{run_id}:{key}", 64)


def _context(run_id: str, node: str) -> otel.SpanContext:
    """The span context of call ``node`` of run ``run_id``, known before (or without) its span."""
    return otel.SpanContext(
        _trace_id(run_id), _span_id(run_id, f"call:{node}"), is_remote=False, trace_flags=_SAMPLED
    )


class _DerivedIds(IdGenerator):
    """Ids from the run id and the key of the span about to start (``next``): ``run``,
    ``level:<layer>`` or ``call:<node id>``."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.next = "run"

    def generate_trace_id(self) -> int:
        """The run's trace id."""
        return _trace_id(self.run_id)

    def generate_span_id(self) -> int:
        """The id of the span named by ``next``."""
        return _span_id(self.run_id, self.next)
