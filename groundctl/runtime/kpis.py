"""Operator KPIs, derived from the stored events and each flight's own report.

A success is a clean delivery: one with an incident (a fence breach, a failsafe, a used reserve) is
not, and incidents are a KPI of their own; energy is predicted (as the verdict had it) against used,
per airframe.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta

from sqlalchemy import select

from groundctl.core.geo import geodesic_distance_m
from groundctl.runtime.handoff_tables import Confirmation
from groundctl.runtime.store import Delivery, Event, Store, utcnow


def kpis(store: Store, since: datetime | None, until: datetime | None, *, on_time_grace_s: float,
         unconfirmed_after_s: float = 24 * 3600.0, now: datetime | None = None) -> dict:
    """Operator KPIs over the deliveries dispatched in a period (dispatch time, UTC)."""
    now = now or utcnow()
    with store.session() as s:
        q = select(Event.delivery_id, Event.time, Event.data).where(Event.kind == "dispatched")
        if since is not None:
            q = q.where(Event.time >= since)
        if until is not None:
            q = q.where(Event.time < until)
        dispatched = {row[0]: row for row in s.execute(q)}
        ids = list(dispatched)
        evs: dict[int, dict[str, Event]] = {i: {} for i in ids}
        if ids:
            for e in s.scalars(select(Event).where(Event.delivery_id.in_(ids)).order_by(Event.id)):
                evs[e.delivery_id].setdefault(e.kind, e)
        rows = list(s.scalars(select(Delivery).where(Delivery.id.in_(ids)))) if ids else []
        zones = {d.id: d.zone for d in rows}
        answers = {c.delivery_id: (c.status, c.created_at, c.resolved_at is not None)
                   for c in s.scalars(select(Confirmation).where(Confirmation.delivery_id.in_(ids)))} if ids else {}
        airframe_of = {d.id: d.airframe for d in rows}
    finished = [i for i in ids if {"report", "failed"} & set(evs[i])]
    outcome = {i: _outcome_of(evs[i]) for i in ids}
    report = {i: ((evs[i]["report"].data or {}) if "report" in evs[i] else {}) for i in ids}
    # the parcel reached the recipient (with or without incidents on the way, wherever the drone ended)
    delivered = [i for i in ids if report[i].get("parcel") == "delivered"
                 or (not report[i] and "released" in evs[i] and "drop_failed" not in evs[i])]
    clean = [i for i in finished if outcome[i] == "delivered"]
    by_outcome: dict[str, int] = {}
    for i in finished:
        by_outcome[outcome[i] or "unknown"] = by_outcome.get(outcome[i] or "unknown", 0) + 1
    incident_kinds: dict[str, dict[str, int]] = {}
    with_incidents = 0
    for i in finished:
        incs = report[i].get("incidents") or []
        with_incidents += bool(incs)
        for inc in incs:
            k = incident_kinds.setdefault(inc.get("kind", "unknown"), {"deliveries": 0, "count": 0})
            k["deliveries"] += 1
            k["count"] += int(inc.get("count") or 1)
    on_time = 0
    dists, energies = [], []
    for i in delivered:
        promised = dispatched[i][2].get("eta_promised")
        rel = evs[i]["released"]
        if promised and rel.time <= datetime.fromisoformat(promised) + timedelta(seconds=on_time_grace_s):
            on_time += 1
        rep = evs[i].get("report")
        lat, lon = rel.lat, rel.lon
        if rep is not None and "drop_lat" in (rep.data or {}) and (rep.data or {}).get("drop_lat") is None:
            continue  # the report does not vouch for a drop position (released during a link outage)
        if rep is not None and (rep.data or {}).get("drop_lat") is not None:
            lat, lon = rep.data["drop_lat"], rep.data["drop_lon"]
        if lat is not None and lon is not None:
            dists.append(geodesic_distance_m(zones[i]["lon"], zones[i]["lat"], lon, lat))
    # predicted (as the verdict had it) against used, per airframe: how far the energy model can be trusted
    by_frame: dict[str, dict[str, float]] = {}
    for i in finished:
        rep = evs[i].get("report")
        wh = (rep.data or {}).get("energy_used_wh") if rep is not None else None
        if wh is not None:
            energies.append(wh)
        en = report[i].get("energy") or {}
        if en.get("complete") and en.get("used_wh") is not None and en.get("predicted_wh"):
            f = by_frame.setdefault(airframe_of.get(i) or "unknown", {"flights": 0, "predicted_wh": 0.0, "used_wh": 0.0})
            f["flights"] += 1
            f["predicted_wh"] += en["predicted_wh"]
            f["used_wh"] += en["used_wh"]
    energy_by_airframe = {name: {"flights": int(f["flights"]), "predicted_wh": round(f["predicted_wh"], 2),
                                 "used_wh": round(f["used_wh"], 2),
                                 "ratio": round(f["used_wh"] / f["predicted_wh"], 3) if f["predicted_wh"] else None}
                          for name, f in sorted(by_frame.items())}
    handoff = _handoff(delivered, evs, answers, now, unconfirmed_after_s)
    # each delivery is dispatched once, so a success is a success on the first attempt; a parcel that
    # comes home and is sent again is a new delivery and counts as a failed first attempt here. Only a
    # clean delivery is a success: one with a fence breach, a failsafe or a used reserve is not.
    return {
        "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
        "deliveries": len(ids), "finished": len(finished), "delivered": len(delivered),
        "delivered_clean": len(clean),
        "first_attempt_success_rate": round(len(clean) / len(finished), 4) if finished else None,
        "outcomes": by_outcome,
        "incidents": {"rate": round(with_incidents / len(finished), 4) if finished else None,
                      "deliveries_with_incidents": with_incidents, "by_kind": incident_kinds},
        "on_time_rate": round(on_time / len(delivered), 4) if delivered else None,
        "on_time_grace_s": on_time_grace_s,
        "median_drop_distance_m": round(statistics.median(dists), 2) if dists else None,
        "energy_per_delivery_wh": round(statistics.fmean(energies), 2) if energies else None,
        "energy_by_airframe": energy_by_airframe,
        "aborted": sum(1 for i in ids if "aborted" in evs[i]),
        "failed": sum(1 for i in ids if "failed" in evs[i]),
        **handoff,
    }


def _handoff(delivered: list[int], evs: dict, answers: dict, now: datetime, unconfirmed_after_s: float) -> dict:
    """The recipients' side, over delivered parcels: how many said they got it, how many disputed, how long
    they took to confirm, and how many have said nothing for longer than the configured time."""
    received = [i for i in delivered if answers.get(i, ("",))[0] == "received"]
    disputed = [i for i in delivered if i in answers and answers[i][0] != "received"]
    waits = sorted((answers[i][1] - evs[i]["released"].time).total_seconds() for i in received if "released" in evs[i])
    overdue = sum(1 for i in delivered if i not in answers and "released" in evs[i]
                  and (now - evs[i]["released"].time).total_seconds() >= unconfirmed_after_s)
    by_status: dict[str, int] = {}
    for i in disputed:
        by_status[answers[i][0]] = by_status.get(answers[i][0], 0) + 1
    n = len(delivered)
    return {
        "confirmation_rate": round(len(received) / n, 4) if n else None,
        "dispute_rate": round(len(disputed) / n, 4) if n else None,
        "confirmed": len(received), "disputed": len(disputed), "disputes_by_status": by_status,
        "disputes_open": sum(1 for i in disputed if not answers[i][2]),
        "time_to_confirmation_s": {
            "median": round(statistics.median(waits), 1) if waits else None,
            "p90": round(waits[math.ceil(0.9 * len(waits)) - 1], 1) if waits else None,  # nearest rank
            "confirmations": len(waits)},
        "unconfirmed_overdue": overdue, "unconfirmed_after_s": unconfirmed_after_s,
    }


def _outcome_of(evs: dict) -> str | None:
    """A delivery's outcome: its report's, or `failed` for one that failed without a report."""
    rep = evs.get("report")
    if rep is not None:
        return (rep.data or {}).get("outcome") or rep.message or None
    return "failed" if "failed" in evs else None
