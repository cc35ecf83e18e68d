"""The HTML report: one self-contained file with the charts people would rather look at than read.

Charts are drawn by Apache ECharts (Apache-2.0), vendored as `assets/echarts.min.js` (6.1.0,
from the npm registry, license beside it) and inlined, so the file opens with no network. It
was chosen because one file covers all three charts (heat map, a Gantt-like custom series,
lines), and its SVG renderer puts every cell in the DOM, where a test (or a reader's devtools)
can check the colour of each one. The data travels as one JSON block; the script only draws.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from backfill.outcome import TaskOutcome
from backfill.report.facts import COVERAGE, PROBLEMS, STALE, SUCCEEDED, Campaign
from backfill.report.markdown import render_markdown

# Coverage and task colours; a failed cell is this exact red in the SVG (tests check it).
COLOURS = {"succeeded": "#2e7d32", "partial": "#f9a825", "failed": "#d62728", "blocked": "#7b1fa2",
           "stale": "#8d6e63", "never ran": "#e0e0e0", "revoked": "#d62728", "cancelled": "#9e9e9e",
           "skipped": "#bdbdbd", "running": "#1e88e5", "pending": "#e0e0e0"}


def _echarts() -> str:
    return resources.files("backfill.report").joinpath("assets/echarts.min.js").read_text(encoding="utf-8")


def chart_data(campaign: Campaign) -> dict[str, Any]:
    """What the script draws: coverage cells, task bars per run, cumulative finished tasks per run."""
    cov = campaign.coverage
    heat: dict[str, Any] = {"processors": [], "dates": [], "cells": []}
    if cov is not None:
        p_index = {p: i for i, p in enumerate(cov.processors)}
        d_index = {d: i for i, d in enumerate(cov.dates)}
        heat = {"processors": cov.processors, "dates": cov.dates,
                "cells": [[d_index[d], p_index[p], COVERAGE.index(c), cov.detail.get((p, d), "")]
                          for (p, d), c in sorted(cov.cells.items())]}
    runs = []
    for run in campaign.runs:
        bars = [[t.processor, (t.started_at or 0) * 1000, (t.finished_at or 0) * 1000, t.status, t.id, t.wave]
                for t in run.tasks if t.started_at is not None and t.finished_at is not None]
        ends = sorted(t.finished_at for t in run.tasks if t.finished_at is not None)
        curve = [[0.0, 0]] + [[round((e - run.created_at) / 60, 4), i + 1] for i, e in enumerate(ends)]
        rank = {p: i for i, p in enumerate(cov.processors if cov is not None else [])}
        first_wave: dict[str, int] = {}
        for t in run.tasks:
            first_wave[t.processor] = min(t.wave, first_wave.get(t.processor, t.wave))
        order = sorted(first_wave, key=lambda name: (rank.get(name, len(rank)), first_wave[name], name))
        runs.append({"run_id": run.run_id, "status": run.status, "processors": order,
                     "bars": bars, "throughput": curve})
    return {"heat": heat, "classes": list(COVERAGE), "colours": COLOURS, "runs": runs}


SUMMARY = (SUCCEEDED, TaskOutcome.partial, TaskOutcome.failed, TaskOutcome.blocked)  # the runs table's counts


def _failure_rows(campaign: Campaign) -> list[tuple[str, str, str, str, str]]:
    """(run, task, status, category, message) of every task not succeeded, then open coverage cells."""
    rows = [(run.run_id, t.id, t.status, t.error_category or "", t.error_message or "") for run in campaign.runs
            for t in run.tasks if t.status in PROBLEMS]
    if campaign.coverage is not None:
        rows += [("now", f"{p}@{d}", c, "", campaign.coverage.detail.get((p, d), ""))
                 for p, d, c in campaign.coverage.missing() if c in (*PROBLEMS, STALE)]
    return rows


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.chart{width:100%;height:360px;border:1px solid #eee;margin:8px 0}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#fafafa}
tr.failed td.status,tr.revoked td.status{background:#d62728;color:#fff}tr.blocked td.status{background:#7b1fa2;
color:#fff}tr.partial td.status{background:#f9a825}tr.stale td.status{background:#8d6e63;color:#fff}
details{margin:16px 0}pre{white-space:pre-wrap;background:#fafafa;padding:12px;border:1px solid #eee}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-1px}
"""

_SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var opts = {renderer: 'svg'};
  function fmt(ms) { return new Date(ms).toISOString().replace('T', ' ').slice(0, 19); }
  var heat = data.heat;
  var h = echarts.init(document.getElementById('heatmap'), null, opts);
  h.setOption({
    animation: false,
    tooltip: {formatter: function (p) { var v = p.data; return heat.processors[v[1]] + ' @ ' + heat.dates[v[0]]
      + ': ' + data.classes[v[2]] + (v[3] ? '<br>' + v[3] : ''); }},
    grid: {left: 220, right: 20, top: 10, bottom: 70},
    xAxis: {type: 'category', data: heat.dates, splitArea: {show: false}},
    yAxis: {type: 'category', data: heat.processors, inverse: true},
    visualMap: {type: 'piecewise', dimension: 2, show: false,
      pieces: data.classes.map(function (c, i) { return {value: i, label: c, color: data.colours[c]}; })},
    dataZoom: heat.dates.length > 120 ? [{type: 'slider', xAxisIndex: 0, bottom: 5}] : [],
    series: [{type: 'heatmap', data: heat.cells,
      itemStyle: {borderColor: '#fff', borderWidth: heat.dates.length > 120 ? 0 : 1}}]
  });
  data.runs.forEach(function (run, i) {
    var el = document.getElementById('timeline-' + i);
    var g = echarts.init(el, null, opts);
    var rows = run.processors;
    g.setOption({
      animation: false,
      tooltip: {formatter: function (p) { var v = p.data.value; return v[4] + ' (wave ' + v[5] + '): ' + v[3]
        + '<br>' + fmt(v[1]) + ' .. ' + fmt(v[2]); }},
      grid: {left: 220, right: 20, top: 10, bottom: 40},
      xAxis: {type: 'time'},
      yAxis: {type: 'category', data: rows, inverse: true},
      series: [{type: 'custom', encode: {x: [1, 2], y: 0},
        data: run.bars.map(function (b) { return {value: b, itemStyle: {color: data.colours[b[3]]}}; }),
        renderItem: function (params, api) {
          var y = api.value(0);  // the category's ordinal on the processor axis
          var a = api.coord([api.value(1), y]), b = api.coord([api.value(2), y]);
          var height = api.size([0, 1])[1] * 0.6;
          return {type: 'rect', shape: {x: a[0], y: a[1] - height / 2, width: Math.max(b[0] - a[0], 1),
            height: height}, style: api.style()};
        }}]
    });
  });
  var t = echarts.init(document.getElementById('throughput'), null, opts);
  t.setOption({
    animation: false,
    tooltip: {trigger: 'axis'},
    legend: {top: 0},
    grid: {left: 60, right: 20, top: 30, bottom: 40},
    xAxis: {type: 'value', name: 'minutes since the run started', nameLocation: 'middle', nameGap: 25},
    yAxis: {type: 'value', name: 'tasks finished'},
    series: data.runs.map(function (run) {
      return {type: 'line', name: run.run_id, step: 'end', showSymbol: false, data: run.throughput}; })
  });
  window.reportReady = true;
})();
"""


def render_html(campaign: Campaign) -> str:
    data = json.dumps(chart_data(campaign), default=str).replace("</", "<\\/")
    runs = campaign.runs
    title = runs[0].run_id if len(runs) == 1 else f"{len(runs)} runs, {runs[0].run_id} .. {runs[-1].run_id}"
    e = html.escape
    legend = "".join(f'<span><i style="background:{COLOURS[c]}"></i>{e(c)}</span>' for c in COVERAGE)
    summary = "".join(
        f"<tr><td>{e(r.run_id)}</td><td>{e(r.status)}</td><td>{len(r.tasks)}</td>"
        + "".join(f"<td>{r.counts()[s]}</td>" for s in SUMMARY)
        + f"<td>{r.estimate()['actual_wall_seconds']:.1f}s</td></tr>" for r in runs)
    timelines = "".join(f'<h3>{e(r.run_id)} ({e(r.status)})</h3><div class="chart timeline" id="timeline-{i}" '
                        f'style="height:{max(160, 34 * len({t.processor for t in r.tasks}) + 60)}px"></div>'
                        for i, r in enumerate(runs))
    failures = _failure_rows(campaign)
    fail_rows = "".join(f'<tr class="{e(s)}"><td>{e(run)}</td><td>{e(task)}</td><td class="status">{e(s)}</td>'
                        f"<td>{e(cat)}</td><td>{e(msg[:300])}</td></tr>" for run, task, s, cat, msg in failures[:2000])
    failure_table = (f'<table id="failures"><tr><th>run</th><th>task / partition</th><th>status</th>'
                     f"<th>category</th><th>message</th></tr>{fail_rows}</table>"
                     if failures else '<p id="failures">No failed, blocked, partial or stale task or partition.</p>')
    heat_height = max(200, 26 * len(campaign.coverage.processors) + 90) if campaign.coverage else 200
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>backfill report: {e(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>Backfill report: {e(title)}</h1>
<table id="summary"><tr><th>run</th><th>status</th><th>tasks</th><th>succeeded</th><th>partial</th><th>failed</th>
<th>blocked</th><th>wall</th></tr>{summary}</table>
<h2>Coverage: latest status per processor and game date</h2>
<div class="legend">{legend}</div>
<div class="chart" id="heatmap" style="height:{heat_height}px"></div>
<h2>Timeline: real start and finish of every task</h2>{timelines}
<h2>Throughput</h2>
<div class="chart" id="throughput"></div>
<h2>Failures</h2>{failure_table}
<details><summary>The execution log (Markdown)</summary><pre>{e(render_markdown(campaign))}</pre></details>
<script type="application/json" id="report-data">{data}</script>
<script>{_echarts()}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
