"""What `colorize` was given and where each input goes: files, and folders walked recursively and mirrored.

An image becomes an image and a video a video. With one input file and an output with an extension, the
output is that file; otherwise OUTPUT is a folder: a file named on the command line goes to
`OUTPUT/<its name>`, and a file found in a folder INPUT to `OUTPUT/<its path below INPUT>`. A folder walk
takes the files whose extension names a video or image format; the rest are listed as not media. Hidden
files and folders (a leading dot: system files, and the temporary files of a run) are passed over, and so
is the output folder when it lies inside an input folder, so a run never takes its own outputs for inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from colorstream.files import OutputError
from colorstream.imageops import IMAGE_SUFFIXES
from colorstream.stream.video_io import OUTPUT_CONTAINERS, VIDEO_SUFFIXES


@dataclass(frozen=True)
class Job:
    """One input and the output it becomes."""

    source: Path
    target: Path

    @property
    def is_image(self) -> bool:
        return self.source.suffix.lower() in IMAGE_SUFFIXES


@dataclass
class Collection:
    jobs: list[Job]
    out_dir: Path | None  # None: a single output file, and no journal
    not_media: list[Path] = field(default_factory=list)  # files found in folders that are neither video nor image
    failures: list[str] = field(default_factory=list)  # inputs that cannot be placed (two with one output name)


def collect(inputs: list[Path], output: str | Path, folder: bool = False) -> Collection:
    """Every input file, with where it goes; OUTPUT is a folder when `folder` says so, or as the module says.
    A usage mistake (an image into a video, OUTPUT an input folder) is an `OutputError`."""
    out = Path(output)
    folders = [source for source in inputs if source.is_dir()]
    single = len(inputs) == 1 and not folders and not out.is_dir() and not str(output).endswith(os.sep)
    if single and not folder:
        return Collection([Job(inputs[0], single_target(inputs[0], out))], None)
    for folder in folders:
        if os.path.realpath(folder) == os.path.realpath(out):
            raise OutputError(f"{out}: is the input folder {folder}; choose an output folder of its own")
    collection = Collection([], out)
    taken: dict[Path, Path] = {}
    for source in inputs:
        found = walk(source, out, collection.not_media) if source.is_dir() else [(source, Path(source.name))]
        for path, relative in found:
            target = out / relative.parent / (relative.stem + kept_suffix(relative))
            if target in taken:
                collection.failures.append(f"{path}: output {target} is already taken by {taken[target]}")
                continue
            taken[target] = path
            collection.jobs.append(Job(path, target))
    return collection


def single_target(source: Path, output: Path) -> Path:
    """A single output file: its extension must say image for an image and video for a video."""
    suffix = output.suffix.lower()
    if source.suffix.lower() in IMAGE_SUFFIXES and suffix not in IMAGE_SUFFIXES:
        raise OutputError(f"{output}: {source} is an image, so the output is one too: give it an image "
                          f"extension ({', '.join(IMAGE_SUFFIXES)})")
    if source.suffix.lower() not in IMAGE_SUFFIXES and suffix not in OUTPUT_CONTAINERS:
        raise OutputError(f"{output}: give the output video one of the extensions {', '.join(OUTPUT_CONTAINERS)}")
    return output


def kept_suffix(path: Path) -> str:
    """The output's extension: the input's where colorize writes that format, else Matroska (takes any audio)."""
    suffix = path.suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES or suffix in OUTPUT_CONTAINERS else ".mkv"


def walk(folder: Path, out_dir: Path, not_media: list[Path]) -> list[tuple[Path, Path]]:
    """(file, its path below `folder`) for every video and image below `folder`, in a stable order."""
    skip = os.path.realpath(out_dir)
    media = set(VIDEO_SUFFIXES) | set(IMAGE_SUFFIXES)
    found = []
    for root, dirs, names in os.walk(folder):  # symlinked folders are not followed: no loops, no escapes
        dirs[:] = sorted(name for name in dirs
                         if not name.startswith(".") and os.path.realpath(os.path.join(root, name)) != skip)
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() in media:
                found.append((path, path.relative_to(folder)))
            else:
                not_media.append(path)
    return found
