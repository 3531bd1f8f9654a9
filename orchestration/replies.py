"""The reply to the resident: "We're on it! Your report number is 72355." under each post of a ticket.

Every post behind a ticket with an id gets a drafted reply in ``ops.resident_replies``. It is
posted only when its source plugin can reply and the city turned replies on for that source
(``replies_enabled: true`` in the city YAML); otherwise the draft waits there, and is posted by
the first run after replies are turned on. Reposts get none: their author did not report it.
"""

from collections.abc import Callable
from datetime import datetime, timezone

import dagster as dg
import duckdb

from social311.integrations.sources.base import SourcePlugin
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

    Args:
        con: the warehouse.
        senders: source instance name -> plugin, only for sources with replies enabled.
        clock: the time recorded on drafts and sends.
    """
    counts = {"drafted": 0, "sent": 0, "failed": 0}
    posted: dict[str, int] = {}
    for post_id, source, native_id, created_at, incident_id, request_id, previous in con.execute(_OWED).fetchall():
        sender = senders.get(source)
        text = sender_reply_text(sender, request_id)
        state, reply_id, error, sent_at = "drafted", None, None, None

        def record(state: str) -> None:
            insert_many(con, """
                insert into ops.resident_replies values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                on conflict (post_id) do update set service_request_id = excluded.service_request_id,
                    reply_text = excluded.reply_text, state = excluded.state, reply_id = excluded.reply_id,
                    last_error = excluded.last_error, sent_at = excluded.sent_at""",
                [(post_id, source, incident_id, request_id, text, state, reply_id, error, clock(), sent_at)])

        cap = getattr(getattr(sender, "config", None), "max_replies_per_run", None)
        if sender is not None and previous in ("sending", "in_doubt") and not getattr(sender, "reply_dedup_on_platform", False):
            # A run died between posting and recording: the reply may be out. The platform cannot
            # refuse a second one, so none is sent; an operator checks (never twice).
            state, error = "in_doubt", "a run stopped while this reply was being posted; check the platform"
        elif sender is not None and (cap is None or posted.get(source, 0) < cap):
            # Only what the plugin needs to address the reply: the post's ids, never its text.
            post = Post(post_id=post_id, source=source, native_id=native_id, text="-", created_at=created_at)
            record("sending")  # the intent is durable before the platform sees anything
            posted[source] = posted.get(source, 0) + 1
            try:
                reply_id, state, sent_at = sender.reply(post, text), "sent", clock()
            except Exception as exc:  # noqa: BLE001 - a failed reply is recorded and retried next run
                state, error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
                if not getattr(sender, "reply_dedup_on_platform", False) and _maybe_delivered(exc):
                    state = "in_doubt"  # the request may have reached the platform: never resend blind
        counts[state] = counts.get(state, 0) + 1
        record(state)
    return counts


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
