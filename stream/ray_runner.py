"""More than one machine: a batch's tasks on a Ray cluster (`--ray ADDRESS`, or `--ray local`).

Each worker is a Ray actor holding one loaded set of models (a `stream.workers.Worker`); the batch hands
one task at a time to an idle actor, so the files in flight are never more than the actors, as with local
workers. An actor whose process dies (killed, out of memory, its node lost) is restarted and its task run
again, up to `RETRIES` times: outputs are written under a temporary name and renamed when whole, so a
killed attempt leaves no output, only a temporary file that the batch removes when it ends.

Every node reads the inputs and writes the outputs by the paths the batch was given, so they must see
the same files under the same paths (a shared file system); each needs colorstream installed, with the
same bundled models or checkpoint files (a worker refuses to run with other ones).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import wait as wait_for

from colorstream.files import OutputError
from colorstream.stream.jobs import Models, Options
from colorstream.stream.workers import CORES_PER_FILE, Task, Worker, first_line

RETRIES = 3  # restarts of a dead actor, and runs of a task that died with it


def available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def unreachable(address: str) -> str | None:
    """Why a cluster's HOST:PORT takes no connection, or None (also for "local" and "auto", which Ray resolves)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    return None


def own_signal_handlers():
    """A function that puts back this process's signal handlers: Ray's driver replaces SIGTERM's with one that
    logs a stack and exits at once, and the batch must stop its workers and clean up first."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        return lambda: None
    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    saved = {name: signal.getsignal(getattr(signal, name)) for name in names}

    def restore() -> None:
        for name, handler in saved.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)

    return restore


class RayEngine:
    lost: tuple[type[BaseException], ...] = ()  # Ray itself retries a task whose actor died
    name = "ray"

    def __init__(self, address: str, workers: int | None, models: Models, options: Options,
                 fingerprints: dict[str, str]):
        if not available():
            raise OutputError("--ray needs the ray extra: pip install 'colorstream[ray]'")
        import ray

        self.ray = ray
        problem = unreachable(address)
        if problem:  # Ray itself would retry for minutes
            raise OutputError(f"cannot reach the Ray cluster at {address} ({problem})")
        handlers = own_signal_handlers()
        try:  # "local" starts a new Ray instance on this machine; an address joins a running cluster
            ray.init(address=address, num_cpus=os.cpu_count() if address == "local" else None,
                     include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise OutputError(f"cannot start or reach Ray at {address!r} ({first_line(error)})") from None
        finally:
            handlers()
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.slots = workers or max(1, cpus // CORES_PER_FILE)
        actor = ray.remote(num_cpus=min(1.0, cpus / self.slots), max_restarts=RETRIES, max_task_retries=RETRIES,
                           scheduling_strategy="SPREAD")(Worker)
        cores = max(1, cpus // self.slots)
        self.actors = [actor.remote(models, options, cores, fingerprints) for _ in range(self.slots)]
        self.idle = list(self.actors)
        self.busy: dict[Future, object] = {}

    def submit(self, task: Task) -> Future:
        for future in [future for future in self.busy if future.done()]:
            self.idle.append(self.busy.pop(future))
        actor = self.idle.pop()
        future = actor.run.remote(task).future()
        self.busy[future] = actor
        return future

    def close(self, abort: bool) -> None:
        """Stop the actors (any in flight too: `abort` or not, nothing is left for them to do), wait until
        they are gone, and leave the cluster."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        wait_for(list(self.busy), timeout=30)
        self.ray.shutdown()
