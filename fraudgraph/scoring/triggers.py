"""When a customer is scored: the one rule, read per event by the live consumer and its bulk replay and
over a whole link-event table by training (whose examples are the moments the consumer decides).

An event triggers a score when its type is in ``consumer.score_on``, or when it is a login that brings a
device or IP the customer had never used and ``login_new_identifier`` is in ``score_on``.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

LOGIN_NEW_IDENTIFIER = "login_new_identifier"
NEW_IDENTIFIER_KINDS = ("device", "ip")  # the kinds whose first use by a customer makes a login count


def triggers_score(event_type: str, brings_new_device_or_ip: bool, score_on: Collection[str]) -> bool:
    """Does an event make the consumer score its customer? Its type is in ``score_on``, or it is a login
    that brings a device or IP the customer had never used (``login_new_identifier``)."""
    if event_type in score_on:
        return True
    return event_type == "login" and brings_new_device_or_ip and LOGIN_NEW_IDENTIFIER in score_on


def decision_points(link_events: pd.DataFrame, score_on: Collection[str]) -> pd.DataFrame:
    """The moments the live consumer scores a customer, from the link-event table (hashed identity events:
    ``event_id``, ``customer_id``, ``kind``, ``value_hash``, ``ts``, ``event_type``).

    One row per event (``event_id``, ``customer_id``, ``ts``, ``event_type``) for which
    :func:`triggers_score` holds, an event bringing a new device or IP when it is the first event of one
    of its device or IP links. Sorted by time.
    """
    ev = link_events[["event_id", "customer_id", "kind", "value_hash", "ts", "event_type"]]
    by_event = ev.drop_duplicates("event_id")
    ordered = ev.sort_values(["ts", "event_id"], kind="stable")
    firsts = ordered.drop_duplicates(["customer_id", "kind", "value_hash"])
    brings_new = by_event["event_id"].isin(set(firsts.loc[firsts["kind"].isin(NEW_IDENTIFIER_KINDS), "event_id"]))
    rule = {(t, new): triggers_score(t, new, score_on) for t, new in set(zip(by_event["event_type"], brings_new))}
    keep = [rule[(t, new)] for t, new in zip(by_event["event_type"], brings_new)]
    out = by_event.loc[keep, ["event_id", "customer_id", "ts", "event_type"]]
    return out.sort_values(["ts", "event_id"], kind="stable").reset_index(drop=True)
