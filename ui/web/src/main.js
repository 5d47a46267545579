// Vigil dashboard entry point: the router, the shared store fed by the
// websocket, and the status bar. Views live in views/*.js.
import "./style.css";
import { h, replace, str, stateBadge, fmtTime } from "./dom.js";
import { api, Live } from "./conn.js";
import { store } from "./store.js";
import { overview } from "./views/overview.js";
import { anomalies } from "./views/anomalies.js";
import { incidents, incidentDetail } from "./views/incidents.js";
import { ask } from "./views/ask.js";
import { feed } from "./views/feed.js";

const routes = [
  { path: "overview", title: "Overview", view: overview },
  { path: "anomalies", title: "Anomalies", view: anomalies },
  { path: "incidents", title: "Incidents", view: incidents },
  { path: "ask", title: "Ask", view: ask },
  { path: "feed", title: "Live feed", view: feed },
];

let current = null; // { view, arg }

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = parts[0] || "overview";
  const arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : null;
  let view = (routes.find((r) => r.path === name) || routes[0]).view;
  if (name === "incidents" && arg) view = incidentDetail;
  if (current && current.view.unmount) current.view.unmount();
  const root = document.getElementById("view");
  replace(root);
  root.className = "view-" + name;
  current = { view, arg };
  view.mount(root, arg);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.route === name);
  }
}

function renderNav() {
  replace(document.getElementById("nav"), routes.map((r) =>
    h("a", { href: "#/" + r.path, "data-route": r.path, text: r.title })));
}

// The status bar: link state, ClickHouse, LLM, last heartbeat.
const status = {
  link: "connecting",
  render() {
    const hl = store.health;
    const el = document.getElementById("status");
    const age = store.lastStats ? Math.round((Date.now() - store.lastStats) / 1000) : null;
    replace(el,
      h("span", { class: "pill link-" + this.link, title: "live updates over websocket" },
        this.link === "live" ? "live" : this.link === "connecting" ? "connecting…" : "offline, retrying"),
      h("span", { class: "kv" }, "ClickHouse ", hl ? stateBadge(hl.clickhouse && hl.clickhouse.state) : stateBadge("unknown")),
      h("span", { class: "kv" }, "LLM ", hl ? stateBadge(hl.llm && hl.llm.state) : stateBadge("unknown")),
      hl && hl.models ? h("span", { class: "kv", title: str(hl.models.detail) }, "Models ", stateBadge(hl.models.state)) : null,
      h("span", { class: "kv muted", title: "last stats message" },
        store.lastStatsTS ? fmtTime(store.lastStatsTS) + " UTC" : "no stats yet",
        age !== null && age > 3 ? ` (${age}s ago)` : ""));
  },
};

const live = new Live({
  state(s) {
    status.link = s;
    status.render();
  },
  message(type, data) {
    store.receive(type, data);
    if (type === "stats") status.render();
    if (current && current.view.onMessage) current.view.onMessage(type, data);
  },
  resync() {
    store.resync(); // views listening on store.onResync redraw when done
  },
});

async function start() {
  renderNav();
  try {
    store.config = await api("/api/config");
  } catch (e) {
    replace(document.getElementById("view"),
      h("div", { class: "error" }, "Cannot reach the Vigil API: " + str(e.message),
        e.status === 401 ? " — open the dashboard with the URL vigil printed (it carries ?token=…)." : ""));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
  status.render();
  setInterval(() => status.render(), 1000);
  live.start();
}

start();
