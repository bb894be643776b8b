"""The run journal: what each input of an output folder became, so a rerun can skip what is done (`--resume`).

It is a JSON-lines file in the output folder, `colorstream-journal.jsonl`, only ever appended to: one
record per line, written with a single `write` on a file opened for appending and flushed to disk, so a
crash can at worst tear the last line, which reading skips (and the next run starts on a new line). A
record says where an input went (`output`, relative to the folder) and its state:

- "started": the batch began this input; with no later record, it was in flight when a run stopped;
- "done": with the input's path, size and modification time, the settings and models that decide the
  output (`settings`), the output's size and frame count, and the time taken;
- "failed": with the error.

The last record of an output is what counts. One run at a time keeps a folder's journal: a second run
on the same folder is refused while the first holds the journal's lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from colorstream.files import OutputError

NAME = "colorstream-journal.jsonl"


def identity(path: Path) -> dict:
    """What tells an input apart from an edited or replaced one, cheaply: its real path, size and mtime."""
    status = path.stat()
    return {"input": os.path.realpath(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def read(path: Path) -> dict[str, dict]:
    """The last record of each output; lines that do not parse (a line torn by a crash) are skipped."""
    records: dict[str, dict] = {}
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return records
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("output"), str):
            records[record["output"]] = record
    return records


class Journal:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / NAME
        self.records = read(self.path)
        self._fd: int | None = None

    def key(self, target: Path) -> str:
        return target.relative_to(self.folder).as_posix()

    def last(self, target: Path) -> dict | None:
        return self.records.get(self.key(target))

    def finished(self, source: Path, target: Path, settings: dict) -> bool:
        """Whether `target` is complete and was made from this very input with these settings and models."""
        record = self.last(target)
        if record is None or record.get("state") != "done" or record.get("settings") != settings:
            return False
        try:
            same_input = all(record.get(name) == value for name, value in identity(source).items())
            return same_input and target.stat().st_size == record.get("output_size")
        except OSError:  # the input or the output is gone
            return False

    def made_here(self, target: Path) -> bool:
        """Whether an existing `target` is this journal's own work, which `--resume` may redo: finished as
        recorded, or in flight when a run stopped (a final name appears only once the file is whole)."""
        record = self.last(target)
        if record is None:
            return False
        if record.get("state") == "started":
            return True
        try:
            return record.get("state") == "done" and target.stat().st_size == record.get("output_size")
        except OSError:
            return False

    def in_flight(self) -> list[Path]:
        """The outputs a stopped run left started and unfinished: their temporary files may be lying about."""
        return [self.folder / key for key, record in self.records.items() if record.get("state") == "started"]

    def open(self) -> None:
        """Open for appending and take the lock; a run already holding it is a one-line error."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{self.folder}: another colorstream run is working in this folder (its journal "
                              f"{NAME} is locked); wait for it, or choose another output folder") from None
        self._fd = fd
        if self.path.stat().st_size:  # a torn last line stays alone on its line
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    os.write(fd, b"\n")

    def append(self, target: Path, state: str, **fields) -> None:
        record = {"output": self.key(target), "state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  **fields}
        try:
            os.write(self._fd, (json.dumps(record) + "\n").encode())
            os.fsync(self._fd)
        except OSError as error:  # a full disk: the run cannot keep its record, so it stops, saying where
            raise OutputError(f"{self.path}: cannot write the run's journal ({error.strerror or error})") from None
        self.records[record["output"]] = record

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # which releases the lock
            self._fd = None
