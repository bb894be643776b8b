"""Frames, threads and I/O for the video pipeline."""
