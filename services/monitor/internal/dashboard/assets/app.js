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
    const figs = el("div", { class: "figs" });
    for (const [k, name, fmt] of FIGS) figs.append(el("div", { class: "fig" }, el("span", null, name), el("b", { "data-fig": k }, (fmt || num)(s.figures[k]))));
    card.append(figs);
    const charts = el("div", { class: "charts" });
    for (const [k, name, fmt] of CHARTS) {
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
        el("span", null, owned ? (z.players + " players") : "")));
    }

    const sv = $("services").tBodies[0];
    sv.replaceChildren();
    for (const s of v.services) {
      const st = s.stopping ? "stopping" : !s.alive ? "lost" : s.ready ? "ready" : "starting";
      sv.append(el("tr", null, el("td", null, s.service), el("td", null, s.instance),
        el("td", { class: st === "lost" ? "st-firing" : st === "ready" ? "st-resolved" : "" }, st), el("td", null, ago(s.age_seconds) + " ago"),
        el("td", { class: "num" }, num(s.players)), el("td", { class: "num" }, num(s.connections)), el("td", { class: "num" }, num(s.zones))));
    }

    const rc = $("recent").tBodies[0];
    rc.replaceChildren();
    for (const e of v.recent) {
      rc.append(el("tr", null, el("td", null, time(e.at)), el("td", { class: "st-" + e.state }, e.state), el("td", null, e.severity),
        el("td", null, e.rule), el("td", null, e.target), el("td", null, e.message)));
    }
  }

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
  connect();
})();
