"""Server-rendered SVG bar charts: geometry computed here, drawn by templates/booking/reporting/
_bar_chart.html. No JavaScript; each chart is followed by its data table for screen readers."""

from dataclasses import dataclass
from typing import Any

from django.utils.formats import number_format

WIDTH = 640
LABEL_WIDTH = 230
VALUE_WIDTH = 70
ROW = 26
BAR = 18


@dataclass(frozen=True)
class Bar:
    label: str
    display: str  # the value as shown ("<5" when suppressed)
    y: int
    width: int  # 0 for a suppressed or empty value
    text_y: int


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    bar_x: int
    value_x: int
    bar_height: int


def bar_chart(
    title: str, items: list[tuple[str, Any]], *, unit: str = "", maximum: float | None = None
) -> BarChart:
    """Horizontal bars, the full width standing for ``maximum`` (percentages: 100) or else for the
    largest value. ``items`` are (label, value); a value that is not a number (``"<5"``, None) is
    drawn without a bar and labelled as is."""
    numbers = [v for _, v in items if isinstance(v, int | float)]
    top = maximum or max(numbers, default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 10
    bars = []
    for i, (label, value) in enumerate(items):
        is_number = isinstance(value, int | float)
        if value is None:
            display = "—"
        elif is_number:
            decimals = 1 if isinstance(value, float) else None
            display = f"{number_format(value, decimal_pos=decimals, force_grouping=True)}{unit}"
        else:
            display = str(value)
        bars.append(
            Bar(
                label=label,
                display=display,
                y=i * ROW + 4,
                width=round(span * value / top) if is_number else 0,
                text_y=i * ROW + 4 + BAR - 4,
            )
        )
    return BarChart(
        title=title,
        bars=bars,
        width=WIDTH,
        height=max(1, len(items)) * ROW + 8,
        label_width=LABEL_WIDTH - 8,
        bar_x=LABEL_WIDTH,
        value_x=WIDTH - VALUE_WIDTH + 4,
        bar_height=BAR,
    )
