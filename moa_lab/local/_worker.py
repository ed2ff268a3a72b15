"""One long-lived thread per model that loads it and runs every llama.cpp call on it.

Why one thread: llama.cpp (built with OpenMP) keeps a team of compute threads for each thread that
calls it, and a team that just finished spins for a while before it sleeps. When each call ran on the
HTTP connection's thread that received it, two teams soon shared 2 cores and decoding fell from about
27 to about 20 tokens/s. The HTTP threads now hand each call to the model's worker and wait.

Invariants: everything that touches a model (its load, every call, its close) runs on that model's
worker thread, one job at a time, in the order the jobs arrived; the model is loaded by the first job
and kept until ``close``. A load that fails is not tried again: every job gets the same error. The
thread is a daemon, so a process that exits (after Ctrl-C, say) never waits for it: ``close`` (run at
exit) raises ``closing`` so a job in progress can stop at its next token, then releases the model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["ModelWorker", "Wait", "WorkerClosed"]

T = TypeVar("T")
M = TypeVar("M")


class WorkerClosed(Exception):
    """The model's worker is closing (the process is exiting): the job did not run, or stopped."""


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
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._name = name
        self._lock = threading.Lock()
        self.closing = threading.Event()
        """Set by ``close``: a job in progress should stop at its next token."""

    def run(self, job: Callable[[M, Wait], T]) -> T:
        """Run ``job`` on the worker thread once the jobs before it are done; wait for its result."""
        return self.submit(job).result()

    def submit(self, job: Callable[[M, Wait], T]) -> Future[T]:
        """Queue ``job`` to run on the worker thread once the jobs before it are done."""
        if self.closing.is_set():
            raise WorkerClosed(f"the local model {self._name} is shutting down")
        arrived = time.perf_counter()
        return self._submit(lambda: self._run(job, arrived))

    def _submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._thread is None:  # started by the first job, kept for the process's life
                self._thread = threading.Thread(
                    target=self._serve, name=f"moa-lab-model-{self._name}", daemon=True
                )
                self._thread.start()
            self._jobs.put((call, future))
        return future

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            call, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)

    def _run(self, job: Callable[[M, Wait], T], arrived: float) -> T:
        if self.closing.is_set():
            raise WorkerClosed(f"the local model {self._name} is shutting down")
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
        """Ask the job in progress to stop, release the model on the worker thread, and end it."""
        if self.closing.is_set():
            return
        self.closing.set()
        if self._thread is not None:
            self._submit(self._close).result()
            self._jobs.put(None)
            self._thread.join()

    def _close(self) -> None:
        if self._model is not None:
            self._release(self._model)
            self._model = None
