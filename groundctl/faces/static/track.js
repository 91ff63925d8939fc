// The recipient's tracking page. The capability token is the last part of the address (/t/<token>); the
// page asks /api/v1/track/<token> for this one delivery and polls it while the drone is on its way. The
// map is a plain canvas (like map.js): no tiles, no CDN.
"use strict";
(function () {
  const COLORS = {
    bg: "#f4f1ea", zone: "#22b14c", zoneEdge: "#14692d", hub: "#1f4e99", route: "#7b3fa0",
    drone: "#ff7f0e", droneEdge: "#7a3a00", drop: "#e6007e", text: "#222",
  };
  const STEPS = [["planned", "Planned"], ["dispatched", "Leaving"], ["en_route", "On its way"],
                 ["at_zone", "At your zone"], ["released", "Delivered"]];
  const ORDER = { planned: 0, dispatched: 1, taking_off: 1, en_route: 2, at_zone: 3, lowering: 3, released: 4,
                  returning: 4, landed: 4 };
  const TEXT = {
    planned: "Planned: the drone has not left yet. You can still change the zone or the instructions below.",
    dispatched: "The drone is getting ready to leave.", taking_off: "The drone is taking off.",
    en_route: "The drone is on its way to you.", at_zone: "The drone is above your zone.",
    lowering: "The drone is lowering your parcel.", released: "Your parcel has been left in your zone.",
    returning: "Your parcel has been left in your zone.", landed: "Your parcel has been left in your zone.",
    aborted: "This delivery was stopped. The sender will be in touch.",
    failed: "This delivery could not be made. The sender will be in touch.",
    refused: "This delivery could not be planned.", lost: "This delivery could not be completed.",
    crashed: "This delivery could not be completed.",
  };
  const FLYING = new Set(["dispatched", "taking_off", "en_route", "at_zone", "lowering"]);
  const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const api = "/api/v1/track/" + encodeURIComponent(token);
  const $ = id => document.getElementById(id);
  const canvas = $("map");
  const ctx = canvas.getContext("2d");
  let data = null, timer = null, editing = false;
  // the attended drop (GET .../hold): presence, and while the drone holds, the time it still waits
  let hold = null, holdEnd = null, tick = null;

  async function load() {
    clearTimeout(timer);
    try {
      const r = await fetch(api, { cache: "no-store", credentials: "omit" });
      if (r.status === 404) return gone();
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      data = await r.json();
      try {
        const h = await fetch(api + "/hold", { cache: "no-store", credentials: "omit" });
        hold = h.ok ? await h.json() : null;
      } catch (e) { hold = null; }
      render();
    } catch (e) {
      $("status").textContent = "Cannot reach the delivery service right now; retrying…";
    }
    // fast while the drone flies (the ETA and its position move), slow otherwise
    timer = setTimeout(load, data && FLYING.has(data.state) ? 2000 : 15000);
  }

  function gone() {
    data = null;
    document.querySelector("main").replaceChildren(Object.assign(document.createElement("section"), {
      className: "card", textContent: "This tracking link no longer works." }));
    $("eta").textContent = "";
    document.body.dataset.state = "gone";
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function etaText(d) {
    if (d.state === "at_zone" || d.state === "lowering") return "Arriving now";
    if (d.drone && d.drone.eta_to_zone_s != null) {
      const m = Math.max(1, Math.round(d.drone.eta_to_zone_s / 60));
      return `Arriving in about ${m} min`;
    }
    if (d.eta && FLYING.has(d.state)) return "Expected around " + fmtTime(d.eta);
    if (d.proof_of_delivery) return "Delivered at " + fmtTime(d.proof_of_delivery.time);
    return "";
  }

  function render() {
    const d = data;
    $("headline").textContent = d.zone && d.zone.name ? `Your delivery to ${d.zone.name}` : "Your delivery";
    $("eta").textContent = etaText(d);
    $("status").textContent = TEXT[d.state] || d.state;
    const at = ORDER[d.state];
    $("steps").replaceChildren(...STEPS.map(([, label], i) => {
      const li = document.createElement("li");
      li.textContent = label;
      if (at != null) li.className = i < at ? "done" : i === at ? "now" : "";
      return li;
    }));
    $("instructions").textContent = d.instructions || "No instructions given.";
    $("zone-name").textContent = d.zone && d.zone.name ? "Landing zone: " + d.zone.name : "";
    // .../hold is read just after the delivery: when the two disagree the hold answer is the fresher one
    $("clearance").hidden = !d.awaiting_clearance || !!(hold && hold.awaiting_clearance === false);
    renderPresence(d);
    renderHold(d);
    renderProof(d);
    renderConfirm(d);
    renderChange(d);
    $("expires").textContent = d.link_expires_at ? "This link works until " + new Date(d.link_expires_at).toLocaleString() : "";
    fit(); draw();
    // what was drawn, for scripts and tests reading the page (never anything the JSON did not say)
    const b = document.body.dataset;
    b.state = d.state; b.drone = d.drone ? "1" : "0"; b.renders = String((+b.renders || 0) + 1);
  }

  function mmss(s) {
    s = Math.max(0, Math.round(s));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function renderPresence(d) {
    const h = hold;
    const show = !!(h && h.attended && !d.awaiting_clearance && (h.can_confirm_presence || h.presence_confirmed)
                    && (d.state === "planned" || FLYING.has(d.state)));
    $("presence").hidden = !show;
    if (!show) return;
    const wait = h.hold_s ? ` The drone waits at most ${Math.max(1, Math.round(h.hold_s / 60))} min above your zone.` : "";
    $("presence-btn").hidden = !h.can_confirm_presence;
    $("presence-text").textContent = h.presence_confirmed
      ? "Thank you: you said you will be there. Keep this page open; you clear the drop here when the drone arrives." + wait
      : "Someone has to be at the landing zone to receive it. Please confirm you will be there; the drone leaves only then." + wait;
  }

  // counts down between polls from the time left the server gave (the vehicle's own clock decides)
  function renderHold(d) {
    clearInterval(tick); tick = null;
    const left = hold && d.awaiting_clearance ? hold.hold_left_s : null;
    if (left == null) {
      holdEnd = null; $("hold-left").textContent = ""; $("hold-fill").style.width = "0";
      delete document.body.dataset.holdLeft;
      return;
    }
    holdEnd = performance.now() + left * 1000;
    const total = hold.hold_s || left || 1;
    const show = () => {
      const s = Math.max(0, (holdEnd - performance.now()) / 1000);
      $("hold-left").textContent = `It waits ${mmss(s)} more`;
      $("hold-fill").style.width = (100 * Math.min(1, s / total)).toFixed(1) + "%";
      document.body.dataset.holdLeft = String(Math.round(s));
    };
    show();
    tick = setInterval(show, 1000);
  }

  function renderProof(d) {
    const p = d.proof_of_delivery;
    $("proof").hidden = !p;
    if (!p) return;
    $("proof-time").textContent = new Date(p.time).toLocaleString();
    $("proof-pos").textContent = p.lat != null ? `${p.lat.toFixed(6)}, ${p.lon.toFixed(6)}` : "not recorded";
    $("proof-dist").textContent = p.distance_from_zone_centre_m != null ? `${p.distance_from_zone_centre_m.toFixed(1)} m` : "unknown";
  }

  function renderConfirm(d) {
    $("confirm").hidden = !d.can_confirm;
    const c = d.confirmation;
    $("answer").hidden = !c;
    if (c) {
      const what = { received: "You confirmed you received it.", not_received: "You reported that you did not find it.",
                     damaged: "You reported that it arrived damaged.", wrong_place: "You reported that it was left in the wrong place." };
      $("answer-text").textContent = (what[c.status] || c.status) + (c.message ? ` “${c.message}”` : "") +
        (c.resolved_at ? " The sender has resolved it." : "");
    }
  }

  function renderChange(d) {
    $("change").hidden = !d.can_change;
    if (!d.can_change || editing) return;  // do not overwrite what the recipient is typing
    const sel = $("zone-select");
    // the current zone is always an option (selected), so saving instructions never moves the drop
    const zones = (d.zones || []).some(z => z.id === d.zone_id) ? d.zones
      : [{ id: d.zone_id, name: (d.zone && d.zone.name) || "current zone" }, ...(d.zones || [])];
    sel.replaceChildren(...zones.map(z => {
      const o = document.createElement("option");
      o.value = z.id; o.textContent = z.name; o.selected = z.id === d.zone_id;
      return o;
    }));
    $("new-instructions").value = d.instructions || "";
  }

  async function send(method, url, body, msgEl) {
    msgEl.className = "msg"; msgEl.textContent = "Sending…";
    try {
      const r = await fetch(url, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
                                   credentials: "omit" });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) {
        msgEl.className = "msg error";
        // the reason without the field name: it is written for the person reading it
        msgEl.textContent = (j.errors && j.errors[0] && j.errors[0].reason) || j.detail || (r.status + " " + r.statusText);
        return false;
      }
      msgEl.textContent = "Saved.";
      return true;
    } catch (e) {
      msgEl.className = "msg error"; msgEl.textContent = "Could not send: " + e.message;
      return false;
    }
  }

  $("change-form").addEventListener("input", () => { editing = true; });
  $("change-form").addEventListener("submit", async e => {
    e.preventDefault();
    const body = { instructions: $("new-instructions").value || null };
    const zid = Number($("zone-select").value);
    if (zid && zid !== data.zone_id) body.zone_id = zid;
    if (await send("PATCH", api, body, $("change-msg"))) { editing = false; load(); }
  });

  $("confirm-form").addEventListener("submit", async e => {
    e.preventDefault();
    const status = new FormData(e.target).get("status");
    if (await send("POST", api + "/confirmation", { status, message: $("confirm-message").value }, $("confirm-msg"))) load();
  });

  $("presence-btn").addEventListener("click", async () => {
    $("presence-btn").disabled = true;
    await send("POST", api + "/presence", {}, $("presence-msg"));
    $("presence-btn").disabled = false;
    load();
  });

  // the attended drop: shown only while the delivery says the drone holds for the recipient
  $("clear-btn").addEventListener("click", async () => {
    $("clear-btn").disabled = true;
    await send("POST", api + "/clear-to-drop", {}, $("clear-msg"));
    $("clear-btn").disabled = false;
    load();
  });

  // -- the map ---------------------------------------------------------------------------------------
  let view = null;

  // while it comes: hub, zone and drone; once delivered: the zone and where the parcel is, close up
  function points(d) {
    const pts = [];
    if (d.zone && d.zone.lat != null) pts.push([d.zone.lon, d.zone.lat]);
    const p = d.proof_of_delivery;
    if (p && p.lat != null) { pts.push([p.lon, p.lat]); return pts; }
    if (d.hub) pts.push([d.hub.lon, d.hub.lat]);
    if (d.drone) pts.push([d.drone.lon, d.drone.lat]);
    return pts;
  }

  // equirectangular scaled by cos(latitude): exact enough over a few kilometres, no projection library
  function fit() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    view = null;
    if (!data) return;
    const pts = points(data);
    if (!pts.length) return;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const [x, y] of pts) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    const lat0 = (minY + maxY) / 2, k = Math.cos(lat0 * Math.PI / 180), mPerDeg = 111320;
    // never closer than ~300 m across on the way (the zone stays in context), ~80 m at the drop
    const closeUp = !!(data.proof_of_delivery && data.proof_of_delivery.lat != null);
    const minSpan = (closeUp ? 80 : 300) / mPerDeg;
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const spanX = Math.max((maxX - minX) * k, minSpan), spanY = Math.max(maxY - minY, minSpan);
    const pad = 28;
    const s = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
    view = {
      px: (lon, lat) => [w / 2 + (lon - cx) * k * s, h / 2 - (lat - cy) * s],
      m: metres => metres / mPerDeg * s,
    };
  }

  function draw() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    ctx.fillStyle = COLORS.bg; ctx.fillRect(0, 0, w, h);
    if (!data || !view) return;
    const d = data;
    if (d.route && d.route.length > 1 && (FLYING.has(d.state) || d.state === "planned")) {
      ctx.setLineDash([6, 4]); ctx.strokeStyle = COLORS.route; ctx.lineWidth = 2;
      ctx.beginPath();
      (d.route || []).forEach(([lon, lat], i) => { const [x, y] = view.px(lon, lat); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      ctx.stroke(); ctx.setLineDash([]);
    }
    if (d.hub) {
      const [x, y] = view.px(d.hub.lon, d.hub.lat);
      ctx.fillStyle = COLORS.hub; ctx.fillRect(x - 7, y - 7, 14, 14); label("hub", x, y);
    }
    const z = d.zone;
    if (z && z.lat != null) {
      const [x, y] = view.px(z.lon, z.lat);
      ctx.fillStyle = COLORS.zone; ctx.strokeStyle = COLORS.zoneEdge; ctx.lineWidth = 1.5;
      if (z.polygon && z.polygon.coordinates) {
        ctx.beginPath();
        for (const ring of z.polygon.coordinates) {
          ring.forEach(([lon, lat], i) => { const [px, py] = view.px(lon, lat); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
          ctx.closePath();
        }
        ctx.globalAlpha = 0.5; ctx.fill("evenodd"); ctx.globalAlpha = 1; ctx.stroke();
      }
      ctx.beginPath(); ctx.arc(x, y, Math.max(12, view.m(z.clear_radius_m || 0)), 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      label(z.name || "your zone", x, y);
    }
    const p = d.proof_of_delivery;
    if (p && p.lat != null) {
      const [x, y] = view.px(p.lon, p.lat);
      ctx.strokeStyle = COLORS.drop; ctx.lineWidth = 5;
      ctx.beginPath(); ctx.moveTo(x - 10, y - 10); ctx.lineTo(x + 10, y + 10); ctx.moveTo(x + 10, y - 10); ctx.lineTo(x - 10, y + 10); ctx.stroke();
    }
    const v = d.drone;
    if (v && v.lat != null) {
      const [x, y] = view.px(v.lon, v.lat);
      ctx.save(); ctx.translate(x, y); ctx.rotate(((v.heading_deg || 0) * Math.PI) / 180);
      ctx.fillStyle = COLORS.drone; ctx.strokeStyle = COLORS.droneEdge; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(0, -13); ctx.lineTo(9, 10); ctx.lineTo(-9, 10); ctx.closePath(); ctx.fill(); ctx.stroke();
      ctx.restore();
      label("drone", x, y + 26);  // below the zone's label when it is over the zone
    }
  }

  function label(text, x, y) {
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = COLORS.text; ctx.fillText(text, x + 11, y - 8);
  }

  window.addEventListener("resize", () => { fit(); draw(); });
  load();
})();
