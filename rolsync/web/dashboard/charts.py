"""Server-made SVG charts: geometry computed here, drawn by templates/dashboard/_charts.html (no script, no CDN).

Horizontal positions are percentages of the chart's width and vertical ones
pixels, so a chart fills any card from a phone to a desktop while its text
keeps the stylesheet's size (a scaled viewBox would shrink the labels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from rolsync.history import DayCount, OutcomeCount

OUTCOME_CLASSES = {"imported": "imported", "skipped": "skipped", "warned": "warned", "failed": "failed"}


@dataclass(frozen=True)
class Column:
    x: float  # percent
    width: float  # percent
    y: float  # px
    height: float  # px
    value: int
    title: str


@dataclass(frozen=True)
class Tick:
    position: float  # px for the value axis, percent for the category axis
    label: str


@dataclass
class ColumnChart:
    height: int
    plot_top: float
    plot_bottom: float
    columns: list[Column]
    ticks: list[Tick] = field(default_factory=list)
    labels: list[Tick] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(c.value for c in self.columns)

    @property
    def empty(self) -> bool:
        return self.total == 0


@dataclass(frozen=True)
class Row:
    label: str
    value: int
    width: float  # percent of the longest
    css: str
    title: str


@dataclass
class RowChart:
    rows: list[Row]

    @property
    def total(self) -> int:
        return sum(r.value for r in self.rows)

    @property
    def empty(self) -> bool:
        return self.total == 0


def nice_step(maximum: int, steps: int = 4) -> int:
    """A round step (1, 2, 5, 10, 20, 50…) that splits 0..maximum into about `steps` parts."""
    if maximum <= steps:
        return 1
    raw = maximum / steps
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * magnitude:
            return int(multiple * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def day_chart(days: list[DayCount], height: int = 200) -> ColumnChart:
    """One column per day; value ticks as gridlines; a date under every seventh day, ending today."""
    top, bottom = 18.0, height - 24.0
    maximum = max((d.count for d in days), default=0)
    step = nice_step(maximum)
    ceiling = max(step, math.ceil(maximum / step) * step) if maximum else 1
    slot = 100.0 / max(len(days), 1)
    columns, labels = [], []
    for i, day in enumerate(days):
        column_height = (bottom - top) * day.count / ceiling
        columns.append(Column(x=round(i * slot + slot * 0.14, 3), width=round(slot * 0.72, 3),
                              y=round(bottom - column_height, 2), height=round(column_height, 2), value=day.count,
                              title=f"{day.day.strftime('%a %d %b')}: {day.count} imported"))
        if (len(days) - 1 - i) % 7 == 0:
            labels.append(Tick(round(i * slot + slot / 2, 3), day.day.strftime("%d %b")))
    # With nothing to plot, only the baseline: a scale of 0..1 would show a lone "1".
    ticks = [Tick(round(bottom - (bottom - top) * value / ceiling, 2), str(value))
             for value in range(0, ceiling + 1 if maximum else 1, step)]
    return ColumnChart(height, top, bottom, columns, ticks, labels)


def outcome_chart(counts: list[OutcomeCount]) -> RowChart:
    """One bar per outcome and reason, the longest filling the width."""
    maximum = max((c.count for c in counts), default=0)
    return RowChart([Row(label=c.label, value=c.count,
                         width=round(100.0 * c.count / maximum, 2) if maximum else 0,
                         css=OUTCOME_CLASSES.get(c.outcome, ""), title=f"{c.label}: {c.count}")
                     for c in counts])
