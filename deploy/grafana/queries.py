#!/usr/bin/env python3
"""Checks deploy/grafana/umbrald.json and runs its panels' PromQL.

  queries.py check DASHBOARD               structure: ids, layout, data source, the template
                                           variables and their use in every query
  queries.py rules DASHBOARD OUT           every query as a recording rule in OUT, for
                                           `promtool check rules` to parse
  queries.py live DASHBOARD URL REPORT     every query against the Prometheus at URL (HTTP API);
      [--time UNIX] [--allow-empty PREFIX] fails on a query error, or on a panel without a
                                           number, unless its title starts with PREFIX
  queries.py preview DASHBOARD URL START END HTML
                                           the dashboard drawn from the Prometheus at URL over
                                           [START, END] (Unix seconds) as one HTML page, laid
                                           out by gridPos, for a browser's screenshot where
                                           no Grafana runs

Template variables are replaced as Grafana does with "All" selected: $job and $instance by
`.*`, $__rate_interval by $RATE_INTERVAL (default 1m). Standard library only.
"""

import html
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

VARIABLES = {
    "$__rate_interval": os.environ.get("RATE_INTERVAL", "1m"),
    "$instance": ".*",
    "$job": ".*",
}
PANEL_TYPES = {"row", "stat", "timeseries"}
DATA_SOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = 'job=~"$job", instance=~"$instance"'
METRIC = re.compile(r"\b(umbrald_[a-z0-9_]+|process_[a-z0-9_]+|up)\b")


def panels(dashboard):
    """Every panel, rows' nested panels included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard):
    """(panel, target, PromQL with the variables replaced) for every target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            yield panel, target, expr


def check(dashboard):
    """The problems found in the dashboard's structure."""
    problems = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        if key not in dashboard:
            problems.append(f"missing top-level key {key}")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        problems.append("no datasource variable of type datasource")
    for name in ("job", "instance"):
        var = variables.get(name)
        if var is None:
            problems.append(f"no template variable {name}")
        elif not (var.get("includeAll") and var.get("multi") and var.get("allValue") == ".*"):
            problems.append(f"variable {name}: needs includeAll, multi and allValue .*")
    seen_ids = set()
    cells = {}
    for panel in panels(dashboard):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if pid in seen_ids:
            problems.append(f"{title}: duplicate panel id {pid}")
        seen_ids.add(pid)
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{title}: panel type {panel.get('type')} not in {sorted(PANEL_TYPES)}")
        pos = panel.get("gridPos", {})
        if not all(isinstance(pos.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{title}: gridPos needs integer h, w, x, y")
            continue
        if pos["x"] < 0 or pos["x"] + pos["w"] > 24:
            problems.append(f"{title}: gridPos outside the 24 columns")
        for dx in range(pos["w"]):
            for dy in range(pos["h"]):
                cell = (pos["x"] + dx, pos["y"] + dy)
                if cell in cells:
                    problems.append(f"{title}: overlaps {cells[cell]}")
                    break
                cells[cell] = title
            else:
                continue
            break
        if panel["type"] == "row":
            continue
        if panel.get("datasource") != DATA_SOURCE:
            problems.append(f"{title}: datasource must be {DATA_SOURCE}")
        if not panel.get("description"):
            problems.append(f"{title}: no description")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{title}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"{title}: refIds missing or repeated")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                problems.append(f"{title}: empty expr")
            # Every selector filters by the template variables, so "Replica" works everywhere.
            for metric in METRIC.finditer(expr):
                if not expr.startswith("{" + SELECTOR, metric.end()):
                    problems.append(
                        f"{title}: {metric.group(1)} needs the selector {{{SELECTOR}...}}"
                    )
    return problems


def rules(dashboard):
    """A Prometheus rule file with one recording rule per query."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for panel, target, expr in queries(dashboard):
        lines.append(f"      - record: dashboard:panel_{panel['id']}_{target['refId']}")
        lines.append(f"        expr: {json.dumps(expr)}")
    return "\n".join(lines) + "\n"


def instant(url, expr, at):
    """The Prometheus HTTP API's answer to an instant query."""
    params = {"query": expr}
    if at is not None:
        params["time"] = at
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def live(dashboard, url, report_path, at=None, allow_empty=None):
    """Runs every query; writes the answers to report_path; returns the failures."""
    failures, report = [], []
    by_panel = {}
    for panel, target, expr in queries(dashboard):
        answer = instant(url, expr, at)
        series = []
        if answer.get("status") == "success":
            for sample in answer["data"]["result"]:
                value = float(sample["value"][1])
                series.append({"metric": sample["metric"], "value": value})
        else:
            failures.append(f"{panel['title']} [{target['refId']}]: {answer.get('error')}: {expr}")
        numbers = [s for s in series if not math.isnan(s["value"])]
        by_panel.setdefault(panel["title"], []).append(len(numbers))
        report.append({
            "panel": panel["title"], "refId": target["refId"], "expr": expr,
            "status": answer.get("status"), "error": answer.get("error"),
            "series": len(series), "numbers": len(numbers), "result": series,
        })
    for title, counts in by_panel.items():
        if sum(counts) == 0 and not (allow_empty and title.startswith(allow_empty)):
            failures.append(f"{title}: no series with a number")
    with open(report_path, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=1)
        out.write("\n")
    for entry in report:
        shown = ", ".join(
            f"{_labels(s['metric'])}={s['value']:.6g}" for s in entry["result"][:4]
        )
        more = f" (+{entry['series'] - 4})" if entry["series"] > 4 else ""
        print(f"{entry['panel']} [{entry['refId']}] {entry['status']}: {shown or 'empty'}{more}")
    return failures


def query_range(url, expr, start, end, step):
    """The Prometheus HTTP API's answer to a range query."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query_range?{query}", timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def fmt(value, unit):
    """A value as Grafana would show it, roughly."""
    if value is None or math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.3g} %"
    if unit == "s":
        for scale, name in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value * 1e9:.3g} ns" if value else "0 s"
    if unit == "bytes":
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    suffix = {"reqps": " req/s", "ops": " /s"}.get(unit, "")
    for scale, name in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{name}{suffix}"
    return f"{value:.3g}{suffix}"


def legend(fmt_string, metric):
    """legendFormat with {{label}} replaced."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt_string)
    return text.strip() or _labels(metric)


COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
          "#fade2a", "#96d98d", "#ffb357"]


def preview(dashboard, url, start, end):
    """One HTML page: every panel drawn from the range queries' answers."""
    step = max(1, int((end - start) / 240))
    width, unit_h = 1600, 30
    parts = []
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        box = (f"left:{pos['x'] * width / 24:.0f}px;top:{pos['y'] * unit_h}px;"
               f"width:{pos['w'] * width / 24 - 6:.0f}px;height:{pos['h'] * unit_h - 6}px")
        if panel["type"] == "row":
            parts.append(f'<div class="row" style="{box}">{html.escape(panel["title"])}</div>')
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        series = []
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            answer = query_range(url, expr, start, end, step)
            for result in answer.get("data", {}).get("result", []):
                points = [(float(t), float(v)) for t, v in result["values"]]
                points = [(t, v) for t, v in points if not math.isnan(v)]
                if points:
                    series.append((legend(target.get("legendFormat", ""), result["metric"]), points))
        title = html.escape(panel["title"])
        if panel["type"] == "stat":
            body = "".join(
                f'<div class="stat"><b>{fmt(points[-1][1], unit)}</b>'
                f'{"<span>" + html.escape(name) + "</span>" if name and not name.startswith("{") else ""}</div>'
                for name, points in series
            ) or '<div class="nodata">No data</div>'
            parts.append(f'<div class="panel" style="{box}"><h3>{title}</h3>{body}</div>')
            continue
        parts.append(f'<div class="panel" style="{box}"><h3>{title}</h3>'
                     f'{_chart(series, unit, pos, width, unit_h, start, end)}</div>')
    return ("<!doctype html><meta charset=utf-8><title>umbrald dashboard preview</title><style>"
            "body{margin:0;background:#111217;color:#ccccdc;font:12px sans-serif}"
            ".board{position:relative;margin:8px}"
            ".panel,.row{position:absolute;box-sizing:border-box}"
            ".panel{background:#181b1f;border:1px solid #2c3235;border-radius:2px;padding:4px 6px;overflow:hidden}"
            ".row{font-size:15px;font-weight:600;padding-top:6px}"
            "h3{margin:0 0 2px;font-size:12px;font-weight:500}"
            ".stat{display:inline-block;margin-right:10px}.stat b{font-size:24px;color:#73bf69}"
            ".stat span{display:block;font-size:11px}.nodata{color:#8e8e8e;padding:20px}"
            ".legend{font-size:10px;line-height:12px;white-space:nowrap}"
            "</style><body><div class=board style='width:%dpx'>%s</div></body>\n" % (width, "".join(parts)))


def _chart(series, unit, pos, width, unit_h, start, end):
    if not series:
        return '<div class="nodata">No data</div>'
    w = pos["w"] * width / 24 - 20
    legend_rows = min(len(series), 4)
    h = pos["h"] * unit_h - 34 - 12 * legend_rows
    values = [v for _, points in series for _, v in points]
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1
    left = 58
    svg = [f'<svg width="{w:.0f}" height="{h:.0f}">',
           f'<text x="0" y="10" fill="#8e8e8e" font-size="10">{fmt(high, unit)}</text>',
           f'<text x="0" y="{h - 2:.0f}" fill="#8e8e8e" font-size="10">{fmt(low, unit)}</text>',
           f'<line x1="{left}" y1="{h - 1:.0f}" x2="{w:.0f}" y2="{h - 1:.0f}" stroke="#2c3235"/>']
    for i, (_, points) in enumerate(series):
        coords = " ".join(
            f"{left + (t - start) / (end - start) * (w - left):.1f},"
            f"{(h - 2) - (v - low) / (high - low) * (h - 12):.1f}"
            for t, v in points
        )
        svg.append(f'<polyline fill="none" stroke="{COLORS[i % len(COLORS)]}" '
                   f'stroke-width="1.5" points="{coords}"/>')
    svg.append("</svg>")
    rows = [
        f'<div class="legend"><span style="color:{COLORS[i % len(COLORS)]}">&#9632;</span> '
        f"{html.escape(name)}: last {fmt(points[-1][1], unit)}, max "
        f"{fmt(max(v for _, v in points), unit)}</div>"
        for i, (name, points) in enumerate(series[:legend_rows])
    ]
    if len(series) > legend_rows:
        rows.append(f'<div class="legend">+{len(series) - legend_rows} more</div>')
    return "".join(svg) + "".join(rows)


def _labels(metric):
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(metric.items())) + "}"


def main(argv):
    if len(argv) < 3 or argv[1] not in ("check", "rules", "live", "preview"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as f:
        dashboard = json.load(f)
    if argv[1] == "check":
        problems = check(dashboard)
        for problem in problems:
            print(f"{argv[2]}: {problem}", file=sys.stderr)
        count = sum(1 for p in panels(dashboard) if p["type"] != "row")
        queries_n = sum(1 for _ in queries(dashboard))
        print(f"{argv[2]}: {count} panels, {queries_n} queries, {len(problems)} problems")
        return 1 if problems else 0
    if argv[1] == "rules":
        with open(argv[3], "w", encoding="utf-8") as out:
            out.write(rules(dashboard))
        return 0
    if argv[1] == "preview":
        page = preview(dashboard, argv[3].rstrip("/"), float(argv[4]), float(argv[5]))
        with open(argv[6], "w", encoding="utf-8") as out:
            out.write(page)
        return 0
    options = dict(zip(argv[5::2], argv[6::2]))
    failures = live(
        dashboard, argv[3].rstrip("/"), argv[4],
        at=options.get("--time"), allow_empty=options.get("--allow-empty"),
    )
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
