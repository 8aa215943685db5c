"""The calibration chart as plain SVG coordinates, drawn server-side: no script needed to read it."""

import math
from dataclasses import dataclass

from forecast.selectors import CalibrationBucket

WIDTH = 320
HEIGHT = 320
MARGIN = 40
PLOT = WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    radius: float
    label: str


@dataclass(frozen=True)
class CalibrationChart:
    width: int
    height: int
    margin: int
    plot: int
    # Right and bottom edges of the plot area.
    right: int
    bottom: int
    center: int
    points: list[ChartPoint]
    # "x,y x,y ..." for the polyline through the points, in bucket order.
    path: str
    # (x on the horizontal axis, y on the vertical axis, label) for 0%, 25%, ... 100%.
    ticks: list[tuple[float, float, str]]
    empty: bool


def _x(probability: float) -> float:
    return round(MARGIN + probability * PLOT, 2)


def _y(probability: float) -> float:
    return round(MARGIN + (1 - probability) * PLOT, 2)


def calibration_chart(buckets: list[CalibrationBucket]) -> CalibrationChart:
    """Each non-empty bucket is a dot at (mean forecast, observed frequency), its area growing with the weight."""
    heaviest = max((b.weight for b in buckets), default=0.0) or 1.0
    points = []
    for b in buckets:
        if b.weight <= 0 or b.mean_forecast is None or b.observed is None:
            continue
        points.append(
            ChartPoint(
                x=_x(b.mean_forecast),
                y=_y(b.observed),
                radius=round(3 + 7 * math.sqrt(b.weight / heaviest), 2),
                label=(
                    f"Forecasts {b.lower:.0%} to {b.upper:.0%}: said {b.mean_forecast:.0%} on average, "
                    f"happened {b.observed:.0%} ({b.count} forecasts)"
                ),
            )
        )
    return CalibrationChart(
        width=WIDTH,
        height=HEIGHT,
        margin=MARGIN,
        plot=PLOT,
        right=MARGIN + PLOT,
        bottom=MARGIN + PLOT,
        center=MARGIN + PLOT // 2,
        points=points,
        path=" ".join(f"{p.x},{p.y}" for p in points),
        ticks=[(_x(step / 4), _y(step / 4), f"{step * 25}%") for step in range(5)],
        empty=not points,
    )
