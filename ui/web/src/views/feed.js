// Live event feed: the newest events of each kind, pausable. Every value is
// telemetry and is shown with textContent only.
import { h, replace, str, fmtTime, fmtISO, notAvailable } from "../dom.js";
import { store, MAX_EVENTS } from "../store.js";

// Columns per kind (see collector/*.go for the schemas); other kinds get the
// generic set. Every row also lists the fields its columns leave out.
const COLUMNS = {
  exec: ["ts", "host", "container_id", "pid", "ppid", "uid", "comm", "filename", "argv"],
  exit: ["ts", "host", "container_id", "pid", "ppid", "comm", "exit_code", "signal", "lifetime_ns"],
  tcp: ["ts", "host", "container_id", "event", "pid", "comm", "saddr", "sport", "daddr", "dport", "bytes_sent", "bytes_received"],
  retransmit: ["ts", "host", "pid", "comm", "saddr", "sport", "daddr", "dport"],
  signal: ["ts", "host", "container_id", "signal", "pid", "comm", "sender_pid", "sender_comm", "result"],
  oom: ["ts", "host", "container_id", "pid", "comm", "anon_rss", "trigger_pid", "trigger_comm"],
  file: ["ts", "host", "container_id", "pid", "comm", "syscall", "path", "errno"],
  priv: ["ts", "host", "container_id", "pid", "comm", "syscall", "uid_before", "uid_after", "errno"],
};
const GENERIC = ["ts", "host", "pid", "comm"];
const HEAD = { ts: "time (UTC)", filename: "file", container_id: "container", lifetime_ns: "lifetime",
  bytes_sent: "sent", bytes_received: "received", sender_pid: "from pid", sender_comm: "from" };

// Short forms for a few columns; the full value is in the cell's title.
const SHOW = {
  container_id: (v) => str(v).slice(0, 12),
  lifetime_ns: (v) => fmtDuration(Number(v)),
};

function fmtDuration(ns) {
  if (!Number.isFinite(ns)) return "";
  if (ns < 1e6) return (ns / 1e3).toFixed(0) + "µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(1) + "ms";
  if (ns < 60e9) return (ns / 1e9).toFixed(1) + "s";
  return (ns / 60e9).toFixed(1) + "m";
}

let root = null;
let kind = "exec";
let paused = false;
let query = ""; // lower-case substring filter over every field
let debounce = 0;
let missedWhilePaused = 0;
let tbody = null;
let pending = [];
let frame = 0;
const resyncHook = () => render();

function columnsFor(k) {
  return COLUMNS[k] || GENERIC;
}

function row(e) {
  const cols = columnsFor(String(e.kind));
  const tds = cols.map((c) => {
    const v = e[c];
    if (c === "ts") return h("td", { class: "c-ts", title: fmtISO(v), text: fmtTime(v) });
    const s = str(v);
    const shown = SHOW[c] && v !== undefined && v !== null ? SHOW[c](v) : s;
    return h("td", { class: "c-" + c, title: shown !== s || s.length > 30 ? s : null, text: shown });
  });
  // Whatever the columns do not show, so no field is hidden.
  const rest = Object.entries(e).filter(([k]) => k !== "kind" && !cols.includes(k));
  tds.push(h("td", { class: "c-details", text: rest.map(([k, v]) => `${k}=${str(v)}`).join("  ") }));
  return h("tr", { "data-kind": String(e.kind) }, tds);
}

function matches(e) {
  if (!query) return true;
  return Object.entries(e).some(([, v]) => str(v).toLowerCase().includes(query));
}

function kinds() {
  const ks = new Set(["exec", ...store.events.keys()]);
  return [...ks].sort();
}

function render() {
  if (!root) return;
  if (!store.config.events && store.events.size === 0) {
    replace(root, h("h1", { text: "Live events" }), notAvailable("The event feed"));
    return;
  }
  const cols = columnsFor(kind);
  const head = cols.map((c) => HEAD[c] || c);
  head.push("other fields");
  tbody = h("tbody", null, (store.events.get(kind) || []).filter(matches).map(row));
  // The new body already holds the events waiting for the next frame's
  // flush (they are in the store): flushing them too showed each twice
  // whenever a resync or a click re-rendered between an event and its frame.
  pending = [];
  const search = h("input", { type: "search", id: "feed-filter", placeholder: "filter (any field)", value: query, autocomplete: "off", spellcheck: "false",
    oninput: (ev) => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        query = ev.target.value.trim().toLowerCase();
        render();
        const el = root && root.querySelector("#feed-filter");
        if (el) { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }
      }, 200);
    } });
  const pauseBtn = h("button", { type: "button", class: paused ? "primary" : "", id: "feed-pause",
    text: paused ? "Resume" : "Pause", onclick: () => { paused = !paused; missedWhilePaused = 0; render(); } });
  replace(root,
    h("div", { class: "toolbar" },
      h("h1", { text: "Live events" }),
      h("div", { class: "tabs", role: "tablist" }, kinds().map((k) =>
        h("button", { type: "button", class: "tab" + (k === kind ? " active" : ""), "data-kind": k,
          onclick: () => { kind = k; render(); } },
        k, h("span", { class: "count", text: String((store.events.get(k) || []).length) })))),
      search,
      h("div", { class: "spacer" }),
      paused ? h("span", { class: "muted", id: "feed-missed", text: `paused — ${missedWhilePaused} new` }) : null,
      pauseBtn),
    h("div", { class: "tablewrap" },
      h("table", { class: "grid feed", id: "feed" },
        h("thead", null, h("tr", null, head.map((x) => h("th", { text: x })))),
        tbody)),
    h("p", { class: "muted small", text: `Newest first; at most ${MAX_EVENTS} per kind are kept. The hub sends a sample of busy batches; the full history is in ClickHouse.` }));
}

function flush() {
  frame = 0;
  if (!tbody || paused) { pending = []; return; }
  const rows = pending.filter((e) => String(e.kind) === kind && matches(e));
  pending = [];
  if (rows.length === 0) return;
  const frag = document.createDocumentFragment();
  for (let i = rows.length - 1; i >= 0; i--) frag.appendChild(row(rows[i]));
  tbody.insertBefore(frag, tbody.firstChild);
  while (tbody.childElementCount > MAX_EVENTS) tbody.removeChild(tbody.lastChild);
  const tab = root.querySelector(`.tab.active .count`);
  if (tab) tab.textContent = String((store.events.get(kind) || []).length);
}

export const feed = {
  mount(el) {
    root = el;
    store.onResync.add(resyncHook);
    render();
  },
  unmount() {
    store.onResync.delete(resyncHook);
    root = null;
    tbody = null;
  },
  onMessage(type, data) {
    if (type !== "event" || !data) return;
    const k = String(data.kind || "unknown");
    if (paused) {
      missedWhilePaused++;
      const m = root && root.querySelector("#feed-missed");
      if (m) m.textContent = `paused — ${missedWhilePaused} new`;
      return;
    }
    if (!root.querySelector(`.tab[data-kind="${CSS.escape(k)}"]`)) {
      render(); // a new kind: redraw the tabs
      return;
    }
    // Oldest first within a frame; flush prepends them newest on top.
    pending.push(data);
    if (!frame) frame = setTimeout(flush, 100);
  },
};
