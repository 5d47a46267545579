// Anomaly stream: newest first, filterable by host, container, process and
// minimum severity. The filter goes to the API; live anomalies that match it
// are prepended as they arrive.
import { h, replace, str, fmtTime, fmtISO, fmtNum, severityBadge, sqlBlock, notAvailable } from "../dom.js";
import { api } from "../conn.js";
import { store, MAX_ANOMALIES } from "../store.js";

const SEVERITIES = ["info", "low", "medium", "high", "critical"];
const filter = { host: "", container: "", process: "", severity: "" };
let root = null;
let tbody = null;
let info = null;
let list = [];
let debounce = 0;
const resyncHook = () => load();

function matches(a) {
  const has = (v, f) => !f || str(v).toLowerCase().includes(f.toLowerCase());
  const rank = (s) => SEVERITIES.indexOf(str(s));
  return has(a.host, filter.host) && has(a.container, filter.container) && has(a.process, filter.process) &&
    (!filter.severity || rank(a.severity) >= rank(filter.severity));
}

export function anomalyRow(a, opts = {}) {
  const inc = a.incident_id ? h("a", { href: "#/incidents/" + encodeURIComponent(str(a.incident_id)), text: str(a.incident_id) }) : "";
  const proc = str(a.process) + (a.pid ? ` (${str(a.pid)})` : "");
  return h("tr", { class: "sevrow-" + str(a.severity) },
    h("td", { class: "c-ts", title: fmtISO(a.ts), text: fmtTime(a.ts) }),
    h("td", null, severityBadge(a.severity)),
    opts.noHost ? null : h("td", { class: "c-host", text: str(a.host) }),
    h("td", { class: "c-container", text: str(a.container) }),
    h("td", { class: "c-proc", title: proc, text: proc }),
    h("td", { class: "num", text: fmtNum(Number(a.score), 2) }),
    h("td", { class: "c-model", text: str(a.model) }),
    h("td", { class: "c-summary" }, h("div", { text: str(a.summary) }), sqlBlock(a.sql, "SQL")),
    opts.noIncident ? null : h("td", null, inc));
}

export const ANOMALY_HEAD = ["time (UTC)", "severity", "host", "container", "process", "score", "model", "what", "incident"];

function renderRows() {
  if (!tbody) return;
  const filtered = Object.values(filter).some(Boolean);
  replace(tbody, list.length ? list.map((a) => anomalyRow(a))
    : h("tr", null, h("td", { colspan: ANOMALY_HEAD.length, class: "empty",
      text: (filtered ? "No anomalies match the filter." : "No anomalies yet.") + store.learningNote() })));
  replace(info, `${list.length} shown` + (list.length >= MAX_ANOMALIES ? ` (newest ${MAX_ANOMALIES})` : ""));
}

async function load() {
  if (!root || !store.config.anomalies) return;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  q.set("limit", String(MAX_ANOMALIES));
  try {
    list = await api("/api/anomalies?" + q.toString());
    if (!Array.isArray(list)) list = [];
    renderRows();
  } catch (e) {
    if (info) replace(info, h("span", { class: "error-text", text: "Could not load anomalies: " + str(e.message) }));
  }
}

function input(name, placeholder) {
  return h("input", { type: "search", name, placeholder, value: filter[name], autocomplete: "off", spellcheck: "false",
    oninput: (ev) => { filter[name] = ev.target.value.trim(); clearTimeout(debounce); debounce = setTimeout(load, 300); } });
}

export const anomalies = {
  mount(el) {
    root = el;
    if (!store.config.anomalies) {
      replace(root, h("h1", { text: "Anomalies" }), notAvailable("The anomaly stream"));
      return;
    }
    const sev = h("select", { name: "severity", onchange: (ev) => { filter.severity = ev.target.value; load(); } },
      h("option", { value: "", text: "any severity" }),
      SEVERITIES.map((s) => h("option", { value: s, text: "≥ " + s })));
    sev.value = filter.severity;
    tbody = h("tbody");
    info = h("span", { class: "muted" });
    list = store.anomalies.filter(matches);
    replace(root,
      h("div", { class: "toolbar" }, h("h1", { text: "Anomalies" }),
        h("form", { class: "filters", onsubmit: (ev) => ev.preventDefault() },
          input("host", "host"), input("container", "container"), input("process", "process"), sev),
        h("div", { class: "spacer" }), info),
      h("div", { class: "tablewrap" }, h("table", { class: "grid", id: "anomalies" },
        h("thead", null, h("tr", null, ANOMALY_HEAD.map((x) => h("th", { text: x })))), tbody)));
    renderRows();
    store.onResync.add(resyncHook);
    load();
  },
  unmount() {
    store.onResync.delete(resyncHook);
    root = null;
    tbody = null;
  },
  onMessage(type, data) {
    if (type !== "anomaly" || !tbody || !data || !matches(data)) return;
    list.unshift(data);
    if (list.length === 1) { // replaces the "no anomalies" row
      renderRows();
      return;
    }
    tbody.insertBefore(anomalyRow(data), tbody.firstChild);
    if (list.length > MAX_ANOMALIES) {
      list.length = MAX_ANOMALIES;
      tbody.removeChild(tbody.lastChild);
    }
    replace(info, `${list.length} shown`);
  },
};
