// The groundctl map: plain canvas, no tiles, no CDN, so it works on an isolated ground-station network.
// Data comes from /api/v1/map; vehicles move with /api/v1/live/ws. The operator key comes from the form,
// from storage, or from the address fragment (/#key=...): a fragment is never sent to the server, so the
// key stays out of access logs (the server refuses ?key= outright).
"use strict";
(function () {
  const COLORS = {
    bg: "#f4f1ea", area: "#dce8f5", areaEdge: "#3a6ea5", nofly: "#e8a29e", noflyEdge: "#c0392b",
    zone: "#22b14c", zoneEdge: "#14692d", hub: "#1f4e99", route: "#7b3fa0", vehicle: "#ff7f0e", text: "#222",
    restriction: "#f2c94c", restrictionEdge: "#9a6b00", intent: "#1b7fc4",
  };
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const statusEl = document.getElementById("status");
  const vehiclesEl = document.getElementById("vehicles");
  const fragment = new URLSearchParams(location.hash.slice(1));
  let key = fragment.get("key") || localStorage.getItem("groundctl.key") || "";
  if (fragment.get("key")) {
    localStorage.setItem("groundctl.key", key);
    history.replaceState(null, "", location.pathname);  // do not leave the key in the address bar or history
  }
  let data = null;
  const vehicles = new Map();
  let view = null;
  let pending = false;

  function headers() { return key ? { "X-API-Key": key } : {}; }

  async function load() {
    try {
      const r = await fetch("/api/v1/map", { headers: headers() });
      if (r.status === 401 && key) {  // a stale or mistyped key: forget it and ask again
        key = ""; localStorage.removeItem("groundctl.key");
        document.getElementById("keyform").hidden = false;
        return load();
      }
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      data = await r.json();
      for (const v of data.vehicles || []) vehicles.set(v.vehicle, v);
      fit();
      statusEl.textContent = (data.airspace.features[0].properties.name || "airspace") +
        (key ? "" : " (no operator key: zones, routes and vehicles hidden)");
      document.getElementById("keyform").hidden = !!key;
      redraw();
    } catch (e) {
      statusEl.textContent = "cannot load map data: " + e.message;
    }
  }

  // An equirectangular projection scaled by cos(latitude) is accurate to well under a pixel over a
  // delivery area of a few tens of kilometres, and needs no projection library.
  function fit() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!data) return;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    const area = data.airspace.features.find(f => f.properties.kind === "service_area") || data.airspace.features[0];
    eachCoord(area.geometry, (lon, lat) => {
      minX = Math.min(minX, lon); maxX = Math.max(maxX, lon); minY = Math.min(minY, lat); maxY = Math.max(maxY, lat);
    });
    const lat0 = (minY + maxY) / 2, k = Math.cos(lat0 * Math.PI / 180);
    const pad = 30, spanX = (maxX - minX) * k || 1e-3, spanY = (maxY - minY) || 1e-3;
    const s = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
    const ox = (w - spanX * s) / 2, oy = (h - spanY * s) / 2;
    const mPerDeg = 111320;
    view = {
      px: (lon, lat) => [ox + (lon - minX) * k * s, oy + (maxY - lat) * s],
      m: metres => metres / mPerDeg * s,
    };
  }

  function eachCoord(g, f) {
    const walk = c => (typeof c[0] === "number" ? f(c[0], c[1]) : c.forEach(walk));
    if (g && g.coordinates) walk(g.coordinates);
  }

  function pathOf(g) {
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    ctx.beginPath();
    for (const poly of polys) for (const ring of poly) {
      ring.forEach(([lon, lat], i) => { const [x, y] = view.px(lon, lat); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      ctx.closePath();
    }
  }

  function label(text, x, y) {
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = COLORS.text; ctx.fillText(text, x + 7, y - 6);
  }

  function draw() {
    pending = false;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    ctx.fillStyle = COLORS.bg; ctx.fillRect(0, 0, w, h);
    if (!data || !view) return;
    for (const f of data.airspace.features) {
      const p = f.properties, g = f.geometry;
      const nofly = p.kind === "no_fly";
      ctx.fillStyle = nofly ? COLORS.nofly : COLORS.area;
      ctx.strokeStyle = nofly ? COLORS.noflyEdge : COLORS.areaEdge;
      ctx.lineWidth = nofly ? 1.5 : 2;
      if (g.type === "Point") {
        const [x, y] = view.px(g.coordinates[0], g.coordinates[1]);
        ctx.beginPath(); ctx.arc(x, y, view.m(p.radius_m || 0), 0, 2 * Math.PI);
      } else pathOf(g);
      // a zone whose floor is above the ground (an upper band) does not block low flights: draw it fainter
      ctx.globalAlpha = nofly && p.floor_m > 0 ? 0.35 : 1;
      ctx.fill("evenodd"); ctx.stroke();
      ctx.globalAlpha = 1;
      if (nofly) { const c = centre(g); label(p.name, ...view.px(c[0], c[1])); }
    }
    // temporary restrictions: solid while in force, hatched outline while upcoming, with their window
    for (const r of data.restrictions || []) {
      pathOf(r.geometry);
      ctx.fillStyle = COLORS.restriction; ctx.strokeStyle = COLORS.restrictionEdge; ctx.lineWidth = 2;
      ctx.globalAlpha = r.in_force ? 1 : 0.4;
      ctx.setLineDash(r.in_force ? [] : [4, 3]);
      ctx.fill("evenodd"); ctx.stroke();
      ctx.globalAlpha = 1; ctx.setLineDash([]);
      const c = centre(r.geometry);
      label(`${r.name} ${hm(r.start)}-${hm(r.end)}`, ...view.px(c[0], c[1]));
    }
    // operational intents of flights in the air: the corridors of sky each still holds
    ctx.strokeStyle = COLORS.intent; ctx.lineWidth = 1.5;
    for (const it of data.intents || []) {
      for (const v of it.volumes) {
        ctx.beginPath();
        v.outline.forEach(([lon, lat], i) => { const [x, y] = view.px(lon, lat); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
        ctx.closePath(); ctx.stroke();
      }
    }
    ctx.setLineDash([6, 4]); ctx.strokeStyle = COLORS.route; ctx.lineWidth = 2;
    for (const r of data.routes || []) {
      ctx.beginPath();
      r.points.forEach(([lon, lat], i) => { const [x, y] = view.px(lon, lat); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      ctx.stroke();
    }
    ctx.setLineDash([]);
    for (const z of data.zones || []) {
      const [x, y] = view.px(z.lon, z.lat);
      ctx.fillStyle = COLORS.zone; ctx.strokeStyle = COLORS.zoneEdge; ctx.lineWidth = 1.5;
      if (z.polygon) { pathOf(z.polygon); ctx.fill(); ctx.stroke(); }
      // never smaller than a few pixels, or a 5 m zone vanishes at city scale
      ctx.beginPath(); ctx.arc(x, y, Math.max(7, view.m(z.clear_radius_m)), 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      label(z.name, x, y);
    }
    for (const hb of data.hubs || []) {
      const [x, y] = view.px(hb.lon, hb.lat);
      ctx.fillStyle = COLORS.hub; ctx.fillRect(x - 7, y - 7, 14, 14); label("hub " + hb.name, x, y);
    }
    const lines = [];
    for (const v of vehicles.values()) {
      if (v.lat == null || v.lon == null) continue;
      const [x, y] = view.px(v.lon, v.lat);
      ctx.save(); ctx.translate(x, y); ctx.rotate(((v.heading_deg || 0) * Math.PI) / 180);
      ctx.fillStyle = COLORS.vehicle; ctx.strokeStyle = "#7a3a00";
      ctx.beginPath(); ctx.moveTo(0, -10); ctx.lineTo(7, 8); ctx.lineTo(-7, 8); ctx.closePath(); ctx.fill(); ctx.stroke();
      ctx.restore();
      label(`${v.vehicle} ${v.phase}`, x, y);
      lines.push(`${v.vehicle} #${v.delivery ?? "-"} ${v.phase} ${fmt(v.alt_rel_m, "m")} ${fmt(v.groundspeed_mps, "m/s")} ` +
                 `${fmt(v.battery_pct, "%")}${eta(v)}`);
    }
    vehiclesEl.replaceChildren(...lines.map(t => { const d = document.createElement("div"); d.textContent = t; return d; }));
  }

  function eta(v) {
    if (v.eta_to_zone_s != null) return " zone in " + Math.round(v.eta_to_zone_s) + "s";
    return v.eta_s != null ? " home in " + Math.round(v.eta_s) + "s" : "";
  }

  function hm(iso) { const d = new Date(iso); return d.toISOString().slice(11, 16) + "Z"; }
  function fmt(v, unit) { return v == null ? "" : (Math.round(v * 10) / 10) + unit; }

  function centre(g) {
    let sx = 0, sy = 0, n = 0;
    eachCoord(g, (lon, lat) => { sx += lon; sy += lat; n++; });
    return [sx / n, sy / n];
  }

  function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }

  function connect() {
    if (!key) return;
    // the key travels as a subprotocol, not in the URL, so it stays out of the server's access log
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/live/ws",
                             ["groundctl.key." + key]);
    ws.onmessage = m => {
      const msg = JSON.parse(m.data);
      if (msg.type === "snapshot") {
        for (const v of msg.vehicles) vehicles.set(v.vehicle, v);
        redraw();
      } else if (msg.type === "event") {
        load(); // a phase change may add or retire a route
      }
    };
    ws.onclose = () => setTimeout(connect, 2000);
  }

  document.getElementById("keyform").addEventListener("submit", e => {
    e.preventDefault();
    key = document.getElementById("key").value.trim();
    localStorage.setItem("groundctl.key", key);
    load(); connect();
  });
  window.addEventListener("resize", () => { fit(); redraw(); });
  load().then(connect);
  setInterval(load, 15000);
})();
