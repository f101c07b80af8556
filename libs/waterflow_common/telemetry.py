"""OpenTelemetry traces of runs, for Grafana (Tempo) or any OTLP backend.

One trace per run: a root span for the run, a child span per job (and per matrix / fan-out
instance), and a child span per step attempt, with the real start and end times. The scheduler
records a span when the thing it describes has finished, from the run's state.

Why deterministic ids: a run outlives any scheduler process, and its spans are written by
whichever scheduler handles the finishing event. Deriving the trace id from the run id and the
span ids from (run, job, step, attempt) makes the spans of one run link up no matter which
process wrote them, and makes a span re-written after a crash replace rather than duplicate.
"""

from __future__ import annotations

import contextvars
import hashlib
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .state import JobState, RunState, StepState

_next_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("waterflow_span_ids", default=None)


def _hash(*parts: object, size: int) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1


def trace_id_of(run_id: str) -> int:
    return _hash("trace", run_id, size=16)


def span_id_of(*parts: object) -> int:
    return _hash("span", *parts, size=8)


class _DeterministicIds(IdGenerator):
    """Hands out the ids set for the span being started; random ids otherwise."""

    _random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        ids = _next_ids.get()
        return ids[1] if ids else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        ids = _next_ids.get()
        return ids[0] if ids else self._random.generate_trace_id()


class JsonLinesExporter(SpanExporter):
    """Writes each span as one JSON line (``otel_file`` setting): for debugging and tests."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Any) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(span.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS


def _ns(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1e9)


class RunTracer:
    """Records finished runs, jobs and step attempts as spans (a no-op without an exporter)."""

    def __init__(self, exporter: SpanExporter | None, batch: bool = True) -> None:
        self.provider: TracerProvider | None = None
        if exporter is None:
            return
        self.provider = TracerProvider(resource=Resource.create({"service.name": "waterflow"}), id_generator=_DeterministicIds())
        self.provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("waterflow.scheduler")

    @classmethod
    def from_settings(cls, otel_endpoint: str | None, otel_file: str | None) -> RunTracer:
        if otel_file:
            return cls(JsonLinesExporter(otel_file), batch=False)
        if otel_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return cls(OTLPSpanExporter(endpoint=otel_endpoint.rstrip("/") + "/v1/traces"))
        return cls(None)

    def _span(self, run_id: str, span_id: int, parent_id: int | None, name: str, start: datetime | None,
              end: datetime | None, ok: bool, attributes: dict[str, Any]) -> None:
        if self.provider is None or start is None or end is None:
            return
        trace_id = trace_id_of(run_id)
        parent = None
        if parent_id is not None:
            parent = trace.set_span_in_context(NonRecordingSpan(
                SpanContext(trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            ))
        token = _next_ids.set((trace_id, span_id))
        try:
            span = self.tracer.start_span(name, context=parent, kind=SpanKind.INTERNAL, start_time=_ns(start),
                                          attributes={k: v for k, v in attributes.items() if v is not None})
        finally:
            _next_ids.reset(token)
        span.set_status(Status(StatusCode.OK if ok else StatusCode.ERROR))
        span.end(end_time=_ns(end))

    def step_finished(self, state: RunState, job: JobState, step: StepState) -> None:
        parent = span_id_of(state.run_id, job.id)
        self._span(state.run_id, span_id_of(state.run_id, job.id, step.index, step.attempt), parent,
                   f"step {step.name}", step.started_at or step.dispatched_at, step.finished_at,
                   step.status in ("succeeded", "skipped") or step.conclusion == "success", {
                       "waterflow.run_id": state.run_id, "waterflow.job": job.id, "waterflow.step": step.index,
                       "waterflow.attempt": step.attempt, "waterflow.agent": step.agent,
                       "waterflow.exit_code": step.exit_code, "waterflow.status": step.status,
                   })

    def job_finished(self, state: RunState, job: JobState) -> None:
        parent = span_id_of(state.run_id, job.parent) if job.parent else span_id_of(state.run_id)
        self._span(state.run_id, span_id_of(state.run_id, job.id), parent, f"job {job.name}", job.started_at,
                   job.finished_at, job.status in ("succeeded", "skipped"), {
                       "waterflow.run_id": state.run_id, "waterflow.job": job.id, "waterflow.group": job.runs_on,
                       "waterflow.status": job.status,
                   })

    def run_finished(self, state: RunState) -> None:
        self._span(state.run_id, span_id_of(state.run_id), None, f"run {state.workflow}", state.started_at,
                   state.finished_at, state.status == "succeeded", {
                       "waterflow.run_id": state.run_id, "waterflow.workflow": state.workflow,
                       "waterflow.status": state.status, "waterflow.attempt": state.attempt,
                   })

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


