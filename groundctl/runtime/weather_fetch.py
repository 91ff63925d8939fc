"""Forecasts over HTTP from an Open-Meteo style service, with timeouts, errors by kind and a small cache.

The network and the clock live here; parsing is core's (groundctl.core.weather.parse_open_meteo).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import httpx

from groundctl.core.weather import Weather, parse_open_meteo
from groundctl.errors import GroundctlError, InputError

OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
HOURLY_FIELDS = ("wind_speed_10m,wind_speed_80m,wind_speed_120m,wind_direction_10m,wind_direction_80m,"
                 "wind_direction_120m,wind_gusts_10m,precipitation,visibility,temperature_2m,"
                 # what grounds a drone besides wind: low cloud (with the dew point to estimate its base)
                 # and the present weather (snow, freezing drizzle, fog) as a WMO code
                 "dew_point_2m,cloud_cover_low,weather_code")


class WeatherServiceError(GroundctlError):
    """The forecast service could not give a usable forecast. `kind` says why: timeout, connect,
    status, junk."""

    status = 502
    title = "weather service unavailable"

    def __init__(self, message: str, *, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        super().__init__(message, field="forecast_url")


def _nearest_hour(now: datetime) -> datetime:
    now = now.astimezone(timezone.utc)
    base = now.replace(minute=0, second=0, microsecond=0)
    # a half-past tie rounds down, as parse_open_meteo picks the earlier of two equally near hours
    return base + timedelta(hours=1) if now - base > timedelta(minutes=30) else base


class ForecastClient:
    """Fetches and caches forecasts. One instance per process is enough; it is safe to share between
    tasks on one event loop.

    The cache key is (lat, lon rounded to 0.01°, about 1 km; the hour nearest `now`), so every flight
    from one hub within the same hour shares one request; entries expire after ttl_s by the monotonic
    clock (a forecast for the same hour is re-issued by the service every hour or so).
    """

    def __init__(self, base_url: str = OPEN_METEO_URL, *, timeout_s: float = 5.0, ttl_s: float = 900.0,
                 max_entries: int = 256, clock: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"must be an http(s) URL, got {base_url!r}", field="forecast_url")
        if timeout_s <= 0:
            raise InputError("must be positive", field="timeout_s")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._transport = transport
        self._cache: dict[tuple[float, float, datetime], tuple[float, Weather]] = {}
        self.requests = 0  # how many went over the network (for tests and logs)

    def _key(self, lat: float, lon: float, now: datetime) -> tuple[float, float, datetime]:
        return (round(lat, 2), round(lon, 2), _nearest_hour(now))

    def cached(self, lat: float, lon: float, now: datetime) -> Weather | None:
        hit = self._cache.get(self._key(lat, lon, now))
        if hit is None or self._clock() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    async def forecast(self, lat: float, lon: float, *, now: datetime) -> Weather:
        """The forecast hour nearest `now` at (lat, lon). Raises WeatherServiceError."""
        if not (-90 <= lat <= 90):
            raise InputError(f"{lat} is not a latitude", field="lat")
        if not (-180 <= lon <= 180):
            raise InputError(f"{lon} is not a longitude", field="lon")
        key = self._key(lat, lon, now)
        hit = self.cached(lat, lon, now)
        if hit is not None:
            return hit
        params = {"latitude": f"{lat:.4f}", "longitude": f"{lon:.4f}", "hourly": HOURLY_FIELDS,
                  "wind_speed_unit": "ms", "timezone": "GMT", "past_days": 1, "forecast_days": 2}
        url = self.base_url
        self.requests += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport) as client:
                r = await client.get(url, params=params)
        except httpx.TimeoutException:
            raise WeatherServiceError(f"{url} gave no answer within {self.timeout_s:g} s", kind="timeout",
                                      url=url) from None
        except httpx.HTTPError as e:
            raise WeatherServiceError(f"cannot reach {url}: {e}", kind="connect", url=url) from None
        if r.status_code != 200:
            reason = ""
            try:
                body = r.json()
                if isinstance(body, dict) and body.get("reason"):
                    reason = f": {body['reason']}"
            except ValueError:
                pass
            raise WeatherServiceError(f"{url} answered HTTP {r.status_code}{reason}", kind="status", url=url)
        try:
            data = r.json()
        except ValueError:
            raise WeatherServiceError(f"{url} answered something that is not JSON "
                                      f"({r.headers.get('content-type', 'no content type')})", kind="junk", url=url) from None
        try:
            weather = parse_open_meteo(data, now=now)
        except InputError as e:
            raise WeatherServiceError(f"{url} answered JSON that is not a forecast ({e})", kind="junk", url=url) from None
        if len(self._cache) >= self.max_entries:
            oldest = min(self._cache, key=lambda k: self._cache[k][0])
            del self._cache[oldest]
        self._cache[key] = (self._clock(), weather)
        return weather

    def forecast_sync(self, lat: float, lon: float, *, now: datetime) -> Weather:
        """For callers without an event loop (the CLI)."""
        return asyncio.run(self.forecast(lat, lon, now=now))
