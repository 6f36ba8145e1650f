"""The job history as one self-contained HTML page: no scripts, no CDN, readable offline
and attachable to an e-mail.

It reads the same views a Grafana dashboard would (see er_assets/history/schema.py), so the
page and the dashboard cannot disagree. Charts are inline SVG; every chart has a table or hover
titles with its numbers. This module computes the figures, the table rows and the charts'
coordinates; the markup is in templates/ (package data), rendered by Jinja2 with autoescaping.

    python -m er_assets.ops.report --out report.html              # history from ER_HISTORY_URL
    python -m er_assets.ops.report --demo 90 --out report.html    # 90 days of seeded history
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import jinja2

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


def _coord(value: float) -> str:
    """An SVG coordinate: a computed (float) one to a tenth of a unit, a fixed (int) one as is.
    Floors on computed sizes are floats (max(..., 1.0)) so that they print like the rest."""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


# The templates are package data ([tool.setuptools.package-data]) found through the package, so
# they load from an installed wheel as from the checkout.
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("er_assets.ops", "templates"),
    # Everything the page shows comes from the history (domains, partition keys, error messages),
    # so every value is escaped, in text and in attributes alike.
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the render instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["coord"] = _coord


# -- formatting ---------------------------------------------------------------------------


def _int(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(part: float, whole: float) -> str:
    return "–" if not whole else f"{100.0 * part / whole:.1f}%"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    numeric: Collection[int] = frozenset()  # right-aligned columns
    code: Collection[int] = frozenset()  # columns shown as <code> (messages)


def _colours(names: Iterable[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


# -- chart primitives -----------------------------------------------------------------------
# A chart is a list of marks in drawing order; templates/macros.html.j2 draws each by its kind.


@dataclass(frozen=True)
class Line:
    kind: ClassVar[str] = "line"
    x1: float
    x2: float
    y1: float
    y2: float
    stroke: str
    dash: str | None = None


@dataclass(frozen=True)
class Text:
    kind: ClassVar[str] = "text"
    x: float
    y: float
    text: str
    anchor: str
    style: str | None = None
    rotate: bool = False  # read upwards, centred on (x, y)


@dataclass(frozen=True)
class Rect:
    kind: ClassVar[str] = "rect"
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str
    rx: int | None = None
    opacity: str | None = None


@dataclass(frozen=True)
class Dot:
    kind: ClassVar[str] = "dot"
    cx: float
    cy: float
    fill: str
    title: str


@dataclass(frozen=True)
class Polyline:
    kind: ClassVar[str] = "polyline"
    points: Sequence[tuple[float, float]]
    stroke: str


Mark = Line | Text | Rect | Dot | Polyline


@dataclass(frozen=True)
class Chart:
    height: int
    label: str
    marks: Sequence[Mark]
    width: int = WIDTH


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

    def __init__(
        self, days: Sequence[dt.date], y_max: float, height: int, y_label: str, y_format: Callable = _tick
    ) -> None:
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

    def chart(self, body: list[Mark], label: str) -> Chart:
        """The body drawn over the grid, the axes and their labels."""
        marks: list[Mark] = []
        for i in range(5):
            value = self.y_max * i / 4
            y = self.y(value)
            marks.append(Line(self.LEFT, WIDTH - self.RIGHT, y, y, "#eeeeee"))
            marks.append(Text(self.LEFT - 6, y + 4, self.y_format(value), "end"))
        step = max(1, math.ceil(len(self.days) / 12))  # at most a dozen date labels
        marks += [
            Text(self.x(day), self.height - 9, f"{day:%b %d}", "middle")
            for i, day in enumerate(self.days)
            if i % step == 0
        ]
        marks.append(Text(13, round(self.TOP + self.plot_h / 2), self.y_label, "middle", rotate=True))
        marks.append(Line(self.LEFT, WIDTH - self.RIGHT, self.y(0), self.y(0), "#9e9e9e"))
        return Chart(self.height, label, marks + body)


def _line_chart(
    days, series: dict[str, dict[dt.date, float]], colours: dict[str, str], y_label: str, label: str, y_format=_tick
) -> Chart:
    peak = max((v for points in series.values() for v in points.values()), default=0)
    frame = _Frame(days, peak, 150, y_label, y_format)
    marks: list[Mark] = []
    for name, points in series.items():
        ordered = sorted(points.items())
        if len(ordered) > 1:
            marks.append(Polyline([(frame.x(d), frame.y(v)) for d, v in ordered], colours[name]))
        # dots too: a weekly or monthly stage has only a few points
        marks += [Dot(frame.x(d), frame.y(v), colours[name], f"{name} {d}: {y_format(v)}") for d, v in ordered]
    return frame.chart(marks, label)


def _stacked_bars(
    days, series: dict[str, dict[dt.date, float]], colours: dict[str, str], y_label: str, label: str
) -> Chart:
    totals: dict[dt.date, float] = defaultdict(float)
    for points in series.values():
        for d, v in points.items():
            totals[d] += v
    frame = _Frame(days, max(totals.values(), default=0), 220, y_label)
    bar = max(frame.slot * 0.7, 1.0)
    base: dict[dt.date, float] = defaultdict(float)
    marks: list[Mark] = []
    for name, points in series.items():
        for d, v in sorted(points.items()):
            top, bottom = frame.y(base[d] + v), frame.y(base[d])
            base[d] += v
            marks.append(Rect(frame.x(d) - bar / 2, top, bar, bottom - top, colours[name], f"{name} {d}: {_int(v)}"))
    return frame.chart(marks, label)


def _rate_colour(rate: float | None) -> str:
    if rate is None:
        return NO_RUNS
    return next(colour for floor, colour, _ in RATE_BANDS if rate >= floor)


def _heatmap(days, domains: Sequence[str], cells: dict[tuple[str, dt.date], dict]) -> Chart:
    left, row_h, top = 100, 26, 6
    slot = (WIDTH - left - 16) / max(len(days), 1)
    height = top + row_h * len(domains) + 26
    marks: list[Mark] = []
    for r, domain in enumerate(domains):
        y = top + r * row_h
        marks.append(Text(left - 8, y + row_h / 2 + 4, domain, "end"))
        for c, day in enumerate(days):
            cell = cells.get((domain, day))
            rate = cell["success_rate_pct"] if cell else None
            tip = f"{domain} {day}: " + (
                f"{cell['succeeded']} of {cell['runs'] - cell['running']} stage runs succeeded ({rate:.1f}%)"
                if cell and rate is not None
                else "no finished runs"
            )
            marks.append(Rect(left + c * slot + 1, y + 2, max(slot - 2, 1.0), row_h - 4, _rate_colour(rate), tip, rx=2))
    step = max(1, math.ceil(len(days) / 12))
    marks += [
        Text(left + (c + 0.5) * slot, height - 8, f"{day:%b %d}", "middle")
        for c, day in enumerate(days)
        if c % step == 0
    ]
    return Chart(height, "success rate by domain and day", marks)


def _delivery_chart(domain: str, partitions: list[dict], days) -> Chart:
    """Minutes from first start to delivery per partition, against the SLA line."""
    sla = next((p["sla_minutes"] for p in partitions if p["sla_minutes"]), None)
    peak = max([p["elapsed_minutes"] or 0 for p in partitions] + [sla or 0])
    frame = _Frame(days, peak * 1.05, 150, "minutes to deliver")
    bar = max(min(frame.slot * 0.7, 28.0), 2.0)
    marks: list[Mark] = []
    for p in partitions:
        x = frame.x(p["started_at"].date()) - bar / 2
        status = p["sla_status"] or "no SLA"
        if p["elapsed_minutes"] is None:  # not delivered: a pale full-height bar in its status colour
            fill = SLA_COLOURS.get(p["sla_status"] or "PENDING", "#9e9e9e")
            title = f"{p['partition_key']}: not delivered ({status})"
            marks.append(Rect(x, frame.TOP, bar, frame.plot_h, fill, title, opacity="0.35"))
            continue
        top = frame.y(p["elapsed_minutes"])
        fill = SLA_COLOURS.get(p["sla_status"], PALETTE[0])
        title = f"{p['partition_key']}: {p['elapsed_minutes']:.1f} min ({status})"
        marks.append(Rect(x, top, bar, frame.y(0) - top, fill, title))
    if sla:
        y = frame.y(sla)
        marks.append(Line(frame.LEFT, WIDTH - frame.RIGHT, y, y, "#c62828", dash="6 4"))
        marks.append(Text(WIDTH - frame.RIGHT - 4, y - 4, f"SLA {sla} min", "end", style="fill:#c62828"))
    return frame.chart(marks, f"{domain}: minutes to deliver each partition")


# -- sections: what templates/report.html.j2 shows, section by section -----------------------


def _summary(rates, sla, volume) -> list[tuple[str, str]]:
    """The tiles: (figure, what it counts)."""
    runs = sum(r["runs"] for r in rates)
    finished = sum(r["runs"] - r["running"] for r in rates)
    succeeded = sum(r["succeeded"] for r in rates)
    failed = sum(r["failed"] for r in rates)
    judged = [p for p in sla if p["sla_status"] in {"MET", "LATE", "MISSED"}]
    met = sum(p["sla_status"] == "MET" for p in judged)
    processed = sum(v["records"] or 0 for v in volume if v["stage"] == "matched")
    return [
        (_int(runs), "stage runs"),
        (_pct(succeeded, finished), f"success rate ({_int(succeeded)} of {_int(finished)} finished)"),
        (_int(failed), "failed stages (incl. DQ and timeouts)"),
        (_pct(met, len(judged)), f"SLA met ({met} of {len(judged)} partitions)"),
        (_int(processed), "records processed by matching"),
    ]


def _success_section(days, domains, rates) -> dict[str, Any]:
    cells = {(r["domain"], r["day"]): r for r in rates}
    per_domain = []
    for domain in domains:
        mine = [r for r in rates if r["domain"] == domain]
        finished = sum(r["runs"] - r["running"] for r in mine)
        succeeded = sum(r["succeeded"] for r in mine)
        per_domain.append(
            (
                domain,
                _int(sum(r["runs"] for r in mine)),
                _int(succeeded),
                _int(sum(r["failed"] for r in mine)),
                _int(sum(r["cancelled"] for r in mine)),
                _pct(succeeded, finished),
            )
        )
    return {
        "heatmap": _heatmap(days, domains, cells),
        "legend": [(label, colour) for _, colour, label in RATE_BANDS] + [("no runs", NO_RUNS)],
        "table": Table(
            ("domain", "stage runs", "succeeded", "failed", "cancelled", "success rate"), per_domain, {1, 2, 3, 4, 5}
        ),
    }


def _duration_section(days, domains, durations) -> dict[str, Any]:
    # One chart per stage, a line per domain: matching takes ten times longer than extract
    # and load, and on a shared axis their trends would be flat lines at the bottom.
    colours = _colours(domains)
    charts = []
    for stage in STAGES:
        series: dict[str, dict[dt.date, float]] = {domain: {} for domain in domains}
        for d in durations:
            if d["stage"] == stage and d["domain"] in series:
                series[d["domain"]][d["day"]] = d["avg_seconds"] / 60
        charts.append((stage, _line_chart(days, series, colours, "minutes", f"{stage}: duration per day", _tick)))
    rows = []
    for domain in domains:
        for stage in STAGES:
            mine = [d for d in durations if d["domain"] == domain and d["stage"] == stage]
            runs = sum(d["runs"] for d in mine)
            if runs:
                mean = sum(d["avg_seconds"] * d["runs"] for d in mine) / runs
                rows.append((domain, stage, _int(runs), _minutes(mean), _minutes(max(d["max_seconds"] for d in mine))))
    return {
        "legend": list(colours.items()),
        "charts": charts,
        "table": Table(("domain", "stage", "succeeded runs", "mean minutes", "longest minutes"), rows, {2, 3, 4}),
    }


def _sla_section(days, domains, sla) -> dict[str, Any]:
    charts, rows = [], []
    for domain in domains:
        mine = sorted((p for p in sla if p["domain"] == domain), key=lambda p: p["started_at"])
        if not mine:
            continue
        count = {status: sum(p["sla_status"] == status for p in mine) for status in SLA_COLOURS}
        judged = count["MET"] + count["LATE"] + count["MISSED"]
        target = mine[0]["sla_minutes"]
        rows.append(
            (
                domain,
                _int(target) if target else "none",
                _int(len(mine)),
                *(_int(count[s]) for s in SLA_COLOURS),
                _pct(count["MET"], judged),
            )
        )
        charts.append((domain, _delivery_chart(domain, mine, days)))
    return {
        "table": Table(
            ("domain", "SLA minutes", "partitions", "met", "late", "missed", "pending", "compliance"),
            rows,
            {1, 2, 3, 4, 5, 6, 7},
        ),
        "legend": [(status.lower(), colour) for status, colour in SLA_COLOURS.items()],
        "charts": charts,
    }


def _volume_section(days, domains, volume) -> dict[str, Any]:
    colours = _colours(domains)
    series: dict[str, dict[dt.date, float]] = {domain: {} for domain in domains}
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for v in volume:
        totals[v["domain"], v["stage"]] += v["records"] or 0
        if v["stage"] == "matched":
            series[v["domain"]][v["day"]] = v["records"] or 0
    rows = [(domain, *(_int(totals[domain, stage]) for stage in STAGES)) for domain in domains]
    return {
        "legend": list(colours.items()),
        "chart": _stacked_bars(days, series, colours, "records", "records processed per day"),
        "table": Table(("domain", *(f"records {stage}" for stage in STAGES)), rows, {1, 2, 3}),
    }


# The loaded stage's entity figures (registry.IdentityFigures.metadata), in the panel's order.
ENTITY_FIGURES = (
    ("entities_created", "created"),
    ("records_absorbed", "records absorbed"),
    ("entities_merged", "merged"),
    ("entities_split", "split"),
    ("entity_churn", "churn"),
)


def _entities_section(domains, loads) -> list[Table]:
    """Per domain, what the loads of the period did to its durable entities, and the latest
    partitions one by one: new entities, records that joined a known one, merges, splits and
    churn (known records that changed entity). No tables when no load recorded the figures."""
    latest: dict[tuple[str, str], dict] = {}
    for run in loads:  # oldest first: a partition's latest load wins
        if any(key in run.metadata for key, _ in ENTITY_FIGURES):
            latest[run.domain, run.partition_key] = run.metadata
    if not latest:
        return []
    totals = {
        domain: [sum(int(m.get(key) or 0) for (d, _), m in latest.items() if d == domain) for key, _ in ENTITY_FIGURES]
        for domain in domains
    }
    rows = [(domain, *map(_int, totals[domain])) for domain in domains if domain in {d for d, _ in latest}]
    recent = sorted(latest.items(), key=lambda item: item[0][1], reverse=True)[:TOP_ERRORS]
    partitions = [
        (domain, partition, *(_int(int(m.get(key) or 0)) for key, _ in ENTITY_FIGURES))
        for (domain, partition), m in recent
    ]
    headers = [label for _, label in ENTITY_FIGURES]
    numeric = set(range(1, len(headers) + 1))
    return [
        Table(("domain", *headers), rows, numeric),
        Table(("domain", "partition", *headers), partitions, {n + 1 for n in numeric}),
    ]


def _late_section(late, since: dt.date) -> Table | None:
    """The partitions found late while they were late (`er_late_partitions` sensor), due in the
    period, newest first: what state they were in, and when (if yet) they were delivered."""
    rows = [
        (
            p["domain"],
            p["partition_key"],
            f"{p['due_at']:%Y-%m-%d %H:%M}",
            p["state"],
            f"{p['delivered_at']:%Y-%m-%d %H:%M}" if p["delivered_at"] else "not yet",
        )
        for p in late
        if p["due_at"].date() >= since
    ]
    if not rows:
        return None
    return Table(("domain", "partition", "due (UTC)", "found", "delivered (UTC)"), rows)


def _errors_section(errors) -> Table | None:
    """The most frequent failure groups, None when nothing failed."""
    grouped: dict[tuple, dict] = {}
    for e in errors:
        key = (e["domain"], e["stage"], e["status"], e["error_key"])
        entry = grouped.setdefault(key, {"occurrences": 0, "last_seen": e["last_seen"], "example": e["example"]})
        entry["occurrences"] += e["occurrences"]
        if e["last_seen"] and (entry["last_seen"] is None or e["last_seen"] > entry["last_seen"]):
            entry["last_seen"], entry["example"] = e["last_seen"], e["example"]
    top = sorted(grouped.items(), key=lambda item: (-item[1]["occurrences"], item[0]))[:TOP_ERRORS]
    if not top:
        return None
    rows = [
        (
            _int(v["occurrences"]),
            domain,
            stage,
            status,
            v["example"] or key,
            f"{v['last_seen']:%Y-%m-%d %H:%M}" if v["last_seen"] else "–",
        )
        for (domain, stage, status, key), v in top
    ]
    return Table(("count", "domain", "stage", "status", "latest message", "last seen (UTC)"), rows, {0}, code={4})


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
    sections = (
        {
            "summary": _summary(rates, sla, volume),
            "success": _success_section(window, domains, rates),
            "duration": _duration_section(window, domains, durations),
            "sla": _sla_section(window, domains, sla),
            "volume": _volume_section(window, domains, volume),
            "entities": _entities_section(domains, loads),
            "late": _late_section(store.late_partitions(), since),
            "errors": _errors_section(errors),
        }
        if domains
        else None
    )
    return TEMPLATES.get_template("report.html.j2").render(
        since=since, now=now, days=days, dialect=store.dialect.name, sections=sections
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
