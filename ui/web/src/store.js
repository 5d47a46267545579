// The page's state, fed by websocket messages and API catch-ups. Every list
// is bounded so a busy host cannot grow the tab's memory.
import { api } from "./conn.js";
import { toMillis, str } from "./dom.js";

export const MAX_EVENTS = 500; // per kind
export const MAX_ANOMALIES = 500;
export const HISTORY = 300; // seconds of chart history

// Ring-less bounded history of stats, columnar for uPlot.
class History {
  constructor() {
    this.t = [];
    this.series = { probe: new Map(), host: new Map(), drops: [], lag: [] };
    this.lastDrops = null;
  }

  push(ts, health) {
    const n = this.t.length;
    this.t.push(ts);
    const add = (m, rates) => {
      const seen = new Set();
      for (const [k, v] of Object.entries(rates || {})) {
        seen.add(k);
        if (!m.has(k)) m.set(k, new Array(n).fill(null));
        m.get(k).push(Number(v));
      }
      for (const [k, arr] of m) if (!seen.has(k)) arr.push(null);
    };
    add(this.series.probe, health && health.probe_rates);
    add(this.series.host, health && health.host_rates);
    // Drops are cumulative: chart their rate over the time since the last
    // sample (stats come about once a second, not exactly).
    const drops = health ? Number(health.drops) : null;
    const dt = n > 0 ? ts - this.t[n - 1] : 0;
    this.series.drops.push(this.lastDrops !== null && drops !== null && dt > 0 ? Math.max(0, drops - this.lastDrops) / dt : null);
    this.lastDrops = drops;
    this.series.lag.push(health ? Number(health.ingest_lag_s) : null);
    if (this.t.length > HISTORY) {
      const cut = this.t.length - HISTORY;
      this.t.splice(0, cut);
      for (const m of [this.series.probe, this.series.host]) {
        for (const [k, arr] of m) {
          arr.splice(0, cut);
          if (arr.every((v) => v === null)) m.delete(k);
        }
      }
      this.series.drops.splice(0, cut);
      this.series.lag.splice(0, cut);
    }
  }
}

export const store = {
  config: null,
  health: null,
  hub: null,
  lastStats: 0,
  lastStatsTS: null,
  history: new History(),
  // events: kind -> array, newest first.
  events: new Map(),
  anomalies: [],
  // incidents: id -> incident, plus live summary text being streamed.
  incidents: new Map(),
  summaries: new Map(),

  // learningNote explains a quiet page on a new install: the models are
  // learning, not broken.
  learningNote() {
    const m = this.health && this.health.models;
    return m && m.state === "learning" ? ` Models are learning: ${str(m.detail)}.` : "";
  },

  receive(type, data) {
    switch (type) {
      case "stats": {
        this.lastStats = Date.now();
        this.lastStatsTS = data && data.ts;
        this.health = (data && data.health) || null;
        this.hub = (data && data.hub) || null;
        const ms = toMillis(data && data.ts);
        this.history.push((Number.isFinite(ms) ? ms : Date.now()) / 1000, this.health);
        break;
      }
      case "event":
        if (data && typeof data === "object") this.addEvent(data);
        break;
      case "anomaly":
        if (data && typeof data === "object") {
          this.anomalies.unshift(data);
          if (this.anomalies.length > MAX_ANOMALIES) this.anomalies.length = MAX_ANOMALIES;
        }
        break;
      case "incident":
        if (data && data.id !== undefined) this.incidents.set(String(data.id), { ...this.incidents.get(String(data.id)), ...data });
        break;
      case "summary_token":
        if (data && data.incident_id !== undefined) {
          const id = String(data.incident_id);
          const s = this.summaries.get(id) || { text: "", done: false };
          if (data.done) {
            if (data.text) s.text = String(data.text);
            s.done = true;
          } else {
            if (s.done) { s.text = ""; s.done = false; }
            s.text += String(data.text || "");
          }
          this.summaries.set(id, s);
        }
        break;
    }
  },

  addEvent(e) {
    const kind = String(e.kind || "unknown");
    let arr = this.events.get(kind);
    if (!arr) {
      arr = [];
      this.events.set(kind, arr);
    }
    arr.unshift(e);
    if (arr.length > MAX_EVENTS) arr.length = MAX_EVENTS;
    return kind;
  },

  // resync refetches what the websocket may have missed: recent events of
  // every known kind and the incident list.
  async resync() {
    if (!this.config) return;
    const jobs = [];
    if (this.config.events) {
      const kinds = new Set(["exec", ...this.events.keys(), ...Object.keys((this.health && this.health.probe_rates) || {})]);
      for (const kind of kinds) {
        jobs.push(api("/api/events?kind=" + encodeURIComponent(kind) + "&n=" + MAX_EVENTS).then((list) => {
          if (!Array.isArray(list)) return;
          const have = this.events.get(kind) || [];
          // The API is authoritative for what it has; keep newer live ones.
          const newest = list.length ? toMillis(list[0].ts) : -Infinity;
          const newer = have.filter((e) => toMillis(e.ts) > newest);
          const merged = newer.concat(list.map((e) => ({ kind, ...e })));
          if (merged.length > MAX_EVENTS) merged.length = MAX_EVENTS;
          if (merged.length) this.events.set(kind, merged);
        }).catch(() => {}));
      }
    }
    if (this.config.incidents) {
      jobs.push(api("/api/incidents").then((list) => {
        if (!Array.isArray(list)) return;
        this.incidents = new Map(list.map((i) => [String(i.id), i]));
      }).catch(() => {}));
    }
    await Promise.all(jobs);
    for (const f of this.onResync) f();
  },
  onResync: new Set(),
};
