"""Where the text label of each point of a scatter goes, so that labels do not cover each other.

Plotly places a point's text at one of nine spots around it and never moves it out of the way. This
picks, per label, the spot whose box (estimated from its characters, in a plot of an assumed size)
overlaps least with the labels already placed, the points and their error bars, and the plot's
edges; points closer than a label's height share one label listing their names.

Invariant: pure arithmetic on numbers and strings (no plotly); every point is named in exactly one
label.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Label", "place_labels"]

#: The plot area the estimate assumes, in pixels (a JupyterLab panel's figure, margins taken off).
_WIDTH, _HEIGHT = 680.0, 330.0
_CHAR, _LINE, _GAP = 6.4, 14.0, 7.0
#: Spots tried, the most natural first: plotly's ``textposition`` and the box's offset from the point
#: as (left, bottom) in units of the box's (width, height), plus a gap away from the marker.
_SPOTS = (
    ("top center", (-0.5, 0.0), (0, 1)),
    ("middle right", (0.0, -0.5), (1, 0)),
    ("middle left", (-1.0, -0.5), (-1, 0)),
    ("bottom center", (-0.5, -1.0), (0, -1)),
    ("top right", (0.0, 0.0), (1, 1)),
    ("top left", (-1.0, 0.0), (-1, 1)),
    ("bottom right", (0.0, -1.0), (1, -1)),
    ("bottom left", (-1.0, -1.0), (-1, -1)),
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Label:
    """One label: where it is anchored (a data point), its text, and plotly's ``textposition``."""

    x: float
    y: float
    text: str
    position: str


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def place_labels(
    points: list[tuple[float, float]],
    texts: list[str],
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    bars: list[tuple[float, float]] | None = None,
) -> list[Label]:
    """Labels for ``points`` (data coordinates) on axes spanning ``x_range`` and ``y_range``.

    ``texts`` may hold ``<br>`` line breaks; ``bars`` are each point's (low, high) error bar, kept
    clear where possible. Points within a line's height of each other share one label.
    """
    sx = _WIDTH / ((x_range[1] - x_range[0]) or 1.0)
    sy = _HEIGHT / ((y_range[1] - y_range[0]) or 1.0)
    px = [((x - x_range[0]) * sx, (y - y_range[0]) * sy) for x, y in points]
    groups: list[list[int]] = []
    for i in sorted(range(len(px)), key=lambda i: (px[i][0], -px[i][1])):
        near = next(
            (g for g in groups if abs(px[g[0]][0] - px[i][0]) < 12 and abs(px[g[0]][1] - px[i][1]) < 12),
            None,
        )
        if near is None:
            groups.append([i])
        else:
            near.append(i)
    obstacles: list[Box] = [(x - 6, y - 6, x + 6, y + 6) for x, y in px]
    for (x, _), (low, high) in zip(px, bars or [], strict=False):
        obstacles.append((x - 3, (low - y_range[0]) * sy, x + 3, (high - y_range[0]) * sy))
    placed: list[Box] = []
    labels = []
    for group in sorted(groups, key=lambda g: -max(px[i][1] for i in g)):
        top = max(group, key=lambda i: px[i][1])
        names = [texts[i] for i in group]
        text = "<br>".join(names[:4] + ([f"+{len(names) - 4} more"] if len(names) > 4 else []))
        lines = text.split("<br>")
        width = _CHAR * max(len(line) for line in lines)
        height = _LINE * len(lines)
        best: tuple[float, str, Box] | None = None
        for rank, (position, (left, bottom), (gx, gy)) in enumerate(_SPOTS):
            x0 = px[top][0] + left * width + gx * _GAP
            y0 = px[top][1] + bottom * height + gy * _GAP
            box = (x0, y0, x0 + width, y0 + height)
            outside = width * height - _overlap(box, (0, 0, _WIDTH, _HEIGHT))
            cost = (
                3 * sum(_overlap(box, other) for other in placed)
                + sum(_overlap(box, o) for o in obstacles)
                + 4 * outside
                + rank  # ties go to the more natural spot
            )
            if best is None or cost < best[0]:
                best = (cost, position, box)
        assert best is not None
        placed.append(best[2])
        labels.append(Label(points[top][0], points[top][1], text, best[1]))
    return labels
