"""Bad airspace and landing-zone input is refused with the feature and the reason; good input loads."""

import copy
import json

import pytest

from groundctl.core.airspace import parse_airspace
from groundctl.core.fleet import LandingZone, parse_fleet, parse_landing_zones, validate_landing_zone
from groundctl.errors import InputError, ValidationErrors

from tests.conftest import MISSIONS

SQUARE = [[149.16, -35.37], [149.18, -35.37], [149.18, -35.35], [149.16, -35.35], [149.16, -35.37]]


def airspace_doc(*zones):
    feats = [{"type": "Feature", "properties": {"kind": "service_area", "name": "area"},
              "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}]
    feats += list(zones)
    return {"type": "FeatureCollection", "features": feats}


def zone(geometry, **props):
    return {"type": "Feature", "properties": {"kind": "no_fly", "name": "z", **props}, "geometry": geometry}


def refused(doc) -> InputError:
    with pytest.raises(InputError) as ei:
        parse_airspace(doc)
    return ei.value


def test_examples_load():
    for d in ("cmac", "muhanga"):
        a = parse_airspace(json.loads((MISSIONS / d / "airspace.geojson").read_text()))
        assert a.zones and a.ceiling_m == 120
        assert a.service_xy.area > 1e7  # tens of km^2, in square metres


def test_unclosed_ring():
    e = refused(airspace_doc(zone({"type": "Polygon", "coordinates": [SQUARE[:-1] + [[149.161, -35.37]]]})))
    assert "not closed" in e.reason and "features[1]" in e.field


def test_self_intersection_names_the_place():
    bow = [[149.16, -35.37], [149.18, -35.35], [149.18, -35.37], [149.16, -35.35], [149.16, -35.37]]
    e = refused(airspace_doc(zone({"type": "Polygon", "coordinates": [bow]})))
    assert e.reason.startswith("self-intersection at (149.17")
    assert e.field == "features[1] (z).geometry.coordinates"


@pytest.mark.parametrize("pos,what", [([200.0, -35.0], "longitude 200.0 out of range"),
                                      ([149.0, -95.0], "latitude -95.0 out of range"),
                                      (["x", 1], "not a finite number"),
                                      ([float("nan"), 1], "not a finite number")])
def test_coordinates_out_of_range(pos, what):
    e = refused(airspace_doc(zone({"type": "Point", "coordinates": pos}, radius_m=100)))
    assert what in e.reason


def test_unknown_property():
    e = refused(airspace_doc(zone({"type": "Point", "coordinates": [149.17, -35.36]}, radius_m=50, colour="red")))
    assert "unknown property 'colour'" in e.reason


@pytest.mark.parametrize("radius", [-5, 0, "big"])
def test_bad_radius(radius):
    e = refused(airspace_doc(zone({"type": "Point", "coordinates": [149.17, -35.36]}, radius_m=radius)))
    assert e.field.endswith("radius_m")


def test_point_without_radius():
    assert "needs radius_m" in refused(airspace_doc(zone({"type": "Point", "coordinates": [149.17, -35.36]}))).reason


def test_empty_collection_and_missing_service_area():
    assert "empty" in refused({"type": "FeatureCollection", "features": []}).reason
    doc = airspace_doc()
    doc["features"][0]["properties"]["kind"] = "no_fly"
    doc["features"][0]["properties"]["name"] = "only"
    assert "no feature with kind 'service_area'" in refused(doc).reason


def test_malformed_geojson():
    assert "FeatureCollection" in refused({"type": "Feature"}).reason
    assert "FeatureCollection" in refused([1, 2]).reason
    e = refused(airspace_doc(zone({"type": "LineString", "coordinates": [[149.1, -35.3], [149.2, -35.3]]})))
    assert "'LineString' not allowed" in e.reason


def test_altitude_band_must_be_ordered():
    e = refused(airspace_doc(zone({"type": "Point", "coordinates": [149.17, -35.36]}, radius_m=50, floor_m=100, ceiling_m=50)))
    assert "must be above floor_m" in e.reason


def test_zone_above_flight_band_does_not_block():
    a = parse_airspace(airspace_doc(
        zone({"type": "Point", "coordinates": [149.17, -35.36]}, radius_m=200, floor_m=800, ceiling_m=2000, altitude_ref="amsl")))
    assert a.blocking(top_agl_m=70, ground_amsl_m=584) == []  # band starts 216 m above ground
    assert a.blocking(top_agl_m=70, ground_amsl_m=750) == [0]  # on higher ground it does block


def test_fleet_errors_name_the_field():
    with pytest.raises(InputError) as ei:
        parse_fleet({"hub": [{"name": "h", "lat": 0, "lon": 0, "elevation_m": 0}],
                     "airframe": [{"name": "a", "empty_mass_kg": 5, "max_payload_kg": 1, "max_takeoff_mass_kg": 4,
                                   "battery_wh": 100}]})
    assert "max_takeoff_mass_kg must exceed empty_mass_kg" in str(ei.value)
    with pytest.raises(InputError) as ei:
        parse_fleet({"vehicle": [{"name": "v", "airframe": "nope", "hub": "nope"}]})
    assert "unknown hub" in str(ei.value)
    with pytest.raises(InputError) as ei:
        parse_fleet({"hub": [{"name": "h", "lat": 91, "lon": 0, "elevation_m": 0}]})
    assert ei.value.field == "fleet.hub.0.lat"


def test_landing_zone_checks(cmac):
    ops = cmac.fleet.operations
    af = cmac.fleet.airframe("quad-x-delivery")
    good = cmac.zone("clinic-east")
    validate_landing_zone(good, cmac.airspace, ops, af)
    with pytest.raises(InputError) as ei:
        validate_landing_zone(cmac.zone("helipad-roof"), cmac.airspace, ops, af)
    assert "Hospital helipad" in ei.value.reason
    outside = LandingZone(name="far", lat=-35.0, lon=149.0, clear_radius_m=10)
    with pytest.raises(InputError) as ei:
        validate_landing_zone(outside, cmac.airspace, ops, af)
    assert "outside the service area" in ei.value.reason
    # two problems at once: too small and inside a zone -> both reported
    small_bad = cmac.zone("helipad-roof").model_copy(update={"clear_radius_m": 1.0})
    with pytest.raises(ValidationErrors) as ei:
        validate_landing_zone(small_bad, cmac.airspace, ops, af)
    fields = [e.field for e in ei.value.errors]
    assert "zone.clear_radius_m" in fields and "zone.position" in fields


def test_landing_zone_file_errors():
    doc = json.loads((MISSIONS / "cmac" / "zones.geojson").read_text())
    bad = copy.deepcopy(doc)
    bad["features"][0]["properties"]["clear_radius_m"] = -1
    with pytest.raises(InputError) as ei:
        parse_landing_zones(bad)
    assert "clear_radius_m" in ei.value.field
    dup = copy.deepcopy(doc)
    dup["features"].append(copy.deepcopy(doc["features"][0]))
    with pytest.raises(InputError, match="duplicate"):
        parse_landing_zones(dup)
