"""Client-side checks of ticket attributes against a service definition (OPEN311.md §1.5).

Checking before the POST turns a server's 400 into a clear local message and keeps bad
tickets from costing a round trip; informational (``variable=false``) attributes are dropped.
"""

from __future__ import annotations

from datetime import datetime

from social311.integrations.ticketing.client.models import Attribute, ServiceDefinition


def _problem(attr: Attribute, value: str | list[str]) -> str | None:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if attr.datatype in ("singlevaluelist", "multivaluelist"):
        keys = {v.key for v in attr.values}
        if attr.datatype == "singlevaluelist" and len(values) != 1:
            return f"{attr.code}: exactly one value expected"
        bad = [v for v in values if v not in keys]
        return f"{attr.code}: {bad[0]!r} is not one of {sorted(keys)}" if bad else None
    if len(values) != 1:
        return f"{attr.code}: one value expected"
    text = str(values[0])
    if attr.datatype == "number":
        try:
            float(text)
        except ValueError:
            return f"{attr.code}: {text!r} is not a number"
    elif attr.datatype == "datetime":
        try:
            if datetime.fromisoformat(text).tzinfo is None:
                return f"{attr.code}: datetime needs a timezone"
        except ValueError:
            return f"{attr.code}: {text!r} is not an ISO 8601 datetime"
    elif attr.datatype == "string" and ("\n" in text or "\r" in text):
        return f"{attr.code}: a string attribute is one line"
    return None


def check_attributes(
    definition: ServiceDefinition, values: dict[str, str | list[str]]
) -> tuple[dict[str, str | list[str]], list[str]]:
    """Check ticket attributes against a definition.

    Args:
        definition: the service's definition (GET services/{code}).
        values: attribute code -> value (a list for multivaluelist).

    Returns:
        ``(to_send, problems)``: the values worth sending (informational and unknown codes
        dropped) and one message per missing, malformed or out-of-list value.
    """
    known = {a.code: a for a in definition.attributes if a.variable}
    to_send = {code: v for code, v in values.items() if code in known and v not in ("", [], None)}
    problems = [f"{a.code}: required" for a in known.values() if a.required and a.code not in to_send]
    problems += [p for code, v in to_send.items() if (p := _problem(known[code], v))]
    return to_send, problems
