"""Threads joined by bounded queues, after GStreamer's pipeline model.

A source thread feeds the first queue; each stage runs in its own thread,
reads a queue and writes the next; the caller consumes the last queue in its
own thread (so a window can live on the main thread). End of stream travels
as the `END` sentinel. File pipelines block when a queue is full (back
pressure, nothing dropped); live pipelines are leaky and drop the oldest item.
The first exception in any thread stops every thread and is raised in the
caller as a `PipelineError` naming the stage.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

END = object()  # end of stream
POLL_SECONDS = 0.05  # how often a blocked thread looks at the stop flag


class Stopped(Exception):
    """The pipeline is shutting down; the thread that sees this just returns."""


class PipelineError(RuntimeError):
    """A stage failed; the message names it and says why, on one line."""


class FrameQueue:
    """A bounded queue that either blocks (file mode) or drops its oldest item (live mode)."""

    def __init__(self, maxsize: int, leaky: bool, stop: threading.Event):
        self._queue: queue.Queue = queue.Queue(maxsize)
        self.leaky = leaky
        self.stop = stop
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self.leaky and item is not END:
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        while not self.stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise Stopped

    def get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        raise Stopped

    def get_nowait(self) -> Any | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None


@dataclass
class Stage:
    """One element: `process` maps a batch of items to the items it passes on.

    `batch` is how many items it takes at once (inference batches frames in
    file mode). A file pipeline waits for that many (fewer only at the end
    of the stream), so the batches, and the results, are the same on every
    run: the models' arithmetic differs a little with the batch size. A live
    pipeline takes only what is already waiting and never waits for more.
    """

    name: str
    process: Callable[[list], list]
    batch: int = 1


class Pipeline:
    def __init__(self, source: Iterable, stages: list[Stage], leaky: bool, queue_size: int = 4,
                 source_name: str = "capture"):
        self.source, self.stages, self.source_name, self.leaky = source, stages, source_name, leaky
        self.stop = threading.Event()
        self.queues = [FrameQueue(queue_size, leaky, self.stop) for _ in range(len(stages) + 1)]
        self.seconds = {source_name: 0.0, **{stage.name: 0.0 for stage in stages}}
        self.error: tuple[str, BaseException] | None = None
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in self.queues)

    def _fail(self, name: str, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = (name, error)
        self.stop.set()

    def _run_source(self) -> None:
        out = self.queues[0]
        try:
            iterator = iter(self.source)
            while not self.stop.is_set():  # a leaky put never blocks, so look here too
                started = time.perf_counter()
                item = next(iterator, END)
                self.seconds[self.source_name] += time.perf_counter() - started
                out.put(item)
                if item is END:
                    return
        except Stopped:
            return
        except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
            self._fail(self.source_name, error)

    def _run_stage(self, stage: Stage, inbox: FrameQueue, outbox: FrameQueue) -> None:
        try:
            ended = False
            while not ended:
                first = inbox.get()
                if first is END:
                    break
                batch = [first]
                while len(batch) < stage.batch:
                    item = inbox.get_nowait() if self.leaky else inbox.get()
                    if item is None:
                        break
                    if item is END:
                        ended = True
                        break
                    batch.append(item)
                started = time.perf_counter()
                results = stage.process(batch)
                self.seconds[stage.name] += time.perf_counter() - started
                for result in results:
                    outbox.put(result)
            outbox.put(END)
        except Stopped:
            return
        except BaseException as error:  # noqa: BLE001
            self._fail(stage.name, error)

    def run(self) -> Iterator:
        """Start the threads and yield what the last stage produces; raise PipelineError on failure.

        Closing the iterator early (the consumer stops, or Ctrl-C) stops every thread.
        """
        threads = [threading.Thread(target=self._run_source, name=self.source_name, daemon=True)]
        threads += [threading.Thread(target=self._run_stage, args=(stage, self.queues[i], self.queues[i + 1]),
                                     name=stage.name, daemon=True) for i, stage in enumerate(self.stages)]
        for thread in threads:
            thread.start()
        try:
            while True:
                try:
                    item = self.queues[-1].get()
                except Stopped:
                    break
                if item is END:
                    break
                yield item
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
        if self.error is not None:
            name, error = self.error
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PipelineError(f"{name} stage failed: {detail}") from error
