"""One long-lived thread per model that loads it and runs every llama.cpp call on it.

Why one thread: llama.cpp (built with OpenMP) keeps a team of compute threads for each thread that
calls it, and a team that just finished spins for a while before it sleeps. When each call ran on the
HTTP connection's thread that received it, two teams soon shared 2 cores and decoding fell from about
27 to about 20 tokens/s. The HTTP threads now hand each call to the model's worker and wait.

Invariants: everything that touches a model (its load, every call, its close) runs on that model's
worker thread, one job at a time, in the order the jobs arrived; the model is loaded by the first job
and kept until ``close``. A load that fails is not tried again: every job gets the same error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["ModelWorker", "Wait"]

T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True)
class Wait:
    """What a job waited for before its model was free and loaded."""

    queued: float
    """Seconds from the job's arrival to the worker taking it up (other jobs ran meanwhile)."""
    load: float
    """Seconds this job spent loading the model (0 unless it was the model's first job)."""


class ModelWorker(Generic[M]):
    """Runs ``load()`` once, then each job as ``job(model, wait)``, then ``release(model)``: all on
    one thread."""

    def __init__(self, load: Callable[[], M], release: Callable[[M], Any], name: str):
        self._load = load
        self._release = release
        self._model: M | None = None
        self._failure: Exception | None = None
        self._closed = False
        # One worker thread, started by the first job and kept until shutdown.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"moa-lab-model-{name}")

    def run(self, job: Callable[[M, Wait], T]) -> T:
        """Run ``job`` on the worker thread once the jobs before it are done; wait for its result."""
        return self._executor.submit(self._run, job, time.perf_counter()).result()

    def _run(self, job: Callable[[M, Wait], T], arrived: float) -> T:
        taken = time.perf_counter()
        model, load = self._model, 0.0
        if model is None:
            if self._failure is None:
                try:
                    model = self._model = self._load()
                except Exception as exc:
                    self._failure = exc
            if model is None:
                raise self._failure  # type: ignore[misc]
            load = time.perf_counter() - taken
        return job(model, Wait(queued=taken - arrived, load=load))

    def close(self) -> None:
        """Let the jobs in flight finish, release the model on the worker thread, and stop it."""
        if not self._closed:
            self._closed = True
            self._executor.submit(self._close).result()
            self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._model is not None:
            self._release(self._model)
            self._model = None
