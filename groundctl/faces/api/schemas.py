"""Request bodies. Responses are plain dicts built by the service; their shapes are documented in README."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from groundctl.core.plan import Parcel


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RecipientIn(_In):
    name: str = Field(min_length=1, max_length=100)
    contact: str | None = Field(default=None, max_length=200)


class ZoneIn(_In):
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90, description="centre, WGS84")
    lon: float = Field(ge=-180, le=180, description="centre, WGS84")
    clear_radius_m: float = Field(gt=0, le=500, description="radius kept clear of people and obstacles")
    elevation_m: float | None = Field(default=None, ge=-500, le=9000, description="ground AMSL; hub's if unknown")
    polygon: dict[str, Any] | None = Field(default=None, description="optional outline: a GeoJSON Polygon (lon, lat)")
    instructions: str | None = Field(default=None, max_length=2000)
    contact: str | None = Field(default=None, max_length=200)


class DeliveryIn(_In):
    zone_id: int = Field(ge=1, le=2**62)
    parcel: Parcel
    hub: str | None = Field(default=None, min_length=1, max_length=100, description="default: the zone's hub")
    method: Literal["payload_place", "gripper", "winch"] | None = None


class DispatchIn(_In):
    vehicle: str | None = Field(default=None, min_length=1, max_length=100,
                                description="default: an idle vehicle of the planned airframe at the hub")
    force: bool = Field(default=False, description="attended drop: fly although the recipient has not confirmed "
                        "they will be there (otherwise 409)")


class AbortIn(_In):
    action: Literal["rtl", "land"] = "rtl"
