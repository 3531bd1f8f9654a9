"""The reply to the resident: "We're on it! Your report number is 72355." under each post of a ticket.

Every post behind a ticket with an id gets a drafted reply in ``ops.resident_replies``. It is
posted only when its source plugin can reply and the city turned replies on for that source
(``replies_enabled: true`` in the city YAML); otherwise the draft waits there, and is posted by
the first run after replies are turned on. Reposts get none: their author did not report it.
"""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb

from social311.integrations.sources.base import SourcePlugin
from social311.integrations.sources.polling import ReplyOutcomeUnknown
from social311.orchestration.quality import sql_check
from social311.orchestration.resources import CityResource
from social311.records import Post
from social311.warehouse import connect, insert_many

TICKET_LEDGER = dg.AssetKey(["ops", "ticket_ledger"])
RESIDENT_REPLIES = dg.AssetKey(["ops", "resident_replies"])

#: Posts still owed a reply: behind a ticket that has an id, no reply sent yet, not a repost.
_OWED = """
    select r.post_id, r.source, r.native_id, r.created_at, l.incident_id, l.service_request_id, rr.state
    from ops.ticket_ledger l
    join ops.incident_posts ip using (incident_id)
    join raw.posts r using (post_id)
    left join ops.resident_replies rr using (post_id)
    where l.state in ('submitted', 'linked') and l.service_request_id is not null
      and r.repost_of is null and coalesce(rr.state, '') <> 'sent'
    order by r.created_at, r.post_id
"""


def reply_text(service_request_id: str) -> str:
    """The words the resident reads; nothing from their post is quoted back."""
    return f"We're on it! Your report number is {service_request_id}."


def send_replies(con: duckdb.DuckDBPyConnection, senders: dict[str, SourcePlugin], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> dict[str, int]:
    """Draft the owed replies and post those whose source is in ``senders``; returns counts.

    Exactly once: the row is ``sending`` (durable) before the platform sees anything. A row left
    ``sending`` (the run died) or ``in_doubt`` (the answer was lost) is, on a platform with an
    idempotency key, simply sent again (the platform returns the first reply); elsewhere the
    plugin first *reads back* the city account's replies under the post (:meth:`find_reply`,
    the reply text carries the request id): found -> ``sent`` with that id; provably absent ->
    posted; unreadable -> stays ``in_doubt`` (never re-posted blind).

    Caps: ``max_replies_per_run`` and ``max_replies_per_minute`` (a sliding 60 s window counted
    in ``ops.reply_attempts``, so a restart respects it); what a cap holds back waits for the
    next run (``deferred``).

    Args:
        con: the warehouse.
        senders: source instance name -> plugin, only for sources with replies enabled.
        clock: the time recorded on drafts and sends (and the window's "now").
    """
    counts = {"drafted": 0, "sent": 0, "failed": 0}
    posted: dict[str, int] = {}
    con.execute("delete from ops.reply_attempts where attempted_at < ?", [clock() - timedelta(days=1)])
    for post_id, source, native_id, created_at, incident_id, request_id, previous in con.execute(_OWED).fetchall():
        sender = senders.get(source)
        text = sender_reply_text(sender, request_id)
        # Without a sender nothing is learnt: a reply in doubt or failed keeps that state.
        state, reply_id, error, sent_at = previous or "drafted", None, None, None

        def record(state: str) -> None:
            insert_many(con, """
                insert into ops.resident_replies values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                on conflict (post_id) do update set service_request_id = excluded.service_request_id,
                    reply_text = excluded.reply_text, state = excluded.state, reply_id = excluded.reply_id,
                    last_error = excluded.last_error, sent_at = excluded.sent_at""",
                [(post_id, source, incident_id, request_id, text, state, reply_id, error, clock(), sent_at)])

        if sender is not None:
            # Only what the plugin needs to address the reply: the post's ids, never its text.
            post = Post(post_id=post_id, source=source, native_id=native_id, text="-", created_at=created_at)
            state, reply_id, error, sent_at = _reply_once(con, sender, post, text, request_id, previous,
                                                          posted, counts, record, clock)
        counts[state] = counts.get(state, 0) + 1
        record(state)
    return counts


def _reply_once(con: duckdb.DuckDBPyConnection, sender: SourcePlugin, post: Post, text: str, request_id: str,
                previous: str | None, posted: dict[str, int], counts: dict[str, int],
                record: Callable[[str], None], clock: Callable[[], datetime]) -> tuple[str, str | None, str | None, datetime | None]:
    """Post one reply at most once; returns (state, reply_id, error, sent_at)."""
    dedup = getattr(sender, "reply_dedup_on_platform", False)
    known = "failed" if previous == "failed" else "drafted"
    if previous in ("sending", "in_doubt") and not dedup:
        # A run died between posting and recording, or the answer was lost: the reply may be out.
        if not getattr(sender, "reply_read_back", False):
            return "in_doubt", None, "a run stopped while this reply was being posted; check the platform", None
        try:
            found = sender.find_reply(post, request_id)
        except Exception as exc:  # noqa: BLE001 - cannot see: stays in doubt, never posted blind
            return "in_doubt", None, f"read-back failed, retried next run: {type(exc).__name__}: {exc}"[:1000], None
        if found:
            counts["read_back"] = counts.get("read_back", 0) + 1
            return "sent", str(found), None, clock()
        known = "drafted"  # read back: not on the platform, so it may be posted
    source = post.source
    config = getattr(sender, "config", None)
    per_run = getattr(config, "max_replies_per_run", None)
    per_minute = getattr(config, "max_replies_per_minute", None)
    if per_run is not None and posted.get(source, 0) >= per_run:
        counts["deferred"] = counts.get("deferred", 0) + 1
        return known, None, "deferred by max_replies_per_run", None
    if per_minute is not None:
        recent = con.execute("select count(*) from ops.reply_attempts where source = ? and attempted_at > ?",
                             [source, clock() - timedelta(seconds=60)]).fetchone()[0]
        if recent >= per_minute:
            counts["deferred"] = counts.get("deferred", 0) + 1
            return known, None, f"deferred by max_replies_per_minute ({per_minute})", None
    record("sending")  # the intent is durable before the platform sees anything
    con.execute("insert into ops.reply_attempts values (?, ?, ?)", [source, post.post_id, clock()])
    posted[source] = posted.get(source, 0) + 1
    try:
        return "sent", sender.reply(post, text), None, clock()
    except Exception as exc:  # noqa: BLE001 - a failed reply is recorded and retried next run
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if not dedup and (isinstance(exc, ReplyOutcomeUnknown) or _maybe_delivered(exc)):
            return "in_doubt", None, error, None  # the platform may have acted: read back before any resend
        return "failed", None, error, None


def sender_reply_text(sender: SourcePlugin | None, request_id: str) -> str:
    """The city's template for this source (``reply_template`` with ``{request_id}``), else the default."""
    template = getattr(getattr(sender, "config", None), "reply_template", None)
    return template.format(request_id=request_id) if template else reply_text(request_id)


def _maybe_delivered(exc: Exception) -> bool:
    """True for failures after which the platform may have acted (timeouts, lost answers, 5xx)."""
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    return any(word in name or word in text for word in ("timeout", "connection", "remotedisconnected", "503", "502", "500"))


@dg.asset(key=RESIDENT_REPLIES, deps=[TICKET_LEDGER], group_name="ticketing", compute_kind="python")
def resident_replies(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Replies telling residents their report number, drafted per post and sent where enabled."""
    cfg = city.load()
    enabled = {ref.instance_name for ref in cfg.sources if ref.replies_enabled}
    senders = {p.instance_name: p for p in city.sources() if p.instance_name in enabled and p.supports_reply}
    for name in sorted(enabled - set(senders)):
        context.log.warning(f"replies are enabled for source {name!r}, but its plugin cannot reply")
    with connect(cfg.duckdb_path) as con:
        counts = send_replies(con, senders)
        states = dict(con.execute("select state, count(*) from ops.resident_replies group by 1").fetchall())
    return dg.MaterializeResult(metadata={**{f"this_run_{k}": v for k, v in counts.items()},
                                          **{f"total_{k}": v for k, v in states.items()}})


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[resident_replies],
        asset_checks=[
            sql_check(asset=RESIDENT_REPLIES, name="replies_name_the_filed_request",
                      description="Every reply names the request id the ledger recorded for its incident.",
                      query="select r.post_id from ops.resident_replies r join ops.ticket_ledger l using (incident_id) "
                            "where r.service_request_id is distinct from l.service_request_id "
                            "or instr(r.reply_text, r.service_request_id) = 0"),
        ],
    )
