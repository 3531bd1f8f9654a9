"""The static HTML council report: a city page and one page per ward.

Pure rendering: it takes plain rows (from the marts, ``orchestration/reporting.py``) and returns
the pages as ``{relative path: HTML}``. Every page is self-contained: inline CSS and inline SVG
charts (``report_charts.py``), no script, nothing fetched, so it opens from a file share or an
e-mail attachment. Links between pages are relative.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from jinja2 import DictLoader, Environment, select_autoescape

from social311.orchestration import report_charts as charts
from social311.orchestration.report_templates import TEMPLATES

#: Days on the trend and sentiment charts.
TREND_DAYS = 28


@dataclass
class ReportData:
    """Everything the report shows. Rows are dicts straight from the marts."""

    city: str
    generated_at: datetime
    totals: dict[str, int]
    wards: list[dict]  # ward_id, name, geom_wkt
    incidents: list[dict]  # fct_incidents, with ticket status columns of fct_ticket_sla where filed
    daily: list[dict]  # fct_ward_issue_daily
    services: dict[str, str] = field(default_factory=dict)  # service_code -> name
    filing_enabled: bool = True
    spikes: list[dict] = field(default_factory=list)  # fct_ward_service_spikes where is_spike
    surges: list[dict] = field(default_factory=list)  # fct_service_surges where is_spike
    response_times: list[dict] = field(default_factory=list)  # fct_response_times
    campaigns: list[dict] = field(default_factory=list)  # fct_campaign_daily


def ward_page(ward_id: str) -> str:
    """The relative path of a ward's page; ids that are not plain get a hash, never a path trick."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", str(ward_id))[:40]
    if safe != str(ward_id):
        safe += "-" + hashlib.sha1(str(ward_id).encode()).hexdigest()[:8]
    return f"wards/ward-{safe}.html"


def _ward_name(ward: dict) -> str:
    name = ward.get("name") or ""
    # "Ward 42" already says it; a bare name ("Westside") gets its id, as the map labels do.
    return name if name and ward["ward_id"] in name else (f"{name} ({ward['ward_id']})" if name else f"Ward {ward['ward_id']}")


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "—"
    hours = (now - since).total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"


def _hours(value: float | None) -> str:
    return "—" if value is None else (f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d")


def _week_over_week(daily: list[dict], last: date | None) -> dict[str, tuple[int, int]]:
    """Per ward: report posts in the 7 days ending on ``last`` and in the 7 days before."""
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if last is None:
        return {}
    for r in daily:
        age = (last - r["activity_date"]).days
        if 0 <= age < 14:
            weeks[r["ward_id"]][0 if age < 7 else 1] += r["post_count"]
    return {ward: (now, before) for ward, (now, before) in weeks.items()}


def _change(now: int, before: int) -> str:
    if before == 0:
        return "new" if now else "—"
    pct = 100 * (now - before) / before
    return f"{'▲' if pct > 0 else '▼' if pct < 0 else '='} {abs(pct):.0f}%"


class _Pages:
    """What every page shares: names, dates, scales."""

    def __init__(self, data: ReportData):
        self.data = data
        self.names = {w["ward_id"]: _ward_name(w) for w in data.wards}
        self.service = lambda code: data.services.get(code, code) if code else "—"
        days = [r["activity_date"] for r in data.daily]
        self.end = max(days) if days else data.generated_at.date()
        self.start = max(min(days) if days else self.end, self.end - timedelta(days=TREND_DAYS - 1))
        # One y scale for every trend chart of every page: the busiest ward x service x day.
        self.y_max = max((r["post_count"] for r in data.daily if r["activity_date"] >= self.start), default=1)
        self.counts: dict[str, int] = defaultdict(int)
        for inc in data.incidents:
            if inc["ward_id"]:
                self.counts[inc["ward_id"]] += 1
        self.recent_spikes = [s for s in data.spikes if (self.end - s["activity_date"]).days < 7]

    def trend_rows(self, ward_id: str | None) -> list[dict]:
        per: dict[tuple, int] = defaultdict(int)
        for r in self.data.daily:
            if (ward_id is None or r["ward_id"] == ward_id) and r["activity_date"] >= self.start:
                per[(self.service(r["service_code"]), r["activity_date"])] += r["post_count"]
        return [{"service": s, "activity_date": d, "posts": n} for (s, d), n in sorted(per.items())]

    def sentiment_rows(self, ward_id: str | None) -> list[dict]:
        per: dict[date, list[float]] = defaultdict(lambda: [0.0, 0])
        for r in self.data.daily:
            if (ward_id is None or r["ward_id"] == ward_id) and r["mean_sentiment"] is not None and r["activity_date"] >= self.start:
                per[r["activity_date"]][0] += r["mean_sentiment"] * r["post_count"]
                per[r["activity_date"]][1] += r["post_count"]
        return [{"activity_date": d, "sentiment": round(s / n, 3), "posts": n} for d, (s, n) in sorted(per.items()) if n]

    def ticket_rows(self, incidents: list[dict]) -> list[dict]:
        now = self.data.generated_at
        rows = []
        for i in incidents:
            if i["ticket_state"] == "not_filed":
                continue
            flags = [label for key, label in (("is_acknowledge_overdue", "not acknowledged in time"),
                                              ("is_close_overdue", "open past target")) if i.get(key)]
            if i.get("residents_unanswered_overdue"):
                flags.append(f"{i['residents_unanswered_overdue']} resident(s) not answered")
            rows.append({**i, "service": i.get("service_name") or self.service(i["service_code"]),
                         "ward": self.names.get(i["ward_id"], i["ward_id"] or "—"),
                         "status": i.get("ticket_status") or ("draft (dry run)" if i["ticket_state"] == "dry_run" else i["ticket_state"]),
                         "age": _age(i.get("ticket_requested_at"), now), "flags": flags})
        return rows

    def response_rows(self, ward_id: str | None) -> list[dict]:
        rows = [r for r in self.data.response_times
                if (r["is_city_total"] if ward_id is None else (not r["is_city_total"] and r["ward_id"] == ward_id))]
        return [{**r, "service": self.service(r["service_code"]),
                 **{k: _hours(r[k]) for k in ("acknowledge_median_h", "acknowledge_p90_h", "close_median_h", "close_p90_h")}}
                for r in sorted(rows, key=lambda r: -r["ticket_count"])]


def _env() -> Environment:
    return Environment(loader=DictLoader(TEMPLATES),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def render_pages(data: ReportData) -> dict[str, str]:
    """The report: ``index.html`` (the city) and one page per ward, keyed by relative path."""
    pages = _Pages(data)
    env = _env()
    wow = _week_over_week(data.daily, pages.end if data.daily else None)
    spiking = {s["ward_id"] for s in pages.recent_spikes}
    by_ward: dict[str, list[dict]] = defaultdict(list)
    for inc in data.incidents:
        by_ward[inc["ward_id"]].append(inc)
    ward_rows = []
    for w in data.wards:
        incs = by_ward.get(w["ward_id"], [])
        top: dict[str, int] = defaultdict(int)
        for i in incs:
            top[i.get("service_name") or pages.service(i["service_code"])] += 1
        now, before = wow.get(w["ward_id"], (0, 0))
        ward_rows.append({"ward_id": w["ward_id"], "name": pages.names[w["ward_id"]], "page": ward_page(w["ward_id"]),
                          "incidents": len(incs), "tickets": sum(1 for i in incs if i["has_ticket"]),
                          "drafts": sum(1 for i in incs if i["ticket_state"] == "dry_run"),
                          "posts": sum(i["post_count"] for i in incs), "this_week": now, "last_week": before,
                          "change": _change(now, before), "rising": now > before,
                          "spike": w["ward_id"] in spiking,
                          "overdue": sum(1 for i in incs if i.get("is_acknowledge_overdue") or i.get("is_close_overdue")),
                          "top": max(top.items(), key=lambda kv: kv[1])[0] if top else "—"})
    ward_rows.sort(key=lambda r: (-r["incidents"], r["name"]))
    common = {"city": data.city, "generated_at": data.generated_at, "filing_enabled": data.filing_enabled,
              "start": pages.start, "end": pages.end, "y_max": pages.y_max}
    campaigns = _campaign_rows(data.campaigns, pages.names)
    out = {"index.html": env.get_template("city.html").render(
        **common, root="", totals=data.totals, ward_rows=ward_rows,
        map_svg=charts.ward_map(data.wards, dict(pages.counts), _points(data.incidents), names=pages.names, width=440),
        trend_svg=charts.trend_chart(pages.trend_rows(None), start=pages.start, end=pages.end, y_max=pages.y_max),
        spikes=_spike_rows(pages.recent_spikes, pages), surges=_spike_rows(
            [s for s in data.surges if (pages.end - s["activity_date"]).days < 7], pages),
        responses=pages.response_rows(None), campaigns=campaigns,
        campaign_svg=charts.campaign_chart(data.campaigns, start=pages.start, end=pages.end),
        # No ward, or a ward of older boundaries than the map's: listed here, so no ticket goes unshown.
        unplaced=pages.ticket_rows([i for i in data.incidents if i["ward_id"] not in pages.names]),
        waiting=[i for i in data.incidents if i["ticket_state"] == "not_filed"])}
    for row in ward_rows:
        ward_id = row["ward_id"]
        incs = by_ward.get(ward_id, [])
        out[row["page"]] = env.get_template("ward.html").render(
            **common, root="../", ward=row,
            map_svg=charts.ward_map(data.wards, dict(pages.counts), _points(incs), names=pages.names, highlight=ward_id, width=400),
            trend_svg=charts.trend_chart(pages.trend_rows(ward_id), start=pages.start, end=pages.end, y_max=pages.y_max),
            sentiment_svg=charts.sentiment_chart(pages.sentiment_rows(ward_id), start=pages.start, end=pages.end),
            spikes=_spike_rows([s for s in data.spikes if s["ward_id"] == ward_id], pages),
            responses=pages.response_rows(ward_id), tickets=pages.ticket_rows(incs), top_issues=_top_issues(incs, pages),
            waiting=[i for i in incs if i["ticket_state"] == "not_filed"])
    return out


def _top_issues(incidents: list[dict], pages: _Pages) -> list[dict]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in incidents:
        per[i.get("service_name") or pages.service(i["service_code"])][0] += 1
        per[i.get("service_name") or pages.service(i["service_code"])][1] += i["post_count"]
    return [{"service": s, "incidents": n, "posts": p} for s, (n, p) in sorted(per.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def _points(incidents: list[dict]) -> list[tuple[float, float]]:
    return [(i["lon"], i["lat"]) for i in incidents if i["lat"] is not None and i["ward_id"]]


def _spike_rows(rows: list[dict], pages: _Pages) -> list[dict]:
    return [{**r, "ward": pages.names.get(r.get("ward_id"), r.get("ward_id")), "service": pages.service(r["service_code"]),
             "page": ward_page(r["ward_id"]) if r.get("ward_id") in pages.names else None}
            for r in sorted(rows, key=lambda r: (r["activity_date"], r["post_count"]), reverse=True)]


def _campaign_rows(rows: list[dict], names: dict[str, str]) -> list[dict]:
    per: dict[str, dict] = {}
    for r in rows:
        c = per.setdefault(r["campaign"], {"campaign": r["campaign"], "posts": 0, "authors": 0, "reposts": 0,
                                           "sentiment_sum": 0.0, "sentiment_n": 0, "wards": set(), "days": 0})
        c["posts"] += r["post_count"]
        c["authors"] = max(c["authors"], r["author_count"])
        c["reposts"] += r["repost_count"]
        c["days"] += 1
        if r["mean_sentiment"] is not None:
            c["sentiment_sum"] += r["mean_sentiment"] * r["post_count"]
            c["sentiment_n"] += r["post_count"]
        c["wards"].update(r["ward_ids"] or [])
    return [{**c, "sentiment": round(c["sentiment_sum"] / c["sentiment_n"], 2) if c["sentiment_n"] else None,
             "ward_names": ", ".join(sorted(names.get(w, w) for w in c["wards"])) or "—"}
            for c in sorted(per.values(), key=lambda c: -c["posts"])]


def render(data: ReportData) -> str:
    """The city page alone (``index.html``)."""
    return render_pages(data)["index.html"]
