// Thingsafe console: time-series charts drawn as SVG, fed by the REST API and kept live
// over the WebSocket (/api/ws, ThingsBoard's protocol; the session cookie signs it in).
// Uses api(), localTime() and timeZone from console.js.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

/** Units of common keys; a device's server attribute `units` ({"key": "unit"}) wins. */
const KNOWN_UNITS = {
  temperature: "°C", humidity: "%", battery: "%", voltage: "V", current: "A", power: "W",
  energy: "kWh", pressure: "hPa", co2: "ppm", rssi: "dBm",
};

function svg(name, attributes, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** About `count` round steps covering lo..hi (1, 2 or 5 times a power of ten). */
function niceTicks(lo, hi, count) {
  if (lo === hi) { lo -= 1; hi += 1; }
  const raw = (hi - lo) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400].map((s) => s * 1000);

function timeTicks(from, to, count) {
  const step = TIME_STEPS.find((s) => (to - from) / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  // Align to the viewer's local clock, not UTC.
  const offset = new Date(from).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) ticks.push(t);
  return { ticks, step };
}

function timeLabel(ms, step) {
  const d = new Date(ms);
  if (step >= 86400000) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  if (step >= 3600000 * 3) return d.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: step < 60000 ? "2-digit" : undefined });
}

function formatNumber(v) {
  return Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(6)));
}

/**
 * Draws `points` ([[ms, number]], oldest first) between `from` and `to` into `box`.
 * `small` draws a sparkline: no axes, just the line and its last point.
 */
function drawChart(box, points, { key, unit, from, to, small }) {
  // As wide as its box, so that text keeps its size on a phone.
  const width = Math.max(small ? 160 : 300, Math.round(box.clientWidth || (small ? 240 : 720)));
  const height = small ? 48 : Math.round(Math.min(260, Math.max(200, width * 0.36)));
  const pad = small ? { l: 2, r: 2, t: 4, b: 4 } : { l: 64, r: 16, t: 12, b: 44 };
  const values = points.map((p) => p[1]);
  const lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  const yTicks = niceTicks(lo, hi, small ? 2 : 5);
  const yMin = Math.min(yTicks[0], lo), yMax = Math.max(yTicks[yTicks.length - 1], hi);
  const x = (t) => pad.l + ((t - from) / Math.max(1, to - from)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - ((v - yMin) / Math.max(1e-12, yMax - yMin)) * (height - pad.t - pad.b);
  const latest = points.length ? points[points.length - 1][1] : null;
  const withUnit = (v) => (unit ? `${formatNumber(v)} ${unit}` : formatNumber(v));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: small ? "chart spark-svg" : "chart", role: "img",
    "aria-label": points.length
      ? `${key}: ${points.length} values from ${localTime(points[0][0])} to ${localTime(points[points.length - 1][0])}, latest ${withUnit(latest)}`
      : `${key}: no values in this time range`,
  });
  if (!small) {
    for (const v of yTicks) {
      chart.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: "grid" }));
      chart.append(svg("text", { x: pad.l - 8, y: y(v) + 4, class: "tick", "text-anchor": "end" }, formatNumber(v)));
    }
    const { ticks, step } = timeTicks(from, to, Math.max(2, Math.floor(width / 130)));
    for (const t of ticks) {
      chart.append(svg("line", { x1: x(t), x2: x(t), y1: height - pad.b, y2: height - pad.b + 5, class: "axis" }));
      chart.append(svg("text", { x: x(t), y: height - pad.b + 20, class: "tick", "text-anchor": "middle" }, timeLabel(t, step)));
    }
    chart.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b, class: "axis" }));
    chart.append(svg("text", { x: 14, y: pad.t + (height - pad.t - pad.b) / 2, class: "axis-title", transform: `rotate(-90 14 ${pad.t + (height - pad.t - pad.b) / 2})`, "text-anchor": "middle" },
      unit ? `${key} (${unit})` : key));
    chart.append(svg("text", { x: width - pad.r, y: height - 4, class: "axis-title", "text-anchor": "end" }, `Time (${timeZone})`));
  }
  const inRange = points.filter((p) => p[0] >= from && p[0] <= to);
  if (inRange.length) {
    chart.append(svg("polyline", { points: inRange.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "), class: "line" }));
    const dots = inRange.length <= 60 ? inRange : [inRange[inRange.length - 1]];
    for (const p of dots) {
      const dot = svg("circle", { cx: x(p[0]), cy: y(p[1]), r: small ? 2.5 : 3, class: "dot" });
      dot.append(svg("title", {}, `${localTime(p[0])}: ${withUnit(p[1])}`));
      chart.append(dot);
    }
  } else if (!small) {
    chart.append(svg("text", { x: width / 2, y: height / 2, class: "no-data", "text-anchor": "middle" }, "No values in this time range"));
  }
  box.replaceChildren(chart);
}

/** The points of `key` from `from` to `to`, oldest first; long ranges are averaged. */
async function loadSeries(deviceId, key, from, to) {
  const span = to - from;
  const params = new URLSearchParams({ keys: key, startTs: from, endTs: to, orderBy: "ASC", useStrictDataTypes: "true" });
  if (span > 3 * 3600000) {
    params.set("agg", "AVG");
    params.set("interval", String(Math.max(60000, Math.round(span / 300))));
    params.set("limit", "400");
  } else {
    params.set("limit", "5000");
  }
  const data = await api("GET", `/api/plugins/telemetry/DEVICE/${deviceId}/values/timeseries?${params}`);
  return (data[key] || []).map((p) => [p.ts, Number(p.value)]).filter((p) => Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
}

/** One WebSocket for the page: subscribes `subscriptions` ([{cmdId, deviceId, keys}]) and
 * calls `onData(cmdId, {key: [[ts, "value"]]})` for the first values and every change. */
function liveUpdates(subscriptions, onData) {
  const status = document.getElementById("live-status");
  const say = (text) => { if (status) status.textContent = text; };
  let retry = 1000;
  const connect = () => {
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
    socket.onopen = () => {
      retry = 1000;
      socket.send(JSON.stringify({
        cmds: subscriptions.map((s) => ({ cmdId: s.cmdId, type: "TIMESERIES", entityType: "DEVICE", entityId: s.deviceId, keys: s.keys || "" })),
      }));
      say("Live: new values appear as they arrive.");
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.errorCode) { say(`Live updates stopped: ${message.errorMsg}`); return; }
      if (message.data) onData(message.subscriptionId, message.data);
    };
    socket.onclose = () => {
      say("Live updates interrupted; reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  };
  connect();
}

function unitsOf(key, units) { return units[key] || KNOWN_UNITS[key.toLowerCase()] || ""; }

// --- the device page --------------------------------------------------------------------

function setUpDeviceCharts() {
  const page = document.getElementById("device");
  const box = document.getElementById("charts");
  if (!page || !box) return;
  const deviceId = page.dataset.deviceId;
  const units = JSON.parse(box.dataset.units || "{}");
  const charts = new Map(); // key -> {box, points}
  let range = { span: 3600000 }; // a sliding span, or fixed {from, to}
  const window = () => (range.span ? { from: Date.now() - range.span, to: Date.now() } : range);

  const redraw = (key) => {
    const chart = charts.get(key);
    const { from, to } = window();
    drawChart(chart.box, chart.points, { key, unit: unitsOf(key, units), from, to });
  };
  const addChart = (key) => {
    const figure = document.createElement("figure");
    figure.className = "chart-figure";
    figure.dataset.key = key;
    const caption = document.createElement("figcaption");
    caption.textContent = key;
    const area = document.createElement("div");
    figure.append(caption, area);
    box.append(figure);
    charts.set(key, { box: area, points: [] });
    document.getElementById("charts-empty").hidden = true;
  };
  const load = async () => {
    const { from, to } = window();
    for (const [key, chart] of charts) {
      try {
        chart.points = await loadSeries(deviceId, key, from, to);
      } catch (problem) {
        chart.box.textContent = problem.message;
        continue;
      }
      redraw(key);
    }
  };
  (box.dataset.keys || "").split(",").filter(Boolean).forEach(addChart);
  load();

  const select = document.getElementById("range-select");
  const custom = document.getElementById("custom-range");
  const rangeError = document.getElementById("range-error");
  select.addEventListener("change", () => {
    custom.hidden = select.value !== "custom";
    rangeError.hidden = true;
    if (select.value !== "custom") { range = { span: Number(select.value) }; load(); }
  });
  document.getElementById("range").addEventListener("submit", (event) => {
    event.preventDefault();
    const from = Date.parse(document.getElementById("range-from").value);
    const to = Date.parse(document.getElementById("range-to").value);
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
      rangeError.textContent = "Choose both a start and an end, the end after the start.";
      rangeError.hidden = false;
      return;
    }
    rangeError.hidden = true;
    range = { from, to };
    load();
  });

  const latest = document.querySelector("#latest tbody");
  liveUpdates([{ cmdId: 1, deviceId }], (_, data) => {
    let newest = 0;
    for (const [key, series] of Object.entries(data)) {
      for (const [ts, raw] of series) {
        newest = Math.max(newest, ts);
        let row = latest.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
        if (!row) {
          row = document.createElement("tr");
          row.dataset.key = key;
          const th = document.createElement("th");
          th.scope = "row";
          th.textContent = key;
          const value = document.createElement("td");
          value.className = "value";
          const time = document.createElement("td");
          time.append(document.createElement("time"));
          row.append(th, value, time);
          latest.append(row);
          document.getElementById("latest-empty").hidden = true;
        }
        const shown = row.querySelector("time");
        if (!shown.dataset.ts || Number(shown.dataset.ts) <= ts) {
          row.querySelector(".value").textContent = raw;
          shown.dataset.ts = ts;
          shown.textContent = localTime(ts);
        }
        const number = Number(raw);
        if (raw !== "" && Number.isFinite(number) && typeof raw !== "boolean" && raw !== "true" && raw !== "false") {
          if (!charts.has(key)) addChart(key);
          const chart = charts.get(key);
          if (!chart.points.some((p) => p[0] === ts)) {
            chart.points.push([ts, number]);
            chart.points.sort((a, b) => a[0] - b[0]);
          }
          redraw(key);
        }
      }
    }
    if (newest && Date.now() - newest < 600000) {
      document.getElementById("device-state").innerHTML = '<span class="badge online">Online</span>';
      document.getElementById("device-last").textContent = localTime(newest);
    }
  });
  // A sliding range moves on even when nothing arrives.
  setInterval(() => { if (range.span) for (const key of charts.keys()) redraw(key); }, 30000);
  let resizing;
  addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { for (const key of charts.keys()) redraw(key); }, 200);
  });
}

// --- the dashboard ----------------------------------------------------------------------

function setUpDashboard() {
  const cards = [...document.querySelectorAll(".device-card")];
  if (!cards.length) return;
  const span = 3600000;
  // A sparkline spans the last hour, or less when the data is younger: a line, not a dot.
  const sparkRange = (points) => {
    const to = Date.now();
    const first = points.length ? points[0][0] : to;
    return { from: Math.max(to - span, Math.min(first - 60000, to - 300000)), to };
  };
  const sparks = new Map(); // `${cmdId}/${key}` -> {box, points, valueEl}
  const subscriptions = [];
  cards.forEach((card, i) => {
    const cmdId = i + 1;
    const deviceId = card.dataset.deviceId;
    subscriptions.push({ cmdId, deviceId, keys: card.dataset.keys });
    card.querySelectorAll(".spark").forEach(async (spark) => {
      const key = spark.dataset.key;
      const entry = { box: spark.querySelector(".spark-chart"), points: [], valueEl: spark.querySelector(".value") };
      sparks.set(`${cmdId}/${key}`, entry);
      try {
        entry.points = await loadSeries(deviceId, key, Date.now() - span, Date.now());
      } catch (e) { /* the live feed still fills it */ }
      drawChart(entry.box, entry.points, { key, unit: unitsOf(key, {}), ...sparkRange(entry.points), small: true });
    });
  });
  liveUpdates(subscriptions, (cmdId, data) => {
    for (const [key, series] of Object.entries(data)) {
      const entry = sparks.get(`${cmdId}/${key}`);
      if (!entry) continue;
      for (const [ts, raw] of series) {
        if (!entry.points.some((p) => p[0] === ts) && Number.isFinite(Number(raw))) entry.points.push([ts, Number(raw)]);
      }
      entry.points.sort((a, b) => a[0] - b[0]);
      const last = entry.points[entry.points.length - 1];
      if (last) {
        const unit = unitsOf(key, {});
        entry.valueEl.textContent = unit ? `${last[1]} ${unit}` : String(last[1]);
      }
      drawChart(entry.box, entry.points, { key, unit: unitsOf(key, {}), ...sparkRange(entry.points), small: true });
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { setUpDeviceCharts(); setUpDashboard(); });
