"""A strip plot of mean face colour over time, drawn with OpenCV, so flicker and lag can be seen.

Two panels, Lab a (green-red) above b (blue-yellow); each shows the output
(red) against the truth (black), one column step per frame. Frames without a
face leave a gap.
"""

from __future__ import annotations

import cv2
import numpy as np

PANEL_HEIGHT = 150
MARGIN = 40  # pixels left of and around each panel, for labels
OUTPUT_COLOUR, TRUTH_COLOUR = (40, 40, 220), (0, 0, 0)  # BGR


def _polyline(panel: np.ndarray, values: np.ndarray, to_y, step: int, colour: tuple[int, int, int]) -> None:
    """Connect consecutive frames that both have a value."""
    for t in range(1, len(values)):
        if np.isfinite(values[t - 1]) and np.isfinite(values[t]):
            start = (MARGIN + (t - 1) * step, to_y(values[t - 1]))
            cv2.line(panel, start, (MARGIN + t * step, to_y(values[t])), colour, 1, cv2.LINE_AA)


def _panel(output: np.ndarray, truth: np.ndarray, step: int, name: str) -> np.ndarray:
    """One channel's panel: (PANEL_HEIGHT + MARGIN, width, 3) uint8."""
    width = 2 * MARGIN + step * max(len(output) - 1, 1)
    panel = np.full((PANEL_HEIGHT + MARGIN, width, 3), 255, np.uint8)
    known = np.concatenate([output[np.isfinite(output)], truth[np.isfinite(truth)]])
    low, high = (float(known.min()), float(known.max())) if known.size else (-1.0, 1.0)
    low, high = low - 1.0, high + 1.0  # never a zero range; a flat line sits mid-panel
    top = MARGIN // 2

    def to_y(value: float) -> int:
        return int(round(top + (high - value) / (high - low) * (PANEL_HEIGHT - 1)))

    cv2.rectangle(panel, (MARGIN, top), (width - MARGIN, top + PANEL_HEIGHT - 1), (200, 200, 200), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for value in (high, low):
        cv2.putText(panel, f"{value:.0f}", (2, to_y(value) + 4), font, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(panel, name, (MARGIN, top + PANEL_HEIGHT + 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    _polyline(panel, truth, to_y, step, TRUTH_COLOUR)
    _polyline(panel, output, to_y, step, OUTPUT_COLOUR)
    return panel


def draw_strip(face_means: np.ndarray, title: str) -> np.ndarray:
    """face_means: (T, 4) per frame mean face a, b of the output, then a, b of the truth (NaN: no face)
    -> a BGR uint8 image."""
    step = max(1, 1200 // max(len(face_means), 1))  # about 1200 pixels wide, at least a pixel a frame
    panels = [_panel(face_means[:, 0], face_means[:, 2], step, "mean face a*: output (red), truth (black)"),
              _panel(face_means[:, 1], face_means[:, 3], step, "mean face b*: output (red), truth (black)")]
    header = np.full((24, panels[0].shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (MARGIN, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, *panels])
