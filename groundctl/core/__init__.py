"""Pure, synchronous core: geometry, airspace, routing, energy, weather, preflight, missions."""
