"""Safe outputs, shared by every command that writes files.

- Atomic: each output is written under a temporary name of its own beside the
  final one and renamed when complete, so a reader never sees a half-written
  file, and two runs to one output never write into each other's file.
- No surprise: a finished output is only replaced when the caller says so
  (`overwrite`); otherwise the rename refuses to clobber, even a file another
  run finished in the meantime.
- Never an input, never the package: outputs are compared with the inputs as
  resolved real paths (and as files, for hard links), and nothing is ever
  written inside the installed package, where the shipped weights live.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


class OutputError(ValueError):
    """An output that must not or cannot be written; the message is one line for the user."""


@lru_cache(maxsize=1)
def package_dirs() -> tuple[Path, ...]:
    """The folders the installed package lives in (in an editable install, the repository's package folders)."""
    import colorstream
    import colorstream.model
    import colorstream.stream
    import colorstream.training

    return tuple(Path(module.__file__).resolve().parent
                 for module in (colorstream, colorstream.model, colorstream.stream, colorstream.training))


def inside_package(path: Path) -> bool:
    resolved = Path(os.path.realpath(path))
    return any(resolved == folder or folder in resolved.parents for folder in package_dirs())


def refuse_package_path(path: Path) -> None:
    if inside_package(path):
        raise OutputError(f"{path}: is inside the installed colorstream package; nothing is ever written there "
                          "(write it elsewhere)")


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:  # does not exist (yet), or cannot be looked at
        return None
    return status.st_dev, status.st_ino


def refuse_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    """An output that is one of the inputs would destroy it: refused before any work.

    Two paths name one file when they have the same real path (symlinks, ./, ..) or the same inode (hard
    links). Both are looked up rather than compared in pairs, so a folder of 50,000 inputs takes seconds.
    """
    by_real = {os.path.realpath(source): source for source in inputs}
    by_id = {key: source for source in inputs if (key := _file_id(source)) is not None}
    for output in outputs:
        source = by_real.get(os.path.realpath(output)) or by_id.get(_file_id(output))
        if source is not None:
            raise OutputError(f"{output}: is the input {source}; refusing to overwrite an input "
                              "(choose another output)")


def refuse_existing(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if not overwrite and os.path.lexists(path):
        raise OutputError(f"{path}: already exists; not replaced (pass {flag} to replace it)")


def ensure_writable_dir(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be made in it (root ignores permission bits, so ask the OS)."""
    refuse_package_path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"{folder}: cannot write there ({error.strerror or error})") from None


def check_report_path(path: Path, taken: list[Path]) -> None:
    """A report (JSON, Markdown) must be writable, and must not be an input or another output. It replaces an
    earlier report, but never a file of another kind that it was named over by mistake (a clip, a photo)."""
    refuse_package_path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, not a file name")
    refuse_inputs([path], taken)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: its folder {path.parent} does not exist")
    if path.is_file() and not _is_text(path):
        raise OutputError(f"{path}: already exists and is not a text report; not replaced (choose another name)")
    ensure_writable_dir(path.parent)


def _is_text(path: Path, probe: int = 65536) -> bool:
    """Whether a file starts as UTF-8 text without NUL bytes, as reports do and media and checkpoints do not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(probe)
    except OSError:
        return True  # not readable: the write itself will say what is wrong
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return len(head) == probe and error.start >= probe - 3  # a character cut by the probe's end
    return True


@contextmanager
def held_folder(folder: Path, busy: str) -> Iterator[None]:
    """Make `folder` if needed and hold it for the block, so that a second run which needs it stops at once
    with `busy` instead of writing into the same files; a folder made here and left empty is removed."""
    made = not folder.exists()
    ensure_writable_dir(folder)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(busy) from None
        yield
    finally:
        os.close(handle)  # which releases the lock
        if made:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run's own output
                pass


def temporary_sibling(path: Path) -> Path:
    """A new, empty, uniquely named hidden file beside `path`, with its suffix (muxers go by the extension)."""
    refuse_package_path(path)
    handle, name = tempfile.mkstemp(prefix=_partial_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes files private; outputs get the usual mode
    return Path(name)


def _partial_prefix(path: Path) -> str:
    return f".{path.stem}.partial-"


def temporary_folder(path: Path) -> Path:
    """A new hidden folder beside `path` for the pieces it is made from (a long video's segments)."""
    refuse_package_path(path)
    return Path(tempfile.mkdtemp(prefix=f".{path.stem}.parts-", dir=path.parent))


def remove_partials(paths: list[Path]) -> int:
    """Remove what killed writers of `paths` left beside them (temporary files, folders of pieces); how many.

    Only for a caller that knows no writer of these paths is still running (a batch holding its journal's
    lock): a process killed outright (SIGKILL, a lost node) cannot remove its own. One listing per folder.
    """
    by_folder: dict[Path, list[re.Pattern]] = {}
    random = r"[a-z0-9_]{8}"  # what mkstemp and mkdtemp put in a name
    for path in paths:
        by_folder.setdefault(path.parent, []).extend([
            re.compile(re.escape(_partial_prefix(path)) + random + re.escape(path.suffix)),
            re.compile(re.escape(f".{path.stem}.parts-") + random)])
    removed = 0
    for folder, patterns in by_folder.items():
        try:
            entries = [entry for entry in os.scandir(folder) if entry.name.startswith(".")]
        except OSError:  # the folder is gone, or was never made
            continue
        for entry in entries:
            if any(pattern.fullmatch(entry.name) for pattern in patterns):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def finish(partial: Path, path: Path, overwrite: bool = True) -> None:
    """Move a complete temporary file to its final name; without `overwrite`, never replace a file found there."""
    try:
        if overwrite:
            os.replace(partial, path)
            return
        try:
            os.link(partial, path)  # fails if `path` exists, atomically: another run may have just finished it
        except FileExistsError:
            raise OutputError(f"{path}: appeared while this run was writing it (another run?); not replaced "
                              "(pass --overwrite to replace it)") from None
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            refuse_existing(path, overwrite=False)  # a file system without hard links: check, then rename
            os.replace(partial, path)
            return
        partial.unlink()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    partial = temporary_sibling(path)
    try:
        partial.write_bytes(data)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finish(partial, path, overwrite)


def write_image_atomic(path: Path, image: np.ndarray, overwrite: bool = True) -> None:
    """Encode by the file's extension (PNG if it has none) and write atomically."""
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"{path}: cannot encode an image as {path.suffix or '.png'}")
    write_bytes_atomic(path, encoded.tobytes(), overwrite)
