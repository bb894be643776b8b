"""Video in and out with PyAV: containers, streams, packets and frames handled explicitly.

The reader decodes the first video stream with threaded decoding and skips
damaged packets (counted). The writer encodes frames with their original
timestamps, keeps rotation metadata, and copies audio packets from the input
without re-encoding (transcoding only a codec the output container cannot
hold, or that players do not expect in it). It writes to a hidden temporary
name of its own and renames on `close()`, so an interrupted run never leaves
a truncated file under the final name, and two runs to one output never
share a file.
"""

from __future__ import annotations

import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from colorstream import files, imageops
from colorstream.stream.frames import Frame


OUTPUT_CONTAINERS = (".mp4", ".mkv", ".mov", ".m4v", ".avi")  # what colorize writes video into
# what a folder walk takes for video (a file named on the command line is tried whatever its name)
VIDEO_SUFFIXES = OUTPUT_CONTAINERS + (".webm", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts", ".vob", ".wmv",
                                      ".asf", ".flv", ".ogv", ".3gp", ".dv", ".mxf", ".y4m", ".gif")
# x264's veryfast preset refines each motion vector in one cheap quarter-pixel pass (subme 2), so on slow
# motion the luma it re-encodes shimmers from frame to frame, more than the source did (a slow pan's warp
# error went above the original's). subme 4 (quarter-pixel search scored by SATD) removes that for about half
# as much encoder time again: affordable up to this frame size on 2 cores; at 844x844 it took a 25 fps clip
# below real time, and a 720p film has no time to spare.
REFINED_MOTION_PIXELS = 640 * 480
TEXT_FORMATS = {"tty"}  # FFmpeg renders any text file as ANSI-art "video"; that is never what a user meant


class MediaError(ValueError):
    """An input or output that cannot be used; the message is one line for the user."""


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
               "yuv411p", "yuv410p", "nv12", "nv21", "gray"}  # plane 0 is the 8-bit Y plane


def _luminance(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
    """(full-range gray, video-range Y) of a decoded frame, read straight off its Y plane where it has one."""
    if frame.format.name not in PLANAR_8BIT:  # RGB, 10-bit, palette...: let FFmpeg convert
        gray = frame.to_ndarray(format="gray")
        return gray, imageops.gray_to_luma(gray)
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width].copy()
    full_range = frame.format.name.startswith("yuvj") or frame.format.name == "gray" or frame.color_range == 2
    return (y, imageops.gray_to_luma(y)) if full_range else (imageops.luma_to_gray(y), y)


def ended_early(decoded: int, decoded_seconds: float, expected: int | None, stated_seconds: float | None) -> bool:
    """Whether `decoded` frames covering `decoded_seconds` fall clearly short of what the file states.

    Both the frames decoded and the time they cover must fall short, so neither a variable frame rate
    (which skews a count estimated from the duration) nor a fine AVI time base (which inflates a stated
    count) raises a false alarm.
    """
    if not expected:
        return False
    frames_short = decoded < 0.98 * expected and expected - decoded >= 2
    return frames_short and (not stated_seconds or decoded_seconds < 0.98 * stated_seconds)


class VideoReader:
    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise MediaError(f"{self.path}: is a directory, not a video")
        if self.path.stat().st_size == 0:
            raise MediaError(f"{self.path}: empty file")
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise MediaError(f"{self.path}: not a readable video ({_reason(error)})") from None
        if self.container.format.name in TEXT_FORMATS:
            self.container.close()
            raise MediaError(f"{self.path}: not a readable video (it is text)")
        if not self.container.streams.video:
            self.container.close()
            raise MediaError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        if not self.width or not self.height:
            self.container.close()
            raise MediaError(f"{self.path}: not a readable video (its video stream has no frame size)")
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.rate: Fraction = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        self.stated_seconds = self._stated_seconds()
        self.frame_count: int | None = self.stream.frames or (
            int(round(self.stated_seconds * float(self.rate))) if self.stated_seconds else None)
        self.has_audio = bool(self.container.streams.audio)
        # only the first video stream and the audio are carried over: what else the input holds, by kind
        self.dropped_streams = dict(Counter(stream.type for stream in self.container.streams
                                            if stream.index != self.stream.index and stream.type != "audio"))
        self.rotation = 0  # display rotation in degrees, known once the first frame is decoded
        self.bad_packets = 0
        self.decoded = 0
        self.decoded_seconds = 0.0  # the time the decoded frames cover, the last one at their mean interval

    def _stated_seconds(self) -> float | None:
        """The video's length as the file states it: the stream's own, else the container's (which counts audio)."""
        if self.stream.duration:
            return float(self.stream.duration * self.time_base)
        try:  # FFmpeg's Matroska muxer states each track's length as a tag, 'HH:MM:SS.nnnnnnnnn'
            hours, minutes, seconds = self.stream.metadata.get("DURATION", "").split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
        if self.container.duration:
            return self.container.duration / av.time_base
        return None

    def ended_early(self) -> bool:
        """Whether the video stopped clearly short of the length the file states: a cut or broken file."""
        return ended_early(self.decoded, self.decoded_seconds, self.frame_count, self.stated_seconds)

    def seek(self, pts: int) -> None:
        """Make `frames()` start at the keyframe at or before `pts` (in the stream's time base)."""
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)

    def frames(self) -> Iterator[Frame]:
        """Every decodable frame in presentation order, with its own pts."""
        index = 0
        first_pts = 0
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError:  # the container itself is damaged here: nothing after it can be read
                self.bad_packets += 1
                return
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.bad_packets += 1
                continue
            for video_frame in decoded:
                if index == 0:
                    self.rotation = int(round(getattr(video_frame, "rotation", 0) or 0))
                pts = video_frame.pts
                if pts is None:  # some containers carry none: space frames evenly
                    pts = int(round(index / (self.rate * self.time_base)))
                if index == 0:
                    first_pts = pts
                gray, luma = _luminance(video_frame)
                yield Frame(index, gray, luma, pts, self.time_base, time.perf_counter())
                index += 1
                self.decoded = index
                span = float((pts - first_pts) * self.time_base)
                self.decoded_seconds = span * index / (index - 1) if index > 1 else float(1 / self.rate)

    def close(self) -> None:
        self.container.close()


# supported_codecs overstates what these muxers take: mp4 lists PCM, yet muxes it only with a known channel
# layout (a Matroska PCM track has none) and few players read it; vorbis and truehd are experimental there.
# Only these audio codecs are copied into them; the rest are re-encoded.
COPYABLE_AUDIO = {"mp4": {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}}


def audio_copyable(codec: str, output: av.container.OutputContainer) -> bool:
    """Whether packets of `codec` can go into `output` as they are, rather than re-encoded."""
    allowed = COPYABLE_AUDIO.get(output.format.name)
    return codec in output.supported_codecs and (allowed is None or codec in allowed)


class AudioTranscoder:
    """Re-encodes one audio stream to the output container's default codec (AAC for mp4, mov and m4v).

    Decoded frames are resampled to the sample format, layout, rate and frame size the encoder takes, and
    stamped by the samples sent so far from the stream's first timestamp, so the audio neither drifts nor
    carries the rounding of a coarse input time base.
    """

    def __init__(self, stream: av.audio.AudioStream, output: av.container.OutputContainer):
        codec = av.Codec(output.default_audio_codec, "w")
        rate = stream.rate
        if codec.audio_rates and rate not in codec.audio_rates:  # AAC takes 13 rates: the nearest above, else below
            rate = min(codec.audio_rates, key=lambda option: (option < stream.rate, abs(option - stream.rate)))
        layout = stream.layout
        if any(channel.name == "NONE" for channel in layout.channels):  # a Matroska PCM track: a count, no order
            layout = av.AudioLayout(f"{layout.nb_channels}c")  # FFmpeg's default layout for that count
        self.stream = output.add_stream(codec.name, rate=rate, layout=layout.name)
        context = self.stream.codec_context
        context.open()  # the encoder's frame size is known once it is open
        self.resampler = av.AudioResampler(format=context.format, layout=context.layout, rate=context.sample_rate,
                                           frame_size=context.frame_size or None)
        self.time_base = Fraction(1, context.sample_rate)
        self.next_pts: int | None = None

    def encode(self, frame: av.AudioFrame | None) -> list[av.Packet]:
        """The packets that `frame` completes; None flushes the resampler and the encoder."""
        if frame is not None and self.next_pts is None:
            start = frame.pts * frame.time_base if frame.pts is not None and frame.time_base else 0
            self.next_pts = round(start / self.time_base)
        packets = []
        for resampled in self.resampler.resample(frame):
            resampled.pts, resampled.time_base = self.next_pts, self.time_base
            self.next_pts += resampled.samples
            packets.extend(self.stream.encode(resampled))
        if frame is None:
            packets.extend(self.stream.encode(None))
        return packets


class AudioPassthrough:
    """Carries every audio stream of `source` into `output`, interleaved by time with the video."""

    def __init__(self, source: Path, output: av.container.OutputContainer):
        self.input = av.open(str(source), metadata_errors="ignore")
        self.output = output
        self.copied: dict[int, av.stream.Stream] = {}
        self.transcoders: dict[int, AudioTranscoder] = {}
        for stream in self.input.streams.audio:
            if audio_copyable(stream.codec_context.name, output):
                self.copied[stream.index] = output.add_stream_from_template(stream)
            else:
                self.transcoders[stream.index] = AudioTranscoder(stream, output)
        streams = self.input.streams.audio
        self._packets = self.input.demux(*streams) if streams else iter(())
        self._pending: av.Packet | None = None
        self.bad_packets = 0

    def mux_until(self, seconds: float | None) -> None:
        """Mux the input's audio packets up to `seconds` of presentation time (None: all the rest)."""
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._packets, None)
                except av.FFmpegError:
                    self.bad_packets += 1
                    self._pending = None
                    self._packets = iter(())
                if self._pending is None:
                    break
            packet = self._pending
            if packet.dts is None:  # the demuxer's empty flush packet
                self._pending = None
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and float(stamp * packet.time_base) > seconds:
                return
            self._mux(packet)
            self._pending = None
        for transcoder in self.transcoders.values():  # end of input: flush the encoders
            for encoded in transcoder.encode(None):
                self.output.mux(encoded)
        self.transcoders = {}

    def _mux(self, packet: av.Packet) -> None:
        index = packet.stream.index
        if index in self.copied:
            packet.stream = self.copied[index]
            self.output.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.bad_packets += 1
            return
        for frame in frames:
            for encoded in self.transcoders[index].encode(frame):
                self.output.mux(encoded)

    def close(self) -> None:
        self.input.close()


class OutputFile:
    """A container written under a temporary name of its own beside `path` and moved there by `close()`.

    The audio of a source file is muxed in as the video advances. Any failure or interrupt leaves nothing
    under either name. Subclasses add the video stream and flush it in `_flush`.
    """

    def __init__(self, path: Path, overwrite: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        self.audio: AudioPassthrough | None = None
        self.container = None
        try:
            self.partial = files.temporary_sibling(self.path)  # this run's own: two runs never share one
        except OSError as error:
            raise MediaError(f"{self.path}: cannot write ({_reason(error)})") from None

    def _open_container(self) -> None:
        try:
            self.container = av.open(str(self.partial), "w")
        except (av.FFmpegError, OSError, ValueError) as error:
            raise MediaError(f"{self.path}: cannot write ({_reason(error)})") from None

    def _carry_audio(self, source: Path | None) -> None:
        if source is None:
            return
        try:
            self.audio = AudioPassthrough(source, self.container)
        except (av.FFmpegError, ValueError) as error:  # no encoder for the container, or none takes the audio
            raise MediaError(f"{self.path}: cannot carry the audio over ({_reason(error)})") from None

    def _mux(self, packets: list[av.Packet], seconds: float) -> None:
        """Mux video packets, then the audio up to `seconds` of presentation time."""
        try:
            for packet in packets:
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.mux_until(seconds)
        except (av.FFmpegError, OSError) as error:  # a full disk, a file size limit, a muxer's refusal
            raise MediaError(f"{self.path}: cannot write ({_reason(error)})") from None

    def _flush(self) -> None:
        """Mux what the video stream still holds (an encoder's delayed frames)."""

    def __enter__(self) -> "OutputFile":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        """Finish the file on success; on any failure or interrupt, leave nothing behind."""
        if kind is None:
            self.close()  # which leaves nothing behind either if finishing fails
        else:
            self.abort()
        return False

    def close(self) -> None:
        """Flush, finish the container and move it to its final name; on failure leave nothing behind."""
        try:
            self._flush()
            if self.audio is not None:
                self.audio.mux_until(None)
                self.audio.close()
            self.container.close()
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise MediaError(f"{self.path}: cannot write ({_reason(error)})") from None
        except BaseException:
            self.abort()
            raise
        files.finish(self.partial, self.path, self.overwrite)

    def abort(self) -> None:
        """Drop the partial output: nothing is left under either name."""
        try:
            if self.audio is not None:
                self.audio.close()
            if self.container is not None:
                self.container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass
        self.partial.unlink(missing_ok=True)


def encoder_options(codec: str, crf: int, preset: str, width: int, height: int,
                    finer_motion: bool = True) -> dict[str, str]:
    """libx264/libx265 options: the crf and preset asked for; at the default preset, frames of up to
    REFINED_MOTION_PIXELS also get x264's finer motion search, which keeps slow motion from shimmering,
    unless `finer_motion` is off (a live recording, where the encoder's time is latency)."""
    options = {"crf": str(crf), "preset": preset}
    if (finer_motion and codec == "libx264" and preset == "veryfast"
            and width * height <= REFINED_MOTION_PIXELS):
        options["x264-params"] = "subme=4"
    return options


class VideoWriter(OutputFile):
    """An encoder and muxer that keeps the input's size, timestamps, rotation and audio."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, time_base: Fraction,
                 codec: str = "libx264", crf: int = 18, preset: str = "veryfast", rotation: int = 0,
                 audio_from: Path | None = None, overwrite: bool = True, finer_motion: bool = True):
        super().__init__(path, overwrite)
        self.time_base = time_base
        try:
            self._open(width, height, rate, codec, crf, preset, rotation, audio_from, finer_motion)
        except BaseException:  # a bad setting, or an interrupt mid-way: no partial file is left
            self.abort()
            raise

    def _open(self, width: int, height: int, rate: Fraction, codec: str, crf: int, preset: str, rotation: int,
              audio_from: Path | None, finer_motion: bool) -> None:
        self._open_container()
        try:
            self.stream = self.container.add_stream(codec, rate=rate)
        except (av.FFmpegError, ValueError) as error:
            raise MediaError(f"{self.path}: cannot encode with {codec!r} ({_reason(error)})") from None
        self.stream.width, self.stream.height = width, height
        factor = imageops.chroma_subsampling(height, width)
        if factor == 1 and codec not in ("libx264", "libx265"):
            raise MediaError(f"{self.path}: odd frame size {width}x{height} needs --codec libx264 or libx265")
        # 4:2:0 needs even sizes; odd sizes keep every pixel with 4:4:4 instead of cropping or padding
        self.stream.pix_fmt = "yuv420p" if factor == 2 else "yuv444p"
        neutral = np.full((height // factor, width // factor), 128, np.uint8)
        self._neutral = (neutral, neutral)
        # the encoder works in the input's time base, so every pts survives exactly (variable frame rate too)
        self.stream.time_base = self.stream.codec_context.time_base = self.time_base
        if codec in ("libx264", "libx265"):
            self.stream.options = encoder_options(codec, crf, preset, width, height, finer_motion)
        if rotation:
            self.stream.set_display_rotation(rotation)
        self._carry_audio(audio_from)

    @classmethod
    def like(cls, reader: VideoReader, path: Path, codec: str = "libx264", crf: int = 18,
             preset: str = "veryfast", overwrite: bool = True, whole: bool = True) -> "VideoWriter":
        """A writer with the reader's size, rate, time base, rotation and audio; for a segment of a video
        (`whole` False), with neither rotation nor audio, which the joined file takes once from the source.

        Call it after the first frame is decoded, when the rotation is known.
        """
        return cls(path, reader.width, reader.height, reader.rate, reader.time_base, codec, crf, preset,
                   reader.rotation if whole else 0, reader.path if reader.has_audio and whole else None, overwrite)

    def write(self, luma: np.ndarray, chroma: tuple[np.ndarray, np.ndarray] | None, pts: int) -> None:
        """Encode one frame from its video-range Y plane and (Cb, Cr) planes; no chroma is neutral gray."""
        frame = av.VideoFrame.from_ndarray(self._planes(luma, chroma), format=self.stream.pix_fmt)
        frame.pts, frame.time_base = pts, self.time_base
        try:
            packets = self.stream.encode(frame)
        except (av.FFmpegError, OSError) as error:
            raise MediaError(f"{self.path}: cannot write ({_reason(error)})") from None
        self._mux(packets, float(pts * self.time_base))

    def _planes(self, luma: np.ndarray, chroma: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        if luma.shape != (self.stream.height, self.stream.width):
            raise MediaError(f"{self.path}: frame of {luma.shape[1]}x{luma.shape[0]} in a "
                             f"{self.stream.width}x{self.stream.height} video")
        if chroma is None:
            chroma = self._neutral
        if self.stream.pix_fmt == "yuv444p":
            return np.stack([luma, *chroma])  # (3, H, W)
        # yuv420p as PyAV takes it: the Y plane, then the quarter-size Cb and Cr planes, as rows of width W
        return np.concatenate([luma.ravel(), chroma[0].ravel(), chroma[1].ravel()]).reshape(-1, luma.shape[1])

    def _flush(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class PacketJoiner(OutputFile):
    """Encoded pieces of one video joined by copying their packets, without re-encoding, with the audio of
    the whole source muxed in once. The pieces share one encoder setup (`template` is the first one's stream),
    and each starts with a keyframe, so the join is a plain concatenation."""

    def __init__(self, path: Path, template: av.video.stream.VideoStream, rotation: int = 0,
                 audio_from: Path | None = None, overwrite: bool = True):
        super().__init__(path, overwrite)
        try:
            self._open_container()
            self.stream = self.container.add_stream_from_template(template)
            self.stream.time_base = template.time_base
            if rotation:
                self.stream.set_display_rotation(rotation)
            self._carry_audio(audio_from)
        except BaseException:
            self.abort()
            raise

    def write(self, packet: av.Packet) -> None:
        packet.stream = self.stream
        self._mux([packet], float(packet.pts * packet.time_base))
