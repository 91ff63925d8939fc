"""Runtime: asyncio MAVLink links, vehicle sessions, delivery flights, the store."""
