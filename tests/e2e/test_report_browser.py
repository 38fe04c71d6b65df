"""The HTML report, opened in a real browser (headless Chromium): every chart renders.

Plotly draws a chart only when its script runs in a browser; the rendered
DOM (``--dump-dom`` after the page's scripts ran) then holds, for each
chart's div, Plotly's ``js-plotly-plot`` class, its SVG and the layer of the
chart's kind. `make test` installs ``chromium-headless-shell`` (Debian) when
it runs as root; elsewhere this test is skipped outside CI.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from stratexec_cli import report, report_panels
from stratexec_cli.client import Client

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
# div id -> what Plotly draws for that chart
CHARTS = {
    report.FIGURE_ID: ["scatterlayer", "boxlayer", "updatemenu"],  # equity and drawdown lines, candles, the log toggle
    "chart-monthly": ["heatmaplayer"],
    "chart-yearly": ['class="trace bars"'],
    "chart-rolling": ["scatterlayer"],
    "chart-distribution": ['class="trace bars"'],
}


@pytest.fixture(scope="module")
def rendered(orchestrator_addr, finished_example, tmp_path_factory) -> str:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium-headless-shell is missing: `make test` installs it as root")
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    execution_id, _ = finished_example
    client = Client(orchestrator_addr)
    page = tmp_path_factory.mktemp("report") / "report.html"
    report.write_report(page, report.render_html(client.get(execution_id), client.results(execution_id)))
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_every_chart_is_drawn_by_the_browser(rendered):
    assert set(report_panels.PANEL_IDS) <= set(CHARTS)
    starts = {chart: rendered.index(f'<div id="{chart}"') for chart in CHARTS}
    bounds = sorted(starts.values()) + [len(rendered)]
    for chart, start in starts.items():
        section = rendered[start:bounds[bounds.index(start) + 1]]
        opening = section[:section.index(">")]
        assert "js-plotly-plot" in opening, f"{chart} was not drawn: {opening}"
        assert 'class="main-svg"' in section
        for layer in CHARTS[chart]:
            assert layer in section, f"{chart} has no {layer}"


def test_the_page_lists_the_deepest_drawdowns_and_the_trades(rendered, client, finished_example):
    execution_id, _ = finished_example
    result = client.results(execution_id).result
    drawdowns = re.search(r'<table class="drawdowns">.*?</table>', rendered, re.S).group(0)
    rows = re.findall(r"<tr><td>", drawdowns)
    assert 1 <= len(rows) <= 5
    assert f"{result.metrics.max_drawdown:.2f}%" in drawdowns  # the deepest one is the max drawdown
    trades = re.search(r'<table class="trades">.*?</table>', rendered, re.S).group(0)
    assert len(re.findall(r"<tr><td>", trades)) == len(result.trades)


def test_the_indicator_and_the_stop_and_target_levels_are_drawn_on_the_price_chart(rendered):
    figure = rendered[rendered.index(f'<div id="{report.FIGURE_ID}"'):rendered.index('<div id="chart-monthly"')]
    legend = re.findall(r'class="legendtext"[^>]*>([^<]+)<', figure)
    assert {"BTC-USD SMA(close, 20)", "BTC-USD stop", "BTC-USD target"} <= set(legend), legend
