// Realmstream monitor dashboard: renders /api/events (server-sent events) with
// plain DOM and inline SVG; no framework, no build step, no network beyond the monitor.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const FIGS = [
    ["cache_hit_ratio", "cache hit", pct], ["connections", "connections", null], ["consumer_lag", "consumer lag", null],
    ["commits_per_sec", "commits/s", null], ["dead_tuples", "dead tuples", null], ["default_partition_rows", "default-partition rows", null],
    ["partition_count", "partitions", null], ["days_ahead", "days ahead", null], ["longest_transaction_seconds", "longest xact s", null],
  ];
  const PEBBLE_FIGS = [
    ["pebble_disk_space_bytes", "disk", bytes], ["pebble_memtable_bytes", "memtable", bytes], ["pebble_wal_bytes", "WAL", bytes],
    ["pebble_compaction_debt_bytes", "compaction debt", bytes], ["pebble_read_amp", "read amp", null], ["pebble_l0_files", "L0 files", null],
    ["pebble_table_count", "tables", null], ["rows_written", "rows written", null], ["consumer_lag", "consumer lag", null],
  ];
  const PEBBLE_CHARTS = [["consumer_lag", "consumer lag", null], ["rows_written", "rows written", null], ["pebble_disk_space_bytes", "disk", bytes],
    ["pebble_compaction_debt_bytes", "compaction debt", bytes], ["pebble_read_amp", "read amp", null], ["pebble_l0_files", "L0 files", null]];
  const CHARTS = [["cache_hit_ratio", "cache hit", pct], ["connections", "connections", null], ["consumer_lag", "consumer lag", null],
    ["commits_per_sec", "commits/s", null], ["dead_tuples", "dead tuples", null], ["default_partition_rows", "default rows", null]];

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  function num(v) {
    if (v == null || isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }
  function bytes(v) { return v == null ? "–" : num(v) + "B"; }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(1) + "%"; }
  function ago(s) { return s < 90 ? Math.round(s) + "s" : Math.round(s / 60) + "m"; }
  function time(t) { return new Date(t).toLocaleTimeString(); }

  const SVG = "http://www.w3.org/2000/svg";
  function spark(points) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 100 40");
    svg.setAttribute("preserveAspectRatio", "none");
    if (!points || points.length === 0) return svg;
    let t0 = points[0][0], t1 = points[points.length - 1][0];
    let lo = Infinity, hi = -Infinity;
    for (const p of points) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    if (hi === lo) { hi = lo + 1; lo = lo - (lo === 0 ? 0 : 1); }
    const dt = t1 - t0 || 1;
    const xy = points.map((p) => [((p[0] - t0) / dt) * 100, 38 - ((p[1] - lo) / (hi - lo)) * 36]);
    if (xy.length === 1) xy.push([100, xy[0][1]]);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", xy.map((q) => q[0].toFixed(1) + "," + q[1].toFixed(1)).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#58a6ff");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
    return svg;
  }

  function shardStatus(s, alerts) {
    if (!s.reporting) return ["critical", "not reporting"];
    if (!s.up) return ["critical", "down"];
    const mine = alerts.filter((a) => a.state === "firing" && a.labels && a.labels.shard === s.shard);
    if (mine.some((a) => a.severity === "critical")) return ["critical", "critical"];
    if (mine.length) return ["warning", mine.length + " alert" + (mine.length > 1 ? "s" : "")];
    return ["ok", "ok"];
  }

  function renderShard(s, alerts) {
    const [cls, label] = shardStatus(s, alerts);
    const card = el("div", { class: "card shard", "data-shard": s.shard },
      el("h3", null, s.shard, el("span", { class: "badge " + cls }, label),
        el("span", { class: "badge info" }, s.backend || "?"),
        el("small", { class: "empty" }, "sample " + ago(s.age_seconds) + " ago")));
    if (s.error) card.append(el("p", { class: "st-firing" }, s.error));
    const pebble = s.backend === "pebble";
    const figs = el("div", { class: "figs" });
    for (const [k, name, fmt] of (pebble ? PEBBLE_FIGS : FIGS)) figs.append(el("div", { class: "fig" }, el("span", null, name), el("b", { "data-fig": k }, (fmt || num)(s.figures[k]))));
    card.append(figs);
    const charts = el("div", { class: "charts" });
    for (const [k, name, fmt] of (pebble ? PEBBLE_CHARTS : CHARTS)) {
      const pts = s.series[k] || [];
      const last = pts.length ? pts[pts.length - 1][1] : null;
      charts.append(el("div", { class: "chart" }, el("div", { class: "t" }, el("span", null, name), el("span", null, (fmt || num)(last))), spark(pts)));
    }
    card.append(charts);
    if (s.partitions && s.partitions.length) {
      const tb = el("tbody");
      for (const p of s.partitions) {
        tb.append(el("tr", null, el("td", null, p.name), el("td", null, p.is_default ? "default" : (p.from + " → " + (p.to || "").slice(5))),
          el("td", { class: "num" + (p.is_default && p.rows > 0 ? " st-firing" : "") }, num(p.rows)), el("td", { class: "num" }, num(p.size_bytes) + "B")));
      }
      card.append(el("table", { class: "parts" }, el("thead", null, el("tr", null, el("th", null, "partition"), el("th", null, "range"), el("th", null, "rows"), el("th", null, "size"))), tb));
    }
    return card;
  }

  function render(v) {
    $("players").textContent = num(v.players_online);
    $("connections").textContent = num(v.connections);
    $("nshards").textContent = v.shards.length;
    $("nfiring").textContent = v.alerts.filter((a) => a.state === "firing").length;
    $("monitor-id").textContent = v.monitor;
    $("updated").textContent = time(v.at);
    $("nrules").textContent = v.rules;
    const tr = v.traffic || {};
    $("cps").textContent = num(tr.commands_per_sec);
    $("eps").textContent = num(tr.events_per_sec);
    $("tickp99").textContent = num(tr.tick_p99_ms);
    $("busy").textContent = num(tr.busy_per_sec);
    const errs = tr.errors_per_sec || {};
    const etotal = Object.values(errs).reduce((a, b) => a + b, 0);
    $("errs").textContent = num(etotal);
    $("errs").parentElement.title = Object.keys(errs).length ? Object.entries(errs).map(([c, n]) => c + ": " + num(n) + "/s").join(", ") : "no errors";

    const al = $("alerts");
    al.replaceChildren();
    if (!v.alerts.length) al.append(el("p", { class: "empty" }, "No alerts."));
    for (const a of v.alerts) {
      al.append(el("div", { class: "alert " + a.severity + (a.state === "pending" ? " pending" : ""), "data-rule": a.rule, "data-state": a.state },
        el("span", { class: "badge " + (a.state === "pending" ? "pending" : a.severity) }, a.state === "pending" ? "pending" : a.severity),
        el("span", { class: "rule" }, a.rule), el("span", null, a.message),
        el("span", { class: "meta" }, a.target + " · since " + time(a.since))));
    }

    const sh = $("shards");
    sh.replaceChildren();
    if (!v.shards.length) sh.append(el("p", { class: "empty" }, "Waiting for DB stats…"));
    for (const s of v.shards) sh.append(renderShard(s, v.alerts));

    const zs = $("zones");
    zs.replaceChildren();
    if (!v.zones.length) zs.append(el("p", { class: "empty" }, "No zones."));
    for (const z of v.zones) {
      const owned = z.owners && z.owners.length > 0;
      zs.append(el("div", { class: "zone" + (owned ? "" : " unowned"), "data-zone": z.zone }, el("b", null, z.zone),
        el("span", null, owned ? z.owner : "no owner"), el("span", null, owned ? ("fence " + z.fence + " · seq " + z.last_seq) : ""),
        el("span", null, owned ? (z.players + " players") : ""),
        el("span", { class: "lag", "data-lag": String((v.command_lag || {})[z.zone] || 0) }, "lag " + num((v.command_lag || {})[z.zone] || 0))));
    }
    timelineZones(v.zones);

    const sv = $("services").tBodies[0];
    sv.replaceChildren();
    for (const s of v.services) {
      const st = s.stopping ? "stopping" : !s.alive ? "lost" : s.ready ? "ready" : "starting";
      sv.append(el("tr", null, el("td", null, s.service), el("td", null, s.instance),
        el("td", { class: st === "lost" ? "st-firing" : st === "ready" ? "st-resolved" : "" }, st), el("td", null, ago(s.age_seconds) + " ago"),
        el("td", { class: "num" }, num(s.players)), el("td", { class: "num" }, num(s.connections)), el("td", { class: "num" }, num(s.zones)),
        el("td", { class: "num" }, s.service === "world" || s.service === "gateway" ? num((s.figures || {}).commands_per_sec) : ""),
        el("td", { class: "num" }, s.service === "world" ? num((s.figures || {}).events_per_sec) : ""),
        el("td", { class: "num" }, s.service === "world" ? num((s.figures || {}).tick_p99_ms) : s.service === "gateway" ? num((s.figures || {}).publish_p99_ms) : ""),
        el("td", { class: "num" }, s.service === "gateway" ? num((s.figures || {}).busy_per_sec) : "")));
    }

    const rc = $("recent").tBodies[0];
    rc.replaceChildren();
    for (const e of v.recent) {
      rc.append(el("tr", null, el("td", null, time(e.at)), el("td", { class: "st-" + e.state }, e.state), el("td", null, e.severity),
        el("td", null, e.rule), el("td", null, e.target), el("td", null, e.message)));
    }
  }

  // Zone timeline: scrub through a zone's log; every position is answered by
  // /api/zone_state (a world's time travel: nearest snapshot, then replay).
  const tl = { zone: "", max: 1, timer: null, pending: 0, zones: {} };
  function timelineZones(zones) {
    const sel = $("tl-zone");
    for (const z of zones) {
      tl.zones[z.zone] = z.last_seq || 0;
      if (!sel.querySelector('option[value="' + z.zone + '"]')) sel.append(el("option", { value: z.zone }, z.zone));
    }
    if (!tl.zone && zones.length) {
      const best = zones.reduce((a, b) => ((b.last_seq || 0) > (a.last_seq || 0) ? b : a));
      sel.value = best.zone;
      pickZone(best.zone);
    }
    if (tl.zone && tl.zones[tl.zone] > tl.max && !tl.timer) { tl.max = tl.zones[tl.zone]; $("tl-seq").max = String(tl.max); }
  }
  function pickZone(z) {
    tl.zone = z;
    tl.max = Math.max(1, tl.zones[z] || 1);
    const r = $("tl-seq");
    r.max = String(tl.max);
    r.value = String(tl.max);
    showAt(tl.max);
  }
  async function showAt(seq) {
    const id = ++tl.pending;
    try {
      const res = await fetch("/api/zone_state?zone=" + encodeURIComponent(tl.zone) + "&at_seq=" + seq);
      const st = await res.json();
      if (id !== tl.pending) return; // a newer position was asked meanwhile
      if (st.error) { $("tl-label").textContent = st.error; return; }
      if (st.log_end > tl.max) { tl.max = st.log_end; $("tl-seq").max = String(tl.max); }
      drawZone(st);
    } catch (e) {
      $("tl-label").textContent = "time travel failed: " + e;
    }
  }
  function drawZone(st) {
    const cv = $("tl-canvas"), ctx = cv.getContext("2d");
    const size = st.zone_size || 1000, k = cv.width / size;
    ctx.fillStyle = "#0d1117"; ctx.fillRect(0, 0, cv.width, cv.height);
    ctx.strokeStyle = "#21262d";
    for (let g = 0; g <= size; g += size / 10) {
      ctx.beginPath(); ctx.moveTo(g * k, 0); ctx.lineTo(g * k, cv.height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, g * k); ctx.lineTo(cv.width, g * k); ctx.stroke();
    }
    ctx.fillStyle = "#484f58";
    for (const o of st.obstacles || []) ctx.fillRect(o[0] * k, o[1] * k, (o[2] - o[0]) * k, (o[3] - o[1]) * k);
    ctx.font = "10px sans-serif";
    const tb = $("tl-players").tBodies[0];
    tb.replaceChildren();
    for (const p of st.players || []) {
      ctx.fillStyle = p.dead ? "#f85149" : "#3fb950";
      ctx.beginPath(); ctx.arc(p.x * k, p.y * k, 4, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#8b949e"; ctx.fillText(p.name || p.player_id, p.x * k + 6, p.y * k + 3);
      tb.append(el("tr", { "data-player": p.player_id }, el("td", null, p.name || p.player_id), el("td", { class: "num" }, p.x.toFixed(0)),
        el("td", { class: "num" }, p.y.toFixed(0)), el("td", { class: "num" }, p.hp + "/" + p.max_hp), el("td", { class: "num" }, p.kills + "/" + p.deaths)));
    }
    const when = st.last_event_ns ? new Date(st.last_event_ns / 1e6).toLocaleTimeString() : "–";
    const label = $("tl-label");
    label.textContent = st.zone + " @ seq " + st.at_seq + " / " + st.log_end + " · " + (st.players || []).length + " players · " + when +
      " · snapshot " + st.snapshot_seq + " + " + st.replayed + " replayed in " + st.took_ms.toFixed(1) + " ms";
    label.className = "";
    cv.dataset.seq = String(st.at_seq);
    cv.dataset.players = String((st.players || []).length);
    document.body.dataset.timeline = String(Number(document.body.dataset.timeline || 0) + 1);
  }
  $("tl-zone").addEventListener("change", (e) => pickZone(e.target.value));
  $("tl-seq").addEventListener("input", (e) => showAt(Number(e.target.value)));
  $("tl-play").addEventListener("click", () => {
    const b = $("tl-play");
    if (tl.timer) { clearInterval(tl.timer); tl.timer = null; b.textContent = "▶ play"; return; }
    const r = $("tl-seq");
    if (Number(r.value) >= tl.max) r.value = "1";
    b.textContent = "❚❚ pause";
    const stepBy = Math.max(1, Math.round(tl.max / 100));
    tl.timer = setInterval(() => {
      const next = Math.min(tl.max, Number(r.value) + stepBy);
      r.value = String(next);
      showAt(next);
      if (next >= tl.max) { clearInterval(tl.timer); tl.timer = null; b.textContent = "▶ play"; }
    }, 150);
  });

  function connect() {
    const live = $("live");
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => { live.className = "live on"; live.textContent = "live"; });
    es.addEventListener("error", () => { live.className = "live off"; live.textContent = "reconnecting…"; });
    es.addEventListener("state", (ev) => {
      try { render(JSON.parse(ev.data)); if (!window.__firstState) window.__firstState = performance.now(); document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1); }
      catch (e) { console.error(e); }
    });
  }
  // First paint: the server inlines the latest view into the page.
  const initial = document.getElementById("initial-state");
  if (initial) {
    try { render(JSON.parse(initial.textContent)); document.body.dataset.initial = "1"; } catch (e) { console.error(e); }
  }
  connect();
})();
