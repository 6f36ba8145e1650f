"""The HTML report over 90 days of seeded history: sections present, numbers right."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from html import unescape
from html.parser import HTMLParser

import pytest

from er_assets import stages
from er_assets.history import FAILURES, HistoryStore, Status
from er_assets.ops.history_seed import DEMO_SLA_MINUTES
from er_assets.ops.report import main, render_report, seed_history
from er_assets.partitions import partitions_def

pytest_plugins = ["er_assets_tests.postgres"]  # the PostgreSQL server fixtures, one server per session

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 6, 30, tzinfo=UTC)
DAYS = 30
SINCE = dt.datetime.combine(NOW.date() - dt.timedelta(days=DAYS - 1), dt.time(), UTC)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    store = HistoryStore.from_url(f"sqlite:///{tmp_path_factory.mktemp('report')}/history.db")
    seed_history(store, days=90, seed=0, now=NOW)
    started = time.perf_counter()
    html = render_report(store, days=DAYS, now=NOW)
    elapsed = time.perf_counter() - started
    yield store, html, elapsed
    store.close()


def text(html: str) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_seeding_is_deterministic_and_realistic(seeded, tmp_path):
    store, _, _ = seeded
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/again.db") as again:
        seed_history(again, days=90, seed=0, now=NOW)
        strip = lambda rows: [(r.run_id, r.stage, r.status, r.start_time, r.record_count) for r in rows]  # noqa: E731
        assert strip(again.rows()) == strip(store.rows())
    rows = store.rows()
    assert {r.domain for r in rows} == {"customers", "products", "vendors"}
    assert all(r.status.terminal and r.start_time < NOW for r in rows)
    assert {r.partition_key for r in rows if r.domain == "vendors"} == {"2025-03-01", "2025-04-01", "2025-05-01"}
    failures = Counter(r.status for r in rows if r.status in FAILURES)
    assert 0 < sum(failures.values()) < len(rows) * 0.1  # some failures, not a disaster
    assert store.query("SELECT domain, sla_minutes FROM er_sla ORDER BY domain") == [
        {"domain": d, "sla_minutes": m} for d, m in sorted(DEMO_SLA_MINUTES.items())
    ]


def test_seeded_partitions_and_jobs_are_dagsters(seeded, config):
    store, _, _ = seeded
    start = NOW - dt.timedelta(days=90)
    for name, domain in config.domains.items():
        definition = partitions_def(domain)
        windows = {
            key: definition.time_window_for_partition_key(key)
            for key in definition.get_partition_keys(current_time=NOW)
        }
        # Each partition Dagster's schedule completed in the window, started when it fired.
        expected = {key: window.end for key, window in windows.items() if start <= window.end}
        rows = store.rows(domain=name)
        first_starts = {
            r.partition_key: r.start_time for r in rows if r.stage == stages.ASSETS[0] and r.trigger != "ui"
        }
        assert first_starts == expected and {r.partition_key for r in rows} == set(expected)
        assert {r.job_name for r in rows} == {stages.job_name(name)}


def test_report_has_every_section_and_is_self_contained(seeded):
    _, html, elapsed = seeded
    for anchor, title in [
        ("success-rate", "Success rate by domain and day"),
        ("duration", "Duration per stage over time"),
        ("sla", "SLA compliance"),
        ("records", "Records processed"),
        ("entities", "Entities"),
        ("late", "Late partitions"),
        ("errors", "Most common errors"),
    ]:
        assert f'<h2 id="{anchor}">{title}</h2>' in html
    assert html.count("<svg") >= 1 + 3 + 3 + 1  # heatmap, a duration chart per stage, an SLA chart per domain, volume
    assert "<script" not in html.lower() and " src=" not in html and "@import" not in html
    assert re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")
    assert elapsed < 2, f"render took {elapsed:.2f} s"


def test_summary_and_success_numbers_match_the_rows(seeded):
    store, html, _ = seeded
    page = text(html)
    rows = store.rows(since=SINCE)
    succeeded = sum(r.status is Status.SUCCEEDED for r in rows)
    assert f"{len(rows):,} stage runs" in page
    assert f"{100 * succeeded / len(rows):.1f}% success rate ({succeeded:,} of {len(rows):,} finished)" in page
    for domain in ("customers", "products", "vendors"):
        mine = [r for r in rows if r.domain == domain]
        ok = sum(r.status is Status.SUCCEEDED for r in mine)
        failed = sum(r.status in FAILURES for r in mine)
        assert f"{domain} {len(mine):,} {ok:,} {failed:,} 0 {100 * ok / len(mine):.1f}%" in page


def test_sla_numbers_match_the_rows(seeded):
    store, html, _ = seeded
    page = text(html)
    partitions: dict[tuple[str, str], list] = {}
    for r in store.rows():
        partitions.setdefault((r.domain, r.partition_key), []).append(r)
    met_total = judged_total = 0
    for domain, sla in sorted(DEMO_SLA_MINUTES.items()):
        met = late = count = 0
        for (d, _), runs in partitions.items():
            first = min(r.start_time for r in runs)
            if d != domain or first < SINCE:
                continue
            count += 1
            delivered = min(
                (r.end_time for r in runs if r.stage == "loaded" and r.status is Status.SUCCEEDED), default=None
            )
            assert delivered is not None  # the seed gives every partition a chance to finish
            if (delivered - first).total_seconds() <= sla * 60:
                met += 1
            else:
                late += 1
        met_total, judged_total = met_total + met, judged_total + count
        assert f"{domain} {sla} {count} {met} {late} 0 0 {100 * met / count:.1f}%" in page
    assert f"SLA met ({met_total} of {judged_total} partitions)" in page


def test_record_volumes_match_the_rows(seeded):
    store, html, _ = seeded
    page = text(html)
    rows = [r for r in store.rows(since=SINCE, status="SUCCEEDED")]
    processed = sum(r.record_count for r in rows if r.stage == "matched")
    assert f"{processed:,} records processed by matching" in page
    for domain in ("customers", "products", "vendors"):
        per_stage = [
            sum(r.record_count for r in rows if r.domain == domain and r.stage == s)
            for s in ("extract", "matched", "loaded")
        ]
        assert f"{domain} " + " ".join(f"{n:,}" for n in per_stage) in page


def test_entity_figures_match_the_loads(seeded):
    store, html, _ = seeded
    page = text(html)
    latest = {}
    for run in store.rows(since=SINCE, status="SUCCEEDED", stage="loaded"):
        latest[run.domain, run.partition_key] = run.metadata
    for domain in ("customers", "products", "vendors"):
        figures = [
            sum(m[key] for (d, _), m in latest.items() if d == domain)
            for key in ("entities_created", "records_absorbed", "entities_merged", "entities_split", "entity_churn")
        ]
        assert sum(figures) > 0
        assert f"{domain} " + " ".join(f"{n:,}" for n in figures) in page


def test_top_errors_match_the_rows(seeded):
    store, html, _ = seeded
    failures = [r for r in store.rows(since=SINCE) if r.status in FAILURES]
    groups = Counter((r.domain, r.stage, r.status.value, r.error_key) for r in failures)
    (domain, stage, status, _), count = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    latest = max(
        (r for r in failures if (r.domain, r.stage, r.status.value) == (domain, stage, status)),
        key=lambda r: r.end_time,
    )
    section = text(html.split('id="errors"')[1])
    assert (
        section.split("last seen (UTC)")[1]
        .strip()
        .startswith(f"{count} {domain} {stage} {status} {latest.error_message}")
    )


def test_report_escapes_what_it_shows(seeded, tmp_path):
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/x.db") as store:
        store.record_start(
            "r<1>", "extract", "customers", "2025-06-28", "2025-06-28", "ui", started_at=NOW - dt.timedelta(days=1)
        )
        store.record_end(
            "r<1>",
            "extract",
            "FAILED",
            error_message="<script>alert('x')</script> & more",
            ended_at=NOW - dt.timedelta(hours=23),
        )
        html = render_report(store, days=7, now=NOW)
    # The content, not one escaper's spelling of it (&#x27; and &#39; are the same apostrophe).
    (message,) = re.findall(r"<code>(.*?)</code>", html)
    assert "<script>" not in html and "<" not in message
    assert unescape(message) == "<script>alert('x')</script> & more"


class _Page(HTMLParser):
    """What a browser would see: the elements, the attribute values and the text, entities decoded."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.attribute_names: set[str] = set()
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [value for _, value in attrs if value is not None]
        self.attribute_names |= {name for name, _ in attrs}

    def handle_data(self, data):
        self.texts.append(data)


def test_hostile_history_values_stay_text(tmp_path):
    """A domain and an error message carrying markup and quotes, as the history could hold them,
    show as themselves: no element and no attribute they could open or close."""
    domain = 'cust"><script>alert(1)</script>'
    message = '<script>alert(1)</script> "quoted" & \'single\' <img src=x onerror="alert(2)">'
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/x.db") as store:
        store.record_start(
            "r1", "extract", domain, "2025-06-28", "2025-06-28", "ui", started_at=NOW - dt.timedelta(days=1)
        )
        store.record_end("r1", "extract", "FAILED", error_message=message, ended_at=NOW - dt.timedelta(hours=23))
        html = render_report(store, days=7, now=NOW)
    page = _Page(html)
    assert not {"script", "img"} & set(page.tags) and "onerror" not in page.attribute_names
    assert message in page.texts  # the error table's <code>, whole
    assert domain in page.texts  # the heatmap's row label and the SLA section's heading
    assert f"{domain}: minutes to deliver each partition" in page.attributes  # an aria-label, quote included


def test_late_partitions_show_when_they_were_due_and_delivered(tmp_path):
    due = NOW - dt.timedelta(days=2, hours=-9)
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/late.db") as store:
        store.record_start(
            "r1", "extract", "customers", "2025-06-27", "2025-06-27", "ui", started_at=due - dt.timedelta(hours=2)
        )
        store.record_end("r1", "extract", "SUCCEEDED", ended_at=due - dt.timedelta(hours=1))
        assert store.claim_late("customers", "2025-06-27", due, "never started", ["a@example.com"])
        assert store.claim_late("products", "2025-06-22", due - dt.timedelta(days=20), "never started", [])  # too old
        before = text(render_report(store, days=7, now=NOW))
        store.record_start(
            "r2", "loaded", "customers", "2025-06-27", "2025-06-27", "ui", started_at=due + dt.timedelta(hours=1)
        )
        store.record_end("r2", "loaded", "SUCCEEDED", ended_at=due + dt.timedelta(hours=2))
        after = text(render_report(store, days=7, now=NOW))
    assert "customers 2025-06-27 2025-06-28 09:00 never started not yet" in before
    assert "customers 2025-06-27 2025-06-28 09:00 never started 2025-06-28 11:00" in after
    assert "2025-06-22" not in after


def test_empty_history_says_so(tmp_path):
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/empty.db") as store:
        assert "No job history in this period." in render_report(store, now=NOW)


def test_postgres_gives_the_same_report(seeded, postgres_url):
    _, html, _ = seeded
    with HistoryStore.from_url(postgres_url) as pg:
        seed_history(pg, days=90, seed=0, now=NOW)
        assert render_report(pg, days=DAYS, now=NOW).replace("postgresql history", "sqlite history") == html


def test_command_line_demo(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["--demo", "90", "--days", "90", "--out", str(out)]) == 0
    assert "Most common errors" in out.read_text() and "wrote" in capsys.readouterr().out
