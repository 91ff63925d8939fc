"""Energy per delivery phase from the battery monitor's running total."""

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.protocol.energy_log import EnergyLog


def mission():
    wp = C.NAV_WAYPOINT
    return [MissionItem(wp, 0, lat=1, lon=1), MissionItem(C.NAV_TAKEOFF, 3), MissionItem(wp, 3, lat=1, lon=2),
            MissionItem(C.NAV_PAYLOAD_PLACE, 3, lat=1, lon=3), MissionItem(wp, 3, lat=1, lon=2),
            MissionItem(C.NAV_LAND, 3, lat=1, lon=1)]


def test_each_increase_is_booked_to_the_phase_it_happened_in():
    log = EnergyLog(mission())
    log.start(10.0)
    for phase, seq, wh, home in [("taking_off", 1, 12.0, 0), ("en_route", 2, 20.0, 500), ("at_zone", 3, 22.0, 900),
                                 ("released", 3, 25.0, 900), ("returning", 4, 30.0, 500),
                                 ("returning", 5, 33.0, 400),  # NAV_LAND current, still cruising home
                                 ("returning", 5, 34.0, 5), ("landed", 5, 35.0, 0), ("landed", 5, 99.0, 0)]:
        log.update(phase, seq, wh, home)
    assert log.by_phase == {"climb": 2.0, "out": 8.0, "drop": 5.0, "back": 8.0, "landing": 2.0}
    assert log.done and log.used_wh == 25.0  # nothing after the landing counts


def test_a_monitor_reset_is_not_negative_energy():
    log = EnergyLog(mission())
    log.start(50.0)
    log.update("en_route", 2, 60.0)
    log.update("en_route", 2, 3.0)  # the autopilot rebooted: its total starts again from 0
    assert log.by_phase["out"] == 13.0


def test_no_battery_monitor_means_no_figure():
    log = EnergyLog(mission())
    log.start(None)
    log.update("en_route", 2, None)
    assert log.used_wh is None and not log.by_phase
