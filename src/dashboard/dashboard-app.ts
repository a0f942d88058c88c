// The dashboard's browser script, served as /dashboard/app.js. Plain ES2020, no build step.
// It polls the admin API (bearer token from sessionStorage), derives rates from counter deltas and
// renders with textContent only, so nothing the API returns can inject markup.
// (No backticks or dollar-brace below: this is a TS template string.)
export const DASHBOARD_JS = `"use strict";
(function () {
  var KEY = "wsgate.adminToken";
  var params = new URLSearchParams(location.search);
  var POLL_MS = Math.max(500, Number(params.get("interval")) || 2000);
  var MAX_STATS = 32;       // per-gateway /stats requests per poll, at most
  var SPARK_POINTS = 120;

  var prev = {};            // gateway id -> last counters sample, for rates
  var spark = [];
  var errSamples = [];      // [{t, totals}] over the last RECENT_MS, for "recent errors"
  var RECENT_MS = 5 * 60 * 1000;
  var timer = null;
  var busy = false;
  var presenceUser = null;

  function $(id) { return document.getElementById(id); }
  function token() { return sessionStorage.getItem(KEY); }

  function el(tag, props, children) {
    var e = document.createElement(tag);
    if (props) for (var k in props) {
      if (k === "text") e.textContent = props[k];
      else if (k === "cls") e.className = props[k];
      else e.setAttribute(k, props[k]);
    }
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }

  function fmt(n, digits) {
    if (n == null || !isFinite(n)) return "–";
    if (digits) return n.toFixed(digits);
    return Math.round(n).toLocaleString("en-US");
  }

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.round(s / 60) + "m";
    if (s < 172800) return Math.round(s / 3600) + "h";
    return Math.round(s / 86400) + "d";
  }

  function api(path) {
    return fetch(path, { headers: { authorization: "Bearer " + token(), accept: "application/json" }, cache: "no-store" })
      .then(function (res) {
        if (!res.ok) {
          return res.json().catch(function () { return null; }).then(function (body) {
            var err = new Error(path + ": " + res.status + (body && body.error ? " " + body.error.message : ""));
            err.status = res.status;
            throw err;
          });
        }
        return res.json();
      });
  }

  // ---- views ------------------------------------------------------------------------------

  function showLogin(message) {
    stop();
    $("app-view").classList.add("hidden");
    $("signout").classList.add("hidden");
    $("redis").classList.add("hidden");
    $("served").textContent = "";
    $("updated").textContent = "";
    $("login-view").classList.remove("hidden");
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function showApp() {
    $("login-view").classList.add("hidden");
    $("app-view").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    start();
  }

  function start() {
    stop();
    poll();
    timer = setInterval(function () { if (!document.hidden) poll(); }, POLL_MS);
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    prev = {};
    spark = [];
    errSamples = [];
    showLogin(message);
  }

  function banner(text) {
    var b = $("banner");
    b.textContent = text || "";
    b.classList.toggle("hidden", !text);
  }

  // ---- polling ----------------------------------------------------------------------------

  function poll() {
    if (busy || !token()) return;
    busy = true;
    Promise.all([api("/v1/gateways"), api("/stats")])
      .then(function (r) {
        var gateways = (r[0] && r[0].gateways) || [];
        var own = r[1];
        var stats = {};
        stats[own.id] = own;
        // Counters of the other gateways: on Fly.io the proxy replays /stats?gateway= to that machine;
        // elsewhere the answer is a registry summary without counters, shown as "–".
        var others = gateways.filter(function (g) { return g.id !== own.id; }).slice(0, MAX_STATS);
        var asks = others.map(function (g) {
          return api("/stats?gateway=" + encodeURIComponent(g.id)).catch(function () { return null; });
        });
        var who = presenceUser ? api("/v1/presence/" + encodeURIComponent(presenceUser)).catch(function (e) { return { error: e }; }) : null;
        return Promise.all([Promise.all(asks), who]).then(function (more) {
          others.forEach(function (g, i) {
            var s = more[0][i];
            if (s && s.id === g.id && typeof s.frames_in === "number") stats[g.id] = s;
          });
          render(gateways, stats, own, Date.now());
          if (presenceUser && more[1]) renderPresence(more[1]);
          banner(null);
        });
      })
      .catch(function (err) {
        if (err.status === 401) return signOut("The admin token was refused (401).");
        banner("Cannot read the admin API (" + err.message + "); retrying every " + POLL_MS / 1000 + " s.");
      })
      .then(function () { busy = false; });
  }

  function rates(id, s, now) {
    var p = prev[id];
    var cur = { t: now, fi: s.frames_in, fo: s.frames_out, mr: s.messages_routed };
    prev[id] = cur;
    if (!p || now <= p.t || cur.fi < p.fi || cur.fo < p.fo || cur.mr < p.mr) return null; // first sample or restarted
    var dt = (now - p.t) / 1000;
    return { fi: (cur.fi - p.fi) / dt, fo: (cur.fo - p.fo) / dt, mr: (cur.mr - p.mr) / dt };
  }

  function render(gateways, stats, own, now) {
    $("served").textContent = "served by " + own.id + " (" + own.region + ", " + own.mode + ")";
    var rb = $("redis");
    rb.classList.remove("hidden");
    rb.textContent = own.redis === "none" ? "single node" : "redis " + own.redis;
    rb.className = "badge " + (own.redis === "ready" ? "ok" : own.redis === "down" ? "bad" : "none");
    $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();

    var byRegion = {};
    var totals = { conns: 0, users: 0, rate: 0, rateKnown: false, errors: {} };
    gateways.forEach(function (g) {
      (byRegion[g.region] = byRegion[g.region] || []).push(g);
      totals.conns += g.connections;
      totals.users += g.users;
    });
    var rateOf = {};
    Object.keys(stats).forEach(function (id) {
      var s = stats[id];
      rateOf[id] = rates(id, s, now);
      if (rateOf[id]) { totals.rate += rateOf[id].mr; totals.rateKnown = true; }
      var errs = s.errors || {};
      Object.keys(errs).forEach(function (code) { totals.errors[code] = (totals.errors[code] || 0) + errs[code]; });
    });
    for (var id in prev) if (!stats[id]) delete prev[id];

    $("sum-gateways").textContent = fmt(gateways.length);
    $("sum-regions").textContent = fmt(Object.keys(byRegion).length);
    $("sum-connections").textContent = fmt(totals.conns);
    $("sum-users").textContent = fmt(totals.users);
    $("sum-rate").textContent = totals.rateKnown ? fmt(totals.rate, 1) : "–";
    var errorTotal = Object.keys(totals.errors).reduce(function (n, c) { return n + totals.errors[c]; }, 0);
    $("sum-errors").textContent = fmt(errorTotal);

    var regions = Object.keys(byRegion).sort();
    var box = $("regions");
    box.textContent = "";
    if (regions.length === 0) box.appendChild(el("p", { cls: "muted", text: "No live gateway registered." }));
    regions.forEach(function (region) {
      var list = byRegion[region].sort(function (a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; });
      var rc = list.reduce(function (n, g) { return n + g.connections; }, 0);
      var ru = list.reduce(function (n, g) { return n + g.users; }, 0);
      var rows = list.map(function (g) {
        var r = rateOf[g.id];
        var s = stats[g.id];
        return el("tr", { "data-gateway": g.id }, [
          el("td", null, [el("strong", { text: g.id }), g.id === own.id ? el("span", { cls: "muted", text: "  (this one)" }) : null]),
          // Which build each machine runs: during a rolling deploy, old and new side by side.
          el("td", { "data-field": "version", cls: g.version ? "" : "muted", text: g.version ? g.version + " (" + (g.build || "?") + ")" : "?" }),
          el("td", { cls: "num", "data-field": "connections", text: fmt(g.connections) }),
          el("td", { cls: "num", "data-field": "users", text: fmt(g.users) }),
          el("td", { cls: "num", text: r ? fmt(r.fi, 1) : "–" }),
          el("td", { cls: "num", text: r ? fmt(r.fo, 1) : "–" }),
          el("td", { cls: "num", "data-field": "rate", text: r ? fmt(r.mr, 1) : "–" }),
          el("td", { cls: "num", text: s ? fmt(s.rooms) : "–" }),
          el("td", { text: ago(now - g.started) }),
          el("td", { cls: now - g.last_seen > 3 * POLL_MS + 10000 ? "error" : "muted", text: ago(now - g.last_seen) + " ago" }),
        ]);
      });
      var head = el("tr", null, ["gateway", "version", "conns", "users", "frames in/s", "frames out/s", "msgs/s", "rooms", "up", "seen"].map(function (h, i) {
        return el("th", { cls: i > 1 && i < 8 ? "num" : "", text: h });
      }));
      box.appendChild(el("div", { cls: "region", "data-region": region }, [
        el("h3", null, [region + " ", el("span", { cls: "muted", text: list.length + " gateway" + (list.length === 1 ? "" : "s") + " · " + fmt(rc) + " connections · " + fmt(ru) + " users" })]),
        el("table", null, [el("thead", null, [head]), el("tbody", null, rows)]),
      ]));
    });

    if (totals.rateKnown) spark.push(totals.rate);
    if (spark.length > SPARK_POINTS) spark.shift();
    var peak = Math.max.apply(null, spark.concat([0]));
    var max = Math.max(peak, 1);
    var pts = spark.map(function (v, i) {
      // Stretch over the full width while the window fills, then scroll.
      return (i * 120 / Math.max(1, spark.length - 1)).toFixed(2) + "," + (40 - (v / max) * 38).toFixed(2);
    }).join(" ");
    $("spark").querySelector("polyline").setAttribute("points", pts);
    $("spark-label").textContent = spark.length
      ? "now " + fmt(spark[spark.length - 1], 1) + " · peak " + fmt(peak, 1) + " (gateways with counters, last " + Math.round(spark.length * POLL_MS / 1000) + " s)"
      : "collecting…";

    // Recent = growth since the oldest sample kept (at most RECENT_MS back); totals are since each start.
    errSamples.push({ t: now, totals: totals.errors });
    while (errSamples.length > 2 && now - errSamples[1].t >= RECENT_MS) errSamples.shift();
    var base = errSamples[0];
    var windowMin = Math.max(1, Math.round((now - base.t) / 60000));
    var eb = $("errors");
    eb.textContent = "";
    var codes = Object.keys(totals.errors).sort(function (a, b) { return totals.errors[b] - totals.errors[a]; });
    if (codes.length === 0) eb.appendChild(el("p", { cls: "muted", text: "none since start" }));
    else eb.appendChild(el("table", null, [
      el("thead", null, [el("tr", null, [
        el("th", { text: "code" }),
        el("th", { cls: "num", text: "last " + windowMin + " min" }),
        el("th", { cls: "num", text: "since start" }),
      ])]),
      el("tbody", null, codes.map(function (c) {
        var recent = Math.max(0, totals.errors[c] - (base.totals[c] || 0));
        return el("tr", { "data-code": c }, [
          el("td", { text: c }),
          el("td", { cls: "num" + (recent > 0 ? " error" : ""), "data-field": "recent", text: fmt(recent) }),
          el("td", { cls: "num", text: fmt(totals.errors[c]) }),
        ]);
      })),
    ]));
  }

  function renderPresence(p) {
    var box = $("presence");
    box.textContent = "";
    if (p.error) {
      box.appendChild(el("p", { cls: "error", text: p.error.message }));
      return;
    }
    var now = Date.now();
    box.appendChild(el("p", null, [
      el("strong", { text: p.user }), " ",
      el("span", { cls: "badge " + (p.online ? "ok" : "none"), "data-online": String(p.online), text: p.online ? "online" : "offline" }),
      " " + p.connections.length + " connection" + (p.connections.length === 1 ? "" : "s"),
    ]));
    if (p.connections.length) box.appendChild(el("table", null, [
      el("thead", null, [el("tr", null, ["connection", "gateway", "region", "since"].map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", null, p.connections.map(function (c) {
        return el("tr", { "data-conn": c.conn }, [
          el("td", { text: c.conn }), el("td", { text: c.gateway }), el("td", { text: c.region }),
          el("td", { text: ago(now - c.since) + " ago" }),
        ]);
      })),
    ]));
  }

  // ---- wiring -----------------------------------------------------------------------------

  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(KEY, t);
    $("login-error").textContent = "";
    showApp();
  });
  $("signout").addEventListener("click", function () { signOut(""); });
  $("presence-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var u = $("presence-user").value.trim();
    if (!u) return;
    presenceUser = u;
    $("presence-clear").classList.remove("hidden");
    api("/v1/presence/" + encodeURIComponent(u))
      .then(renderPresence, function (e) {
        if (e.status === 401) return signOut("The admin token was refused (401).");
        renderPresence({ error: e });
      });
  });
  $("presence-clear").addEventListener("click", function () {
    presenceUser = null;
    $("presence").textContent = "";
    $("presence-user").value = "";
    $("presence-clear").classList.add("hidden");
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden && timer) poll(); });

  if (token()) showApp(); else showLogin("");
})();
`;
