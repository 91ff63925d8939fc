"""The built-in simulator's command line for a vehicle: where it stands and what it physically is.

The simulator (sim/, a peer that does not import groundctl) is told the airframe's physical make-up
-- mass, rotors, drag area, battery -- and the air it flies in, never groundctl's efficiency figures or
calibration: its power comes from its own model, so that a prediction agreeing with it means something.
"""

from __future__ import annotations

from groundctl.core.fleet import Airframe, Hub

# how far round a landing zone its stated ground elevation holds, in the simulator
ZONE_GROUND_RADIUS_M = 150.0


def sim_vehicle_args(hub: Hub, airframe: Airframe, payload_kg: float) -> list[str]:
    a = airframe
    return [f"--home={hub.lat},{hub.lon},{hub.elevation_m},{hub.heading_deg}", "--payload-kg", str(payload_kg),
            "--battery-wh", str(a.battery_wh), "--mass-kg", str(a.empty_mass_kg), "--rotors", str(a.rotor_count),
            "--rotor-diameter-m", str(a.rotor_diameter_m), "--drag-area-m2", str(a.drag_area_m2)]


def sim_airframe_args(plan, weather=None) -> list[str]:
    """For a plan: its hub, airframe and parcel, the zone's ground where it is not the hub's (the
    simulator's ground is flat at home otherwise), and the weather's surface wind and temperature."""
    args = sim_vehicle_args(plan.hub, plan.airframe, plan.parcel.mass_kg)
    if abs(plan.zone_ground_rel_home_m) > 0.1:
        z = plan.zone
        args.append(f"--terrain={z.lat},{z.lon},{ZONE_GROUND_RADIUS_M},{plan.zone_ground_rel_home_m}")
    if weather is not None:
        low = weather.wind_at(10)
        if low is not None:
            args += ["--wind-mps", str(low.speed_mps), "--wind-dir-deg", str(low.dir_deg or 0)]
        if weather.temp_c is not None:
            args += ["--temp-c", str(weather.temp_c)]
    return args
