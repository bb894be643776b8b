"""A long video in segments: cut at scene cuts, colorized apart (in parallel), joined without re-encoding.

Every stage of the pipeline starts afresh at a scene cut (face tracks, smoothing, the scene colour), so a
segment that starts at one colours its frames exactly as a one-piece run does: nothing to blend, and no
jump in colour at a boundary. Each segment is its own encoder run, so it starts with a keyframe and the
join is a concatenation of packets (`video_io.PacketJoiner`), with the source's audio muxed in once.

Where the cuts are is found by the segments themselves, with no pass over the whole film first: segment k
of a film planned in spans of about S seconds starts at the first cut at or after k*S and ends at the
first cut at or after (k+1)*S. Segment k+1 finds the same cut as its start, so the segments tile the
film. A span with no cut in it is empty, and the segment before it runs on: a film is only split where it
cuts, and one without cuts is made in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av

from colorstream.stream.frames import Frame
from colorstream.stream.tracking import SceneCutDetector
from colorstream.stream.video_io import MediaError, PacketJoiner, VideoReader, ended_early

JOINABLE_CODECS = ("libx264", "libx265")  # encoders whose segments are known to join into one stream
# segments are written in a container that keeps every pts and dts exactly (Matroska rounds them to ms)
SEGMENT_CONTAINER = {".mp4": ".mp4", ".m4v": ".m4v", ".mov": ".mov", ".mkv": ".mp4"}


@dataclass(frozen=True)
class Span:
    """Which frames one segment colours, in the stream's time base: from the first scene cut at or after
    `start` (the first frame if None) to the first scene cut at or after `end` (the last frame if None)."""

    start: int | None
    end: int | None


def plan(source: Path, target: Path, seconds: float, codec: str) -> list[Span] | None:
    """Spans of about `seconds` each, or None for a video made in one piece: shorter than two spans, of
    unknown length or unreadable (the one-piece run then says why), or an output that cannot be joined."""
    if seconds <= 0 or codec not in JOINABLE_CODECS or target.suffix.lower() not in SEGMENT_CONTAINER:
        return None
    try:
        reader = VideoReader(source)
    except MediaError:
        return None
    try:
        duration, start, time_base = reader.stated_seconds, reader.stream.start_time or 0, reader.time_base
    finally:
        reader.close()
    count = int(duration // seconds) if duration else 0
    if count < 2:
        return None
    bounds = [start + round(k * seconds / time_base) for k in range(1, count)]
    return [Span(begin, end) for begin, end in zip([None, *bounds], [*bounds, None])]


def part_path(folder: Path, index: int, target: Path) -> Path:
    return folder / f"part-{index:05d}{SEGMENT_CONTAINER[target.suffix.lower()]}"


def span_frames(reader: VideoReader, span: Span) -> Iterator[Frame]:
    """The frames of `span`, decoded from the keyframe before its start; each frame is checked for a cut
    against the one before it, as the pipeline's own detector does."""
    if span.start is not None:
        reader.seek(span.start - 1)  # the frame before the start too: whether the start is a cut depends on it
    cuts = SceneCutDetector()
    inside = span.start is None
    for index, frame in enumerate(reader.frames()):
        if frame.pts is None or (index == 0 and not inside and frame.pts >= span.start):
            raise MediaError(f"{reader.path}: cannot be cut into segments (no usable timestamps to seek by); "
                             "colorize it without --segment-seconds")
        cut = cuts(frame.gray)
        if not inside:
            if span.end is not None and frame.pts >= span.end:
                return  # no cut in the span: the segment before runs on over it
            inside = cut and frame.pts >= span.start
        elif cut and span.end is not None and frame.pts >= span.end:
            return
        if inside:
            yield frame


def join(source: Path, target: Path, parts: list[Path], overwrite: bool = True) -> dict:
    """The segments' packets in order into `target`, with the source's rotation and all its audio."""
    reader = VideoReader(source)
    try:
        next(reader.frames(), None)  # the rotation is known once a frame is decoded
        rotation = reader.rotation
    finally:
        reader.close()
    present = [part for part in parts if part.exists()]  # an empty span writes nothing
    containers = []
    try:
        for part in present:
            containers.append(av.open(str(part)))
        streams = [container.streams.video[0] for container in containers]
        if any(stream.codec_context.extradata != streams[0].codec_context.extradata for stream in streams):
            raise MediaError(f"{target}: the segments were encoded differently and cannot be joined")
        with PacketJoiner(target, streams[0], rotation, source, overwrite) as joiner:
            for container, stream in zip(containers, streams):
                for packet in container.demux(stream):
                    if packet.dts is not None:  # not the demuxer's empty flush packet
                        joiner.write(packet)
    finally:
        for container in containers:
            container.close()
    return {"segments": len(present), "bad_packets": joiner.audio.bad_packets if joiner.audio is not None else 0}


def merge_reports(source: Path, target: Path, segments: list[dict], joined: dict, seconds: float) -> dict:
    """One file's report from its segments': the same fields as a one-piece run's."""
    made = [report for report in segments if report["frames"]]
    frames = sum(report["frames"] for report in made)
    stages = {name for report in made for name in report["ms_per_frame"]}
    per_frame = {name: round(sum(report["ms_per_frame"].get(name, 0.0) * report["frames"] for report in made)
                             / max(frames, 1), 2) for name in stages}
    first, last = made[0], made[-1]
    span = last["last_seconds"] - first["first_seconds"]
    covered = span * frames / (frames - 1) if frames > 1 else 0.0
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2) if seconds else 0.0,
            "ms_per_frame": per_frame, "dropped": sum(report["dropped"] for report in made),
            "frames_with_faces": sum(report["frames_with_faces"] for report in made),
            "bad_packets": sum(report["bad_packets"] for report in made) + joined["bad_packets"],
            "frames_expected": first["frames_expected"],
            "truncated": ended_early(frames, covered, first["frames_expected"], first["stated_seconds"]),
            "dropped_streams": first["dropped_streams"], "input": str(source), "output": str(target),
            "segments": joined["segments"]}
