// Live overview: event rates per probe and per host, drops and ingest lag as
// uPlot time series updated with every stats message (1/s), and the state of
// ClickHouse and the LLM.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h, replace, str, stateBadge, severityBadge, fmtNum, fmtTime, fmtISO, notAvailable } from "../dom.js";
import { api } from "../conn.js";
import { store } from "../store.js";

const PALETTE = ["#4fb3ff", "#f5a524", "#45d483", "#ff6b81", "#b28dff", "#2dd4bf", "#f472b6", "#facc15", "#94a3b8", "#fb923c"];
const AXIS = { stroke: "#9aa4b2", grid: { stroke: "#252c36", width: 1 }, ticks: { stroke: "#2e3641", width: 1 }, font: "11px system-ui, sans-serif" };

let root = null;
let tiles = null;
let incBox = null;
let anomBox = null;
let latest = []; // newest anomalies for the overview
const resyncHook = () => { loadAnomalies(); renderIncidents(); };

const closed = (i) => ["resolved", "closed"].includes(str(i.state));

function renderIncidents() {
  if (!incBox) return;
  if (!store.config.incidents && store.incidents.size === 0) {
    replace(incBox, notAvailable("Incidents"));
    return;
  }
  const open = [...store.incidents.values()].filter((i) => !closed(i))
    .sort((a, b) => Date.parse(b.updated || 0) - Date.parse(a.updated || 0)).slice(0, 6);
  replace(incBox, open.length ? h("table", { class: "grid" }, h("tbody", null, open.map((i) =>
    h("tr", null,
      h("td", null, severityBadge(i.severity)),
      h("td", { class: "c-title" }, h("a", { href: "#/incidents/" + encodeURIComponent(str(i.id)), text: str(i.title) || str(i.id) })),
      h("td", null, stateBadge(i.state)),
      h("td", { class: "c-ts", title: fmtISO(i.updated), text: fmtTime(i.updated) })))))
    : h("div", { class: "empty", text: "No open incidents." }));
}

function renderAnomalies() {
  if (!anomBox) return;
  if (!store.config.anomalies && latest.length === 0) {
    replace(anomBox, notAvailable("Anomalies"));
    return;
  }
  replace(anomBox, latest.length ? h("div", { class: "tablewrap" }, h("table", { class: "grid" }, h("tbody", null, latest.slice(0, 8).map((a) =>
    h("tr", null,
      h("td", { class: "c-ts", title: fmtISO(a.ts), text: fmtTime(a.ts) }),
      h("td", null, severityBadge(a.severity)),
      h("td", { class: "c-host", text: str(a.host) }),
      h("td", { class: "c-proc", text: str(a.process) }),
      h("td", { class: "c-summary", title: str(a.summary), text: str(a.summary) }))))))
    : h("div", { class: "empty", text: "No anomalies yet." + store.learningNote() }));
}

async function loadAnomalies() {
  if (!store.config.anomalies) return;
  try {
    const list = await api("/api/anomalies?limit=8");
    if (Array.isArray(list)) latest = list;
  } catch { /* keep what we have */ }
  renderAnomalies();
}
let charts = []; // { el, key, plot, build() }
let onResize = null;

function chartSpec(title, id, seriesFn) {
  const el = h("div", { class: "chart", id });
  const box = h("section", { class: "card chartcard" }, h("h2", { text: title }), el);
  return { box, el, key: "", plot: null, seriesFn };
}

// build (re)creates a chart when its set of series changed, else just feeds
// it the new data.
function update(c) {
  const hist = store.history;
  const { names, data, scales, axes } = c.seriesFn(hist);
  const key = names.join("\u0000");
  const width = Math.max(300, c.el.clientWidth);
  if (c.plot && c.key === key) {
    c.plot.setData([hist.t, ...data]);
    return;
  }
  if (c.plot) c.plot.destroy();
  c.key = key;
  const opts = {
    width, height: 190,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, ...scales },
    axes: [{ ...AXIS, values: (u, splits) => splits.map((v) => new Date(v * 1000).toISOString().slice(11, 19)) },
      ...(axes || [{ ...AXIS, size: 50 }])],
    series: [{ label: "UTC", value: (u, v, si, idx) => {
      if (idx == null) v = hist.t.length ? hist.t[hist.t.length - 1] : null;
      return v == null ? "–" : new Date(v * 1000).toISOString().slice(11, 19);
    } },
      ...names.map((n, i) => ({
        label: n.label || n, stroke: n.color || PALETTE[i % PALETTE.length], width: 1.5,
        scale: n.scale || "y", spanGaps: false,
        // Without a cursor the legend shows the newest value: the live rate.
        value: (u, v, si, idx) => {
          if (idx == null) {
            const col = u.data[si];
            v = col && col.length ? col[col.length - 1] : null;
          }
          return v == null ? "–" : fmtNum(v) + (n.unit || "");
        },
      }))],
  };
  opts.tzDate = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  c.plot = new uPlot(opts, [hist.t, ...data], c.el);
}

const rateSeries = (which) => (hist) => {
  const m = hist.series[which];
  const names = [...m.keys()].sort();
  return { names: names.length ? names : ["(none yet)"], data: names.length ? names.map((n) => m.get(n)) : [hist.t.map(() => null)] };
};

function dropLagSeries(hist) {
  return {
    names: [{ label: "drops/s", color: "#ff6b81", scale: "y" }, { label: "ingest lag", color: "#f5a524", scale: "lag", unit: "s" }],
    data: [hist.series.drops, hist.series.lag],
    scales: { lag: { auto: true } },
    axes: [{ ...AXIS, size: 50, label: "drops/s", labelSize: 14, labelFont: "11px system-ui" },
      { ...AXIS, side: 1, scale: "lag", size: 50, grid: { show: false }, label: "lag (s)", labelSize: 14, labelFont: "11px system-ui" }],
  };
}

function tile(label, value, sub, cls) {
  return h("div", { class: "tile " + (cls || "") }, h("div", { class: "tile-label", text: label }),
    h("div", { class: "tile-value" }, value), sub ? h("div", { class: "tile-sub", title: sub, text: sub }) : null);
}

function renderTiles() {
  const hl = store.health;
  const hub = store.hub;
  if (!store.config.health) {
    replace(tiles, notAvailable("Platform health"));
    return;
  }
  if (!hl) {
    replace(tiles, h("div", { class: "empty", text: "Waiting for the first health report…" }));
    return;
  }
  const total = Object.values(hl.probe_rates || {}).reduce((a, b) => a + Number(b || 0), 0);
  const drops = store.history.series.drops.at(-1);
  replace(tiles,
    tile("ClickHouse", stateBadge(hl.clickhouse && hl.clickhouse.state), str(hl.clickhouse && hl.clickhouse.detail)),
    tile("LLM", stateBadge(hl.llm && hl.llm.state), str(hl.llm && hl.llm.detail)),
    hl.models ? tile("Models", stateBadge(hl.models.state), str(hl.models.detail)) : null,
    tile("Events/s", fmtNum(total), `${count(Object.keys(hl.probe_rates || {}).length, "probe")}, ${count(Object.keys(hl.host_rates || {}).length, "host")}`),
    tile("Drops", fmtNum(Number(hl.drops)), drops != null ? `${fmtNum(drops)}/s now` : "", Number(drops) > 0 ? "warn" : ""),
    tile("Ingest lag", fmtNum(Number(hl.ingest_lag_s), 2) + " s", "oldest row not yet in ClickHouse", Number(hl.ingest_lag_s) > 10 ? "warn" : ""),
    tile("Dashboard clients", hub ? String(hub.clients) : "–", hub ? `${fmtNum(hub.kicked)} slow dropped · ${fmtNum(hub.dropped)} shed` : ""));
}

export const overview = {
  mount(el) {
    root = el;
    tiles = h("div", { class: "tiles", id: "tiles" });
    charts = [
      chartSpec("Events/s per probe", "chart-probes", rateSeries("probe")),
      chartSpec("Events/s per host", "chart-hosts", rateSeries("host")),
      chartSpec("Drops/s and ingest lag", "chart-drops", dropLagSeries),
    ];
    incBox = h("div", { id: "ov-incidents" });
    anomBox = h("div", { id: "ov-anomalies" });
    latest = store.anomalies.slice(0, 8);
    if (!store.config.health) charts = []; // nothing to chart
    replace(root, h("h1", { text: "Overview" }), tiles,
      charts.length ? h("div", { class: "charts" }, charts.map((c) => c.box)) : null,
      h("div", { class: "two attention" },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Open incidents" }), h("div", { class: "spacer" }),
          h("a", { href: "#/incidents", class: "small", text: "all incidents →" })), incBox),
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Latest anomalies" }), h("div", { class: "spacer" }),
          h("a", { href: "#/anomalies", class: "small", text: "anomaly stream →" })), anomBox)));
    renderTiles();
    renderIncidents();
    renderAnomalies();
    loadAnomalies();
    store.onResync.add(resyncHook);
    for (const c of charts) update(c);
    onResize = () => {
      for (const c of charts) if (c.plot) c.plot.setSize({ width: Math.max(300, c.el.clientWidth), height: 190 });
    };
    window.addEventListener("resize", onResize);
  },
  unmount() {
    store.onResync.delete(resyncHook);
    incBox = null;
    anomBox = null;
    window.removeEventListener("resize", onResize);
    for (const c of charts) if (c.plot) c.plot.destroy();
    charts = [];
    root = null;
  },
  onMessage(type, data) {
    if (!root) return;
    if (type === "incident") renderIncidents();
    if (type === "anomaly" && data) {
      latest.unshift(data);
      latest.length = Math.min(latest.length, 8);
      renderAnomalies();
    }
    if (type !== "stats") return;
    renderTiles();
    if (latest.length === 0) renderAnomalies(); // the learning note follows health
    for (const c of charts) update(c);
  },
};

// count is "1 host" or "3 hosts".
function count(n, one) {
  return `${n} ${n === 1 ? one : one + "s"}`;
}
