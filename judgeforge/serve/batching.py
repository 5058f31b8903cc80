"""Batching across clients, without HTTP: jobs in, batches through ``run``, results out.

A :class:`Job` is the items of one request.  :class:`Batcher` keeps a queue of their items
and ``workers`` threads; each takes up to ``max_batch`` queued items (from any number of
jobs), calls ``run(items) -> results`` once and hands every job its own results.  Several
workers keep several batches in flight (a remote backend waits on the network, not on a
chip).  When a batch fails, it is split in halves and each half tried again, so a bad
item fails its own job only; the items of other jobs in that batch still get results.

Refusals and failures are :class:`BatchError` (``kind``: busy, closed, abandoned, failed,
timeout, refused); the HTTP layer turns them into status codes.  ``refused`` is an item the
judge refused as the client's mistake (:class:`~judgeforge.errors.InputRefused`, e.g. a prompt over
its context: :class:`~judgeforge.errors.PromptTooLong`), not a fault of the server.
"""

from __future__ import annotations

import collections
import threading
import time

from judgeforge.errors import InputRefused


class BatchError(Exception):
    """Why a job got no results.  ``kind``: busy | closed | abandoned | failed | timeout | refused."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Job:
    """The items of one request, waiting for a worker."""

    def __init__(self, items: list):
        self.items = items
        self.results: list = [None] * len(items)
        self.remaining = len(items)
        self.error: BatchError | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def set(self, i: int, result) -> None:
        with self._lock:
            self.results[i] = result
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()

    def fail(self, error: BatchError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            self.done.set()


class Batcher:
    """``workers`` threads draining queued items into batches of at most ``max_batch``.

    Counters (batches, items answered, failed items, retried batches, largest batch, a
    histogram of batch sizes, batches in flight) are exposed for /health and the tests.
    """

    def __init__(self, run, *, max_batch: int = 16, max_queue: int = 4096, wait_s: float = 0.005,
                 workers: int = 1):
        self.run = run
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.wait_s = wait_s
        self._pending: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._abort = False
        self.batches = 0
        self.items = 0
        self.failed_items = 0
        self.retried_batches = 0
        self.max_batch_seen = 0
        self.in_flight = 0
        self.sizes: collections.Counter = collections.Counter()
        self._threads = [threading.Thread(target=self._loop, name=f"judge-batcher-{k}", daemon=True)
                         for k in range(max(1, workers))]

    @property
    def workers(self) -> int:
        return len(self._threads)

    def start(self) -> Batcher:
        for t in self._threads:
            if not t.is_alive() and t.ident is None:
                t.start()
        return self

    @property
    def started(self) -> bool:
        return all(t.ident is not None for t in self._threads)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, items: list) -> Job:
        job = Job(items)
        if not items:
            job.done.set()
            return job
        with self._cv:
            if self._closed:
                raise BatchError("closed", "the server is shutting down; retry against a running server")
            if len(self._pending) + len(items) > self.max_queue:
                raise BatchError("busy", f"the server is busy ({len(self._pending)} items queued, limit "
                                         f"{self.max_queue}); retry later")
            self._pending.extend((job, i) for i in range(len(items)))
            self._cv.notify()
        return job

    def _take(self) -> list | None:
        with self._cv:
            while not self._pending:
                if self._closed:
                    return None
                self._cv.wait()
            if self._abort:
                return None
            if len(self._pending) < self.max_batch and self.wait_s > 0 and not self._closed:
                deadline = time.monotonic() + self.wait_s
                while len(self._pending) < self.max_batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            n = min(self.max_batch, len(self._pending))
            if n == 0:  # another worker took them while this one waited
                return []
            taken = [self._pending.popleft() for _ in range(n)]
            self.in_flight += 1
            if self._pending:  # more than one batch queued: wake another worker for the rest
                self._cv.notify()
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            if not taken:
                continue
            try:
                self._run_isolated([(job, i) for job, i in taken if job.error is None])
            finally:
                with self._cv:
                    self.batches += 1
                    self.max_batch_seen = max(self.max_batch_seen, len(taken))
                    self.sizes[len(taken)] += 1
                    self.in_flight -= 1
                    self._cv.notify_all()

    def _run_isolated(self, live: list) -> None:
        """Run a batch; on failure, halve it and retry, until the failing items stand alone."""
        live = [(job, i) for job, i in live if job.error is None]  # a job failed meanwhile: skip the rest
        if not live:
            return
        try:
            results = self.run([job.items[i] for job, i in live])
            if len(results) != len(live):
                raise RuntimeError(f"the judge returned {len(results)} results for {len(live)} items")
        except Exception as e:  # noqa: BLE001 - any judge failure is reported to its own client
            if len(live) > 1:
                with self._cv:
                    self.retried_batches += 1
                half = len(live) // 2
                self._run_isolated(live[:half])
                self._run_isolated(live[half:])
                return
            job, i = live[0]
            with self._cv:
                self.failed_items += 1
            if isinstance(e, InputRefused):  # the client's item, named by its place in the request
                job.fail(BatchError("refused", f"items[{i}]: {e.detail}"))
                return
            first = (str(e).strip().splitlines() or [""])[0][:300]
            job.fail(BatchError("failed", f"the judge failed on items[{i}] of this request: "
                                          f"{type(e).__name__}: {first}"))
            return
        for (job, i), result in zip(live, results):
            job.set(i, result)
        with self._cv:
            self.items += len(live)

    def close(self, drain_timeout: float = 30.0) -> int:
        """Refuse new work; queued work may finish for ``drain_timeout`` s, then the rest is
        abandoned (503).  Batches already running are always waited for: the judge is never
        closed under a worker.  Returns the number of items abandoned."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        deadline = time.monotonic() + max(0.0, drain_timeout)
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
        abandoned = 0
        with self._cv:
            self._abort = True
            while self._pending:
                job, _ = self._pending.popleft()
                job.fail(BatchError("abandoned", "the server shut down before this request was graded"))
                abandoned += 1
            self._cv.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join()  # the batch in flight finishes (bounded by its generation length)
        return abandoned

    def stats(self) -> dict:
        with self._cv:
            return {
                "queued": len(self._pending),
                "workers": len(self._threads),
                "in_flight": self.in_flight,
                "batches": self.batches,
                "items": self.items,
                "failed_items": self.failed_items,
                "retried_batches": self.retried_batches,
                "max_batch_seen": self.max_batch_seen,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            }
