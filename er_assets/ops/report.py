"""The job history as one self-contained HTML page: no scripts, no CDN, readable offline
and attachable to an e-mail.

It reads the same views a Grafana dashboard would (see er_assets/history/schema.py), so the
page and the dashboard cannot disagree. Charts are inline SVG drawn here; every chart has a
table or hover titles with its numbers.

    python -m er_assets.ops.report --out report.html              # history from ER_HISTORY_URL
    python -m er_assets.ops.report --demo 90 --out report.html    # 90 days of seeded history
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from html import escape

from er_assets.history import HistoryStore
from er_assets.history.dialect import UTC
from er_assets.ops.history_seed import seed_history
from er_assets.stages import ASSETS as STAGES

WIDTH = 1140  # SVG user units; charts scale to the page width
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")  # Okabe-Ito: colour-blind safe
SLA_COLOURS = {"MET": "#2e7d32", "LATE": "#f0a202", "MISSED": "#c62828", "PENDING": "#9e9e9e"}
RATE_BANDS = (
    (100.0, "#2e7d32", "100%"),
    (90.0, "#8bc34a", "90–99%"),
    (75.0, "#f0a202", "75–89%"),
    (0.0, "#c62828", "below 75%"),
)
NO_RUNS = "#eceff1"
TOP_ERRORS = 10

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; margin: 0;
       background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 20px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #e0e0e0; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; color: #424242; }
.sub { color: #616161; margin: 0 0 16px; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 10px 14px; min-width: 170px; }
.tile b { display: block; font-size: 22px; }
.tile span { color: #616161; font-size: 12px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #e0e0e0; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; width: 100%; height: auto; background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #424242; }
.legend { display: flex; gap: 14px; font-size: 12px; color: #424242; margin: 4px 0; flex-wrap: wrap; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px;
            vertical-align: -1px; }
code { font-size: 12px; white-space: pre-wrap; word-break: break-word; }
.empty { color: #757575; font-style: italic; }
"""


# -- formatting ---------------------------------------------------------------------------


def _int(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(part: float, whole: float) -> str:
    return "–" if not whole else f"{100.0 * part / whole:.1f}%"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Collection[int] = frozenset()) -> str:
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in items)
        + "</div>"
    )


def _colours(names: Iterable[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


# -- chart primitives -----------------------------------------------------------------------


def _nice_ceiling(value: float) -> float:
    """An axis maximum at or above value whose quarters are round numbers (1, 2, 2.5 or
    5 x 10^n), since the axis is labelled at every quarter."""
    if value <= 0:
        return 4.0
    quarter = value / 4
    power = 10 ** math.floor(math.log10(quarter))
    return 4 * next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= quarter)


def _tick(value: float) -> str:
    """1,250 / 12.5 / 0.25: as many decimals as the value needs, at most two."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


class _Frame:
    """A plot area over a range of days, with a y axis from 0 to a round maximum."""

    LEFT, RIGHT, TOP, BOTTOM = 76, 16, 14, 28

    def __init__(self, days: Sequence[dt.date], y_max: float, height: int, y_label: str, y_format=_tick):
        self.days, self.height, self.y_label, self.y_format = days, height, y_label, y_format
        self.y_max = _nice_ceiling(y_max)
        self.plot_w = WIDTH - self.LEFT - self.RIGHT
        self.plot_h = height - self.TOP - self.BOTTOM
        self.slot = self.plot_w / max(len(days), 1)

    def x(self, day: dt.date) -> float:
        """Centre of the day's slot."""
        return self.LEFT + ((day - self.days[0]).days + 0.5) * self.slot

    def y(self, value: float) -> float:
        return self.TOP + self.plot_h * (1 - min(value, self.y_max) / self.y_max)

    def svg(self, body: str, label: str) -> str:
        grid = []
        for i in range(5):
            value = self.y_max * i / 4
            y = self.y(value)
            grid.append(
                f'<line x1="{self.LEFT}" x2="{WIDTH - self.RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeeee"/>'
            )
            grid.append(f'<text x="{self.LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{self.y_format(value)}</text>')
        step = max(1, math.ceil(len(self.days) / 12))  # at most a dozen date labels
        for i, day in enumerate(self.days):
            if i % step == 0:
                grid.append(
                    f'<text x="{self.x(day):.1f}" y="{self.height - 9}" text-anchor="middle">{day:%b %d}</text>'
                )
        grid.append(
            f'<text transform="translate(13 {self.TOP + self.plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
            f"{escape(self.y_label)}</text>"
        )
        axis = (
            f'<line x1="{self.LEFT}" x2="{WIDTH - self.RIGHT}" y1="{self.y(0):.1f}" y2="{self.y(0):.1f}" '
            'stroke="#9e9e9e"/>'
        )
        return (
            f'<svg viewBox="0 0 {WIDTH} {self.height}" role="img" aria-label="{escape(label)}" '
            'xmlns="http://www.w3.org/2000/svg">'
            f"{''.join(grid)}{axis}{body}</svg>"
        )


def _line_chart(
    days, series: dict[str, dict[dt.date, float]], colours: dict[str, str], y_label: str, label: str, y_format=_tick
) -> str:
    peak = max((v for points in series.values() for v in points.values()), default=0)
    frame = _Frame(days, peak, 150, y_label, y_format)
    parts = []
    for name, points in series.items():
        ordered = sorted(points.items())
        if len(ordered) > 1:
            path = " ".join(f"{frame.x(d):.1f},{frame.y(v):.1f}" for d, v in ordered)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colours[name]}" stroke-width="2"/>')
        for d, v in ordered:  # dots too: a weekly or monthly stage has only a few points
            parts.append(
                f'<circle cx="{frame.x(d):.1f}" cy="{frame.y(v):.1f}" r="3" fill="{colours[name]}">'
                f"<title>{escape(name)} {d}: {y_format(v)}</title></circle>"
            )
    return frame.svg("".join(parts), label)


def _stacked_bars(
    days, series: dict[str, dict[dt.date, float]], colours: dict[str, str], y_label: str, label: str
) -> str:
    totals: dict[dt.date, float] = defaultdict(float)
    for points in series.values():
        for d, v in points.items():
            totals[d] += v
    frame = _Frame(days, max(totals.values(), default=0), 220, y_label)
    bar = max(frame.slot * 0.7, 1)
    base: dict[dt.date, float] = defaultdict(float)
    parts = []
    for name, points in series.items():
        for d, v in sorted(points.items()):
            top, bottom = frame.y(base[d] + v), frame.y(base[d])
            base[d] += v
            parts.append(
                f'<rect x="{frame.x(d) - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{bottom - top:.1f}" '
                f'fill="{colours[name]}">'
                f"<title>{escape(name)} {d}: {_int(v)}</title></rect>"
            )
    return frame.svg("".join(parts), label)


def _rate_colour(rate: float | None) -> str:
    if rate is None:
        return NO_RUNS
    return next(colour for floor, colour, _ in RATE_BANDS if rate >= floor)


def _heatmap(days, domains: Sequence[str], cells: dict[tuple[str, dt.date], dict]) -> str:
    left, row_h, top = 100, 26, 6
    slot = (WIDTH - left - 16) / max(len(days), 1)
    height = top + row_h * len(domains) + 26
    parts = []
    for r, domain in enumerate(domains):
        y = top + r * row_h
        parts.append(f'<text x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{escape(domain)}</text>')
        for c, day in enumerate(days):
            cell = cells.get((domain, day))
            rate = cell["success_rate_pct"] if cell else None
            tip = f"{domain} {day}: " + (
                f"{cell['succeeded']} of {cell['runs'] - cell['running']} stage runs succeeded ({rate:.1f}%)"
                if cell and rate is not None
                else "no finished runs"
            )
            parts.append(
                f'<rect x="{left + c * slot + 1:.1f}" y="{y + 2}" width="{max(slot - 2, 1):.1f}" '
                f'height="{row_h - 4}" rx="2" '
                f'fill="{_rate_colour(rate)}"><title>{escape(tip)}</title></rect>'
            )
    step = max(1, math.ceil(len(days) / 12))
    for c, day in enumerate(days):
        if c % step == 0:
            parts.append(
                f'<text x="{left + (c + 0.5) * slot:.1f}" y="{height - 8}" text-anchor="middle">{day:%b %d}</text>'
            )
    return f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="success rate by domain and day" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'


def _delivery_chart(domain: str, partitions: list[dict], days) -> str:
    """Minutes from first start to delivery per partition, against the SLA line."""
    sla = next((p["sla_minutes"] for p in partitions if p["sla_minutes"]), None)
    peak = max([p["elapsed_minutes"] or 0 for p in partitions] + [sla or 0])
    frame = _Frame(days, peak * 1.05, 150, "minutes to deliver")
    bar = max(min(frame.slot * 0.7, 28), 2)
    parts = []
    for p in partitions:
        day = p["started_at"].date()
        if p["elapsed_minutes"] is None:  # not delivered: a pale full-height bar in its status colour
            parts.append(
                f'<rect x="{frame.x(day) - bar / 2:.1f}" y="{frame.TOP}" width="{bar:.1f}" height="{frame.plot_h}" '
                f'fill="{SLA_COLOURS.get(p["sla_status"] or "PENDING", "#9e9e9e")}" opacity="0.35">'
                f"<title>{escape(p['partition_key'])}: not delivered "
                f"({escape(p['sla_status'] or 'no SLA')})</title></rect>"
            )
            continue
        top = frame.y(p["elapsed_minutes"])
        parts.append(
            f'<rect x="{frame.x(day) - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{frame.y(0) - top:.1f}" '
            f'fill="{SLA_COLOURS.get(p["sla_status"], PALETTE[0])}">'
            f"<title>{escape(p['partition_key'])}: {p['elapsed_minutes']:.1f} min "
            f"({escape(p['sla_status'] or 'no SLA')})</title></rect>"
        )
    if sla:
        y = frame.y(sla)
        parts.append(
            f'<line x1="{frame.LEFT}" x2="{WIDTH - frame.RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#c62828" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{WIDTH - frame.RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" style="fill:#c62828">'
            f"SLA {sla} min</text>"
        )
    return frame.svg("".join(parts), f"{domain}: minutes to deliver each partition")


# -- sections ---------------------------------------------------------------------------------


def _summary(rates, sla, volume) -> str:
    runs = sum(r["runs"] for r in rates)
    finished = sum(r["runs"] - r["running"] for r in rates)
    succeeded = sum(r["succeeded"] for r in rates)
    failed = sum(r["failed"] for r in rates)
    judged = [p for p in sla if p["sla_status"] in {"MET", "LATE", "MISSED"}]
    met = sum(p["sla_status"] == "MET" for p in judged)
    processed = sum(v["records"] or 0 for v in volume if v["stage"] == "matched")
    tiles = [
        (_int(runs), "stage runs"),
        (_pct(succeeded, finished), f"success rate ({_int(succeeded)} of {_int(finished)} finished)"),
        (_int(failed), "failed stages (incl. DQ and timeouts)"),
        (_pct(met, len(judged)), f"SLA met ({met} of {len(judged)} partitions)"),
        (_int(processed), "records processed by matching"),
    ]
    return (
        '<div class="tiles">'
        + "".join(f'<div class="tile"><b>{v}</b><span>{escape(t)}</span></div>' for v, t in tiles)
        + "</div>"
    )


def _success_section(days, domains, rates) -> str:
    cells = {(r["domain"], r["day"]): r for r in rates}
    per_domain = []
    for domain in domains:
        mine = [r for r in rates if r["domain"] == domain]
        finished = sum(r["runs"] - r["running"] for r in mine)
        succeeded = sum(r["succeeded"] for r in mine)
        per_domain.append(
            (
                escape(domain),
                _int(sum(r["runs"] for r in mine)),
                _int(succeeded),
                _int(sum(r["failed"] for r in mine)),
                _int(sum(r["cancelled"] for r in mine)),
                _pct(succeeded, finished),
            )
        )
    return (
        '<h2 id="success-rate">Success rate by domain and day</h2>'
        + _heatmap(days, domains, cells)
        + _legend([(label, colour) for _, colour, label in RATE_BANDS] + [("no runs", NO_RUNS)])
        + _table(
            ("domain", "stage runs", "succeeded", "failed", "cancelled", "success rate"), per_domain, {1, 2, 3, 4, 5}
        )
    )


def _duration_section(days, domains, durations) -> str:
    # One chart per stage, a line per domain: matching takes ten times longer than extract
    # and load, and on a shared axis their trends would be flat lines at the bottom.
    colours = _colours(domains)
    parts = [
        '<h2 id="duration">Duration per stage over time</h2>',
        '<p class="sub">Mean minutes of the stage runs that succeeded, per day.</p>',
        _legend(colours.items()),
    ]
    for stage in STAGES:
        series: dict[str, dict[dt.date, float]] = {domain: {} for domain in domains}
        for d in durations:
            if d["stage"] == stage and d["domain"] in series:
                series[d["domain"]][d["day"]] = d["avg_seconds"] / 60
        parts += [
            f"<h3>{escape(stage)}</h3>",
            _line_chart(days, series, colours, "minutes", f"{stage}: duration per day", _tick),
        ]
    rows = []
    for domain in domains:
        for stage in STAGES:
            mine = [d for d in durations if d["domain"] == domain and d["stage"] == stage]
            runs = sum(d["runs"] for d in mine)
            if runs:
                mean = sum(d["avg_seconds"] * d["runs"] for d in mine) / runs
                rows.append(
                    (
                        escape(domain),
                        escape(stage),
                        _int(runs),
                        _minutes(mean),
                        _minutes(max(d["max_seconds"] for d in mine)),
                    )
                )
    return "".join(parts) + _table(
        ("domain", "stage", "succeeded runs", "mean minutes", "longest minutes"), rows, {2, 3, 4}
    )


def _sla_section(days, domains, sla) -> str:
    parts = [
        '<h2 id="sla">SLA compliance</h2>',
        '<p class="sub">Minutes from the first start of any stage of a partition to the first success of its '
        "final stage.</p>",
    ]
    parts.append(_legend((status.lower(), colour) for status, colour in SLA_COLOURS.items()))
    rows = []
    for domain in domains:
        mine = sorted((p for p in sla if p["domain"] == domain), key=lambda p: p["started_at"])
        if not mine:
            continue
        count = {status: sum(p["sla_status"] == status for p in mine) for status in SLA_COLOURS}
        judged = count["MET"] + count["LATE"] + count["MISSED"]
        target = mine[0]["sla_minutes"]
        rows.append(
            (
                escape(domain),
                _int(target) if target else "none",
                _int(len(mine)),
                *(_int(count[s]) for s in SLA_COLOURS),
                _pct(count["MET"], judged),
            )
        )
        parts += [f"<h3>{escape(domain)}</h3>", _delivery_chart(domain, mine, days)]
    table = _table(
        ("domain", "SLA minutes", "partitions", "met", "late", "missed", "pending", "compliance"),
        rows,
        {1, 2, 3, 4, 5, 6, 7},
    )
    return parts[0] + parts[1] + table + "".join(parts[2:])


def _volume_section(days, domains, volume) -> str:
    colours = _colours(domains)
    series: dict[str, dict[dt.date, float]] = {domain: {} for domain in domains}
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for v in volume:
        totals[v["domain"], v["stage"]] += v["records"] or 0
        if v["stage"] == "matched":
            series[v["domain"]][v["day"]] = v["records"] or 0
    rows = [(escape(domain), *(_int(totals[domain, stage]) for stage in STAGES)) for domain in domains]
    return (
        '<h2 id="records">Records processed</h2>'
        '<p class="sub">Records sent to entity resolution per day (succeeded matching stages), by domain.</p>'
        + _legend(colours.items())
        + _stacked_bars(days, series, colours, "records", "records processed per day")
        + _table(("domain", *(f"records {stage}" for stage in STAGES)), rows, {1, 2, 3})
    )


# The loaded stage's entity figures (registry.IdentityFigures.metadata), in the panel's order.
ENTITY_FIGURES = (
    ("entities_created", "created"),
    ("records_absorbed", "records absorbed"),
    ("entities_merged", "merged"),
    ("entities_split", "split"),
    ("entity_churn", "churn"),
)


def _entities_section(domains, loads) -> str:
    """Per domain, what the loads of the period did to its durable entities, and the latest
    partitions one by one: new entities, records that joined a known one, merges, splits and
    churn (known records that changed entity)."""
    latest: dict[tuple[str, str], dict] = {}
    for run in loads:  # oldest first: a partition's latest load wins
        if any(key in run.metadata for key, _ in ENTITY_FIGURES):
            latest[run.domain, run.partition_key] = run.metadata
    if not latest:
        return '<h2 id="entities">Entities</h2><p class="empty">No load of this period recorded entity figures.</p>'
    totals = {
        domain: [sum(int(m.get(key) or 0) for (d, _), m in latest.items() if d == domain) for key, _ in ENTITY_FIGURES]
        for domain in domains
    }
    rows = [(escape(domain), *map(_int, totals[domain])) for domain in domains if domain in {d for d, _ in latest}]
    recent = sorted(latest.items(), key=lambda item: item[0][1], reverse=True)[:TOP_ERRORS]
    partitions = [
        (escape(domain), escape(partition), *(_int(int(m.get(key) or 0)) for key, _ in ENTITY_FIGURES))
        for (domain, partition), m in recent
    ]
    headers = [label for _, label in ENTITY_FIGURES]
    numeric = set(range(1, len(headers) + 1))
    return (
        '<h2 id="entities">Entities</h2>'
        '<p class="sub">What the loads did to the durable entity ids, per domain over the period (each partition\'s '
        "latest load), then the latest partitions; churn counts known records that changed entity. "
        "<code>autosys-bridge entities show DOMAIN ID</code> shows one entity.</p>"
        + _table(("domain", *headers), rows, numeric)
        + _table(("domain", "partition", *headers), partitions, {n + 1 for n in numeric})
    )


def _errors_section(errors) -> str:
    grouped: dict[tuple, dict] = {}
    for e in errors:
        key = (e["domain"], e["stage"], e["status"], e["error_key"])
        entry = grouped.setdefault(key, {"occurrences": 0, "last_seen": e["last_seen"], "example": e["example"]})
        entry["occurrences"] += e["occurrences"]
        if e["last_seen"] and (entry["last_seen"] is None or e["last_seen"] > entry["last_seen"]):
            entry["last_seen"], entry["example"] = e["last_seen"], e["example"]
    top = sorted(grouped.items(), key=lambda item: (-item[1]["occurrences"], item[0]))[:TOP_ERRORS]
    if not top:
        return '<h2 id="errors">Most common errors</h2><p class="empty">No failures in this period.</p>'
    rows = [
        (
            _int(v["occurrences"]),
            escape(domain),
            escape(stage),
            escape(status),
            f"<code>{escape(v['example'] or key)}</code>",
            f"{v['last_seen']:%Y-%m-%d %H:%M}" if v["last_seen"] else "–",
        )
        for (domain, stage, status, key), v in top
    ]
    return (
        '<h2 id="errors">Most common errors</h2>'
        '<p class="sub">Failures grouped by message with ids and numbers set aside; the latest message of each '
        "group is shown.</p>"
        + _table(("count", "domain", "stage", "status", "latest message", "last seen (UTC)"), rows, {0})
    )


def render_report(store: HistoryStore, days: int = 30, now: dt.datetime | None = None) -> str:
    """The report over the `days` UTC days ending with `now`'s day, as one HTML page."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    since = now.date() - dt.timedelta(days=days - 1)
    window = [since + dt.timedelta(days=i) for i in range(days)]
    rates = store.view("er_v_success_rate", since)
    durations = store.view("er_v_stage_duration", since)
    sla = store.view("er_v_sla_compliance", since)
    volume = store.view("er_v_record_volume", since)
    errors = store.view("er_v_error_frequency", since)
    loads = store.rows(stage="loaded", status="SUCCEEDED", since=dt.datetime.combine(since, dt.time(), tzinfo=UTC))
    domains = sorted({r["domain"] for r in rates} | {p["domain"] for p in sla})
    body = (
        (
            _summary(rates, sla, volume)
            + _success_section(window, domains, rates)
            + _duration_section(window, domains, durations)
            + _sla_section(window, domains, sla)
            + _volume_section(window, domains, volume)
            + _entities_section(domains, loads)
            + _errors_section(errors)
        )
        if domains
        else '<p class="empty">No job history in this period.</p>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Entity resolution job history, {since} to {now.date()}</title><style>{CSS}</style></head><body><main>"
        "<h1>Entity resolution job history</h1>"
        f'<p class="sub">{since:%d %b %Y} to {now:%d %b %Y} ({days} days, UTC) · generated {now:%Y-%m-%d %H:%M} UTC · '
        f"{escape(store.dialect.name)} history</p>"
        f"{body}</main></body></html>"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m er_assets.ops.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--days", type=int, default=30, help="days to report (default 30)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url", help="history database URL (default: ER_HISTORY_URL, else the local deployment's history.db)"
    )
    source.add_argument("--demo", type=int, metavar="DAYS", help="report on DAYS of seeded history in memory instead")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.demo:
        store = HistoryStore.from_url("sqlite://")
        seed_history(store, days=args.demo)
    else:
        store = HistoryStore.from_url(args.url) if args.url else HistoryStore.from_env()
    with store:
        html = render_report(store, days=args.days)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(html)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
