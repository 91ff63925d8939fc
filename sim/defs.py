"""Numbers shared by the simulated copter's parts: mode numbers, fence types,
mission states. Kept apart so that no part imports another to learn a constant."""

from __future__ import annotations

G = 9.80665

# copter mode numbers (ArduCopter/mode.h)
STABILIZE, ACRO, ALT_HOLD, AUTO, GUIDED, LOITER, RTL, CIRCLE = 0, 1, 2, 3, 4, 5, 6, 7
LAND, POSHOLD, BRAKE, SMART_RTL = 9, 16, 17, 21
MODE_NAMES = {0: "STABILIZE", 1: "ACRO", 2: "ALT_HOLD", 3: "AUTO", 4: "GUIDED", 5: "LOITER",
              6: "RTL", 7: "CIRCLE", 9: "LAND", 16: "POSHOLD", 17: "BRAKE", 21: "SMARTRTL"}
REQUIRES_GPS = {AUTO, GUIDED, LOITER, RTL, CIRCLE, POSHOLD, BRAKE, SMART_RTL}
MANUAL_THROTTLE = {STABILIZE, ACRO}
# modes whose Mode::allows_arming() is true for a GCS arm (AUTO depends on AUTO_OPTIONS)
ARMABLE = {STABILIZE, ACRO, ALT_HOLD, GUIDED, LOITER, POSHOLD, CIRCLE}
USER_TAKEOFF = {GUIDED, LOITER, ALT_HOLD, POSHOLD}

# AC_Fence types
FENCE_ALT_MAX, FENCE_CIRCLE, FENCE_POLYGON, FENCE_ALT_MIN = 1, 2, 4, 8
FENCE_NAMES = ["Max Alt", "Circle", "Polygon", "Min Alt"]

MISSION_STOPPED, MISSION_RUNNING, MISSION_COMPLETE = 0, 1, 2

PARCEL_HANG_M = 0.3       # parcel bottom below the skids when held in the gripper
