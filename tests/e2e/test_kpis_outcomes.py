"""KPIs from what flights report: first-attempt success counts clean deliveries only, incidents are a
KPI of their own, and the API view of a delivery says where the parcel is (issue 8, item 5).

The reports are DeliveryReport.to_dict() as the service stores them after a flight (Service._fly)."""

from datetime import datetime, timedelta, timezone

from groundctl.faces.api import Settings
from groundctl.protocol.events import DeliveryEvent, DeliveryReport, Incident
from groundctl.runtime.services import Service
from groundctl.runtime.store import Delivery, derive_state

ZONE = {"lat": -35.3569483, "lon": 149.193836, "name": "clinic-east"}
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)


def _flight(svc: Service, report: DeliveryReport, kinds: list[str]) -> int:
    store = svc.store
    with store.session() as s:
        d = Delivery(recipient_id=1, zone_id=1, zone=ZONE, parcel={"mass_kg": 1.0}, airspace_version=1,
                     state="planned", created_at=T0)
        s.add(d)
        s.flush()
        store.append(s, d.id, DeliveryEvent("dispatched", time=T0, data={"eta_promised": (T0 + timedelta(minutes=20)).isoformat()}))
        for i, k in enumerate(kinds):
            lat, lon = (ZONE["lat"], ZONE["lon"]) if k == "released" else (None, None)
            store.append(s, d.id, DeliveryEvent(k, time=T0 + timedelta(minutes=i), lat=lat, lon=lon))
        data = report.to_dict()
        data.pop("events")
        store.append(s, d.id, DeliveryEvent("report", time=T0 + timedelta(minutes=30), message=report.outcome, data=data))
        return d.id


def _inc(kind, count=1, worst=None, unit=""):
    return Incident(kind=kind, first=T0, last=T0 + timedelta(seconds=30), count=count, duration_s=30.0, worst=worst,
                    unit=unit, open=False)


def test_first_attempt_success_counts_clean_deliveries_and_incidents_have_their_own_kpi(tmp_path):
    svc = Service(Settings(data_dir=tmp_path, operator_keys=("k",)))
    flown = ["taking_off", "en_route", "at_zone", "released", "returning", "landed"]
    at_zone = dict(drop_lat=ZONE["lat"], drop_lon=ZONE["lon"], drop_distance_m=0.5)
    clean = _flight(svc, DeliveryReport("delivered", parcel="delivered", **at_zone), flown)
    breached = _flight(svc, DeliveryReport("delivered_with_incidents", parcel="delivered", **at_zone,
                                           incidents=[_inc("fence_breach", 88, 12.5, "m"), _inc("reserve_used", 1, 20.1, "Wh")]),
                       flown)
    away = _flight(svc, DeliveryReport("landed_away", parcel="delivered", **at_zone, end_distance_from_hub_m=1512.0,
                                       end_mode="LAND", incidents=[_inc("failsafe", worst="EKF Failsafe: changed to LAND Mode"),
                                                                   _inc("mode_change", worst="LAND")]),
                   flown)
    jammed = _flight(svc, DeliveryReport("returned_with_parcel", parcel="aboard"),
                     ["taking_off", "en_route", "at_zone", "released", "drop_failed", "returning", "landed"])
    k = svc.reports.kpis(None, None)
    assert k["finished"] == 4 and k["delivered"] == 3 and k["delivered_clean"] == 1
    assert k["first_attempt_success_rate"] == 0.25
    assert k["outcomes"] == {"delivered": 1, "delivered_with_incidents": 1, "landed_away": 1, "returned_with_parcel": 1}
    inc = k["incidents"]
    assert inc["rate"] == 0.5 and inc["deliveries_with_incidents"] == 2
    assert inc["by_kind"]["fence_breach"] == {"deliveries": 1, "count": 88}
    assert set(inc["by_kind"]) == {"fence_breach", "reserve_used", "failsafe", "mode_change"}

    # the API view: released is not delivered, and a failed drop has no proof of delivery
    view = svc.deliveries.get(None, jammed)
    assert view["delivered"] is False and view["proof_of_delivery"] is None and view["outcome"] == "returned_with_parcel"
    view = svc.deliveries.get(None, breached)
    assert view["delivered"] is True and view["outcome"] == "delivered_with_incidents"
    assert [i["kind"] for i in view["incidents"]] == ["fence_breach", "reserve_used"]
    assert view["incidents"][0]["count"] == 88 and view["incidents"][0]["worst"] == 12.5
    view = svc.deliveries.get(None, away)
    assert view["end"]["end_distance_from_hub_m"] == 1512.0 and view["end"]["end_mode"] == "LAND"
    assert svc.deliveries.get(None, clean)["incidents"] == []


def test_state_of_a_lost_or_crashed_vehicle():
    assert derive_state(["dispatched", "taking_off", "en_route", "link_lost", "lost"]) == "lost"
    assert derive_state(["dispatched", "taking_off", "crashed", "landed"]) == "crashed"
    assert derive_state(["dispatched", "taking_off", "en_route", "landed"]) == "landed"
