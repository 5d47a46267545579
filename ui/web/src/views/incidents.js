// Incidents: the list (severity, state) and the detail view with the summary
// streaming in as the LLM writes it, the timeline, the process tree, the
// connections, the anomalies and the SQL behind each section.
import { h, replace, str, toMillis, fmtTime, fmtISO, severityBadge, stateBadge, sqlParts, notAvailable, cell } from "../dom.js";
import { api } from "../conn.js";
import { store } from "../store.js";
import { anomalyRow } from "./anomalies.js";

const SEV_RANK = { critical: 4, high: 3, medium: 2, low: 1, info: 0 };

let root = null;
let tbody = null;
const listHook = () => renderList();

function sortedIncidents() {
  return [...store.incidents.values()].sort((a, b) => {
    const open = (x) => (str(x.state) === "resolved" || str(x.state) === "closed" ? 0 : 1);
    return open(b) - open(a) || Date.parse(b.updated || b.opened || 0) - Date.parse(a.updated || a.opened || 0);
  });
}

function renderList() {
  if (!tbody) return;
  const rows = sortedIncidents().map((i) => {
    const href = "#/incidents/" + encodeURIComponent(str(i.id));
    return h("tr", { class: "clickable", "data-id": str(i.id), onclick: () => { location.hash = href; } },
      h("td", null, severityBadge(i.severity)),
      h("td", null, stateBadge(i.state)),
      h("td", { class: "c-title" }, h("a", { href, text: str(i.title) || str(i.id) })),
      cell((i.hosts || []).map(str).join(", ")),
      h("td", { class: "num", text: str(i.anomalies) }),
      h("td", { class: "c-ts", title: fmtISO(i.opened), text: fmtTime(i.opened) }),
      h("td", { class: "c-ts", title: fmtISO(i.updated), text: fmtTime(i.updated) }));
  });
  replace(tbody, rows.length ? rows : h("tr", null, h("td", { colspan: 7, class: "empty", text: "No incidents." })));
}

export const incidents = {
  mount(el) {
    root = el;
    if (!store.config.incidents && store.incidents.size === 0) {
      replace(root, h("h1", { text: "Incidents" }), notAvailable("Incidents"));
      return;
    }
    tbody = h("tbody");
    replace(root, h("h1", { text: "Incidents" }),
      h("div", { class: "tablewrap" }, h("table", { class: "grid", id: "incidents" },
        h("thead", null, h("tr", null, ["severity", "state", "title", "hosts", "anomalies", "opened (UTC)", "updated"].map((x) => h("th", { text: x })))),
        tbody)));
    renderList();
    store.onResync.add(listHook);
  },
  unmount() {
    store.onResync.delete(listHook);
    root = null;
    tbody = null;
  },
  onMessage(type) {
    if (type === "incident") renderList();
  },
};

// ---- detail ----

let detailID = null;
let detail = null;
let summaryEl = null;
let headEl = null;

function section(title, key, body, count) {
  const sql = detail && detail.sql ? sqlParts(detail.sql[key], "SQL") : null;
  return h("section", { class: "card", id: "sec-" + key },
    h("div", { class: "card-head" }, h("h2", null, title, count !== undefined ? h("span", { class: "count", text: String(count) }) : null),
      h("div", { class: "spacer" }), sql && sql.controls),
    sql && sql.pre,
    body);
}

// processTree nests processes under their launcher (the nearest ancestor
// that had exec'd, set when the parent was a subshell with no node of its
// own), else under their ppid; processes whose parent is not in the list
// are roots. A pid can exec more than once (bash -c runs its last command
// in place), so a child hangs under what that pid ran when the child
// started, and under none of its later programs.
function processTree(procs) {
  if (!procs || !procs.length) return h("div", { class: "empty", text: "No processes recorded." });
  const byPID = new Map();
  for (const p of procs) {
    if (!byPID.has(p.pid)) byPID.set(p.pid, []);
    byPID.get(p.pid).push(p);
  }
  const before = (a, b) => !(toMillis(a.start) > toMillis(b.start)); // unknown times compare as before
  const kids = new Map();
  const roots = [];
  for (const p of procs) {
    const up = p.launcher || p.ppid;
    let parent = null;
    if (up !== p.pid) {
      for (const c of byPID.get(up) || []) if (before(c, p) && (!parent || before(parent, c))) parent = c;
    }
    if (parent) {
      if (!kids.has(parent)) kids.set(parent, []);
      kids.get(parent).push(p);
    } else roots.push(p);
  }
  const seen = new Set();
  const node = (p) => {
    if (seen.has(p)) return null; // cycles in hostile data
    seen.add(p);
    const children = kids.get(p) || [];
    return h("li", { class: p.flagged ? "flagged" : "" },
      h("span", { class: "pid", text: str(p.pid) }), " ",
      h("span", { class: "comm", text: str(p.comm) }), " ",
      h("span", { class: "argv", text: str(p.argv) }),
      p.launcher ? h("span", { class: "muted small via", text: " via subshell " + str(p.ppid) }) : null,
      p.start ? h("span", { class: "muted small", text: " " + fmtTime(p.start) }) : null,
      children.length ? h("ul", null, children.map(node)) : null);
  };
  return h("ul", { class: "ptree" }, roots.map(node));
}

function summaryText() {
  const s = store.summaries.get(detailID);
  if (s && (!s.done || !detail || !detail.summary)) return { text: s.text, streaming: !s.done };
  return { text: (detail && detail.summary) || "", streaming: false };
}

function renderSummary() {
  if (!summaryEl) return;
  const { text, streaming } = summaryText();
  summaryEl.textContent = text || (streaming ? "" : "No summary yet.");
  summaryEl.classList.toggle("streaming", streaming);
}

function renderHead() {
  if (!headEl) return;
  const i = { ...(detail || {}), ...(store.incidents.get(detailID) || {}) };
  replace(headEl,
    h("div", { class: "crumbs" }, h("a", { href: "#/incidents", text: "Incidents" }), " / ", h("span", { text: detailID })),
    h("h1", { class: "inc-title" }, severityBadge(i.severity), " ", str(i.title) || detailID, " ", stateBadge(i.state)),
    h("div", { class: "muted meta" },
      `opened ${fmtISO(i.opened)} · updated ${fmtISO(i.updated)} · ${str(i.anomalies)} anomalies`,
      i.hosts && i.hosts.length ? ` · hosts: ${i.hosts.map(str).join(", ")}` : ""));
}

function renderDetail() {
  if (!root) return;
  headEl = h("div", { class: "inc-head" });
  summaryEl = h("div", { class: "summary", id: "summary", "aria-live": "polite" });
  const d = detail || {};
  const timeline = (d.timeline || []).map((t) => h("tr", null,
    h("td", { class: "c-ts", title: fmtISO(t.ts), text: fmtTime(t.ts) }), cell(t.kind), cell(t.host), h("td", { class: "c-text", text: str(t.text) })));
  const conns = (d.connections || []).map((c) => h("tr", null,
    h("td", { class: "c-ts", title: fmtISO(c.ts), text: fmtTime(c.ts) }), cell(c.pid), cell(c.comm), cell(c.proto), cell(c.src), cell(c.dst), cell(c.bytes, "num")));
  const anoms = (d.anomaly_list || []).map((a) => anomalyRow(a, { noIncident: true }));
  const grid = (head, rows, empty) => rows.length
    ? h("div", { class: "tablewrap" }, h("table", { class: "grid" }, h("thead", null, h("tr", null, head.map((x) => h("th", { text: x })))), h("tbody", null, rows)))
    : h("div", { class: "empty", text: empty });
  replace(root, headEl,
    h("section", { class: "card" }, h("h2", { text: "Summary" }), summaryEl),
    h("div", { class: "two" },
      section("Timeline", "timeline", grid(["time (UTC)", "kind", "host", "what"], timeline, "No timeline."), timeline.length),
      section("Process tree", "process_tree", processTree(d.process_tree), (d.process_tree || []).length)),
    section("Connections", "connections", grid(["time (UTC)", "pid", "comm", "proto", "source", "destination", "bytes"], conns, "No connections."), conns.length),
    section("Anomalies", "anomalies", grid(["time (UTC)", "severity", "host", "container", "process", "score", "model", "what"], anoms, "No anomalies."), anoms.length));
  renderHead();
  renderSummary();
}

async function loadDetail() {
  const id = detailID;
  try {
    const d = await api("/api/incidents/" + encodeURIComponent(id));
    if (id !== detailID || !root) return;
    detail = d;
    renderDetail();
  } catch (e) {
    if (id !== detailID || !root) return;
    if (detail) return; // keep what we have after a failed refresh
    replace(root, h("div", { class: "crumbs" }, h("a", { href: "#/incidents", text: "Incidents" })),
      h("div", { class: "error", text: e.status === 404 ? `Incident ${id} not found.` : "Could not load the incident: " + str(e.message) }));
  }
}

const detailHook = () => loadDetail();

export const incidentDetail = {
  mount(el, id) {
    root = el;
    detailID = id;
    detail = null;
    if (!store.config.incidents) {
      renderDetail(); // what the live messages told us, if anything
      root.appendChild(notAvailable("Incident details"));
      return;
    }
    replace(root, h("p", { class: "muted", text: "Loading incident…" }));
    store.onResync.add(detailHook);
    loadDetail();
  },
  unmount() {
    store.onResync.delete(detailHook);
    root = null;
    summaryEl = null;
    headEl = null;
  },
  onMessage(type, data) {
    if (!data) return;
    if (type === "summary_token" && str(data.incident_id) === detailID) renderSummary();
    if (type === "incident" && str(data.id) === detailID) {
      renderHead();
      if (store.config.incidents) loadDetail();
    }
  },
};

export { SEV_RANK };
