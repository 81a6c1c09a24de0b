"""The SVG bar chart's geometry: longest bar for the largest value (or the maximum given), no bar
for a suppressed or missing value, values shown as the tables show them."""

from django.utils import translation

from booking.reporting.charts import WIDTH, bar_chart


def test_bars_are_proportional_and_suppressed_values_have_no_bar():
    chart = bar_chart("t", [("a", 10), ("b", 5), ("c", "<5"), ("d", None)])
    a, b, c, d = chart.bars
    assert a.width == 2 * b.width > 0
    assert a.width <= WIDTH - chart.bar_x
    assert (c.width, c.display) == (0, "<5")
    assert (d.width, d.display) == (0, "—")
    assert [bar.y for bar in chart.bars] == sorted(bar.y for bar in chart.bars)


def test_percentages_are_drawn_against_one_hundred_and_localized():
    with translation.override("fr"):
        chart = bar_chart("t", [("w1", 45.5), ("w2", 91.0)], unit=" %", maximum=100)
    assert chart.bars[1].width == 2 * chart.bars[0].width
    assert chart.bars[0].display == "45,5 %"
