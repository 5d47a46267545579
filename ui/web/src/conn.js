// The page's two links to the server: the JSON API (fetch, cookie auth) and
// the live websocket, which reconnects with backoff and asks the views to
// catch up from the API after every (re)connect or "lagged" notice.

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, opts = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...opts };
  if (opts.body !== undefined && typeof opts.body !== "string") {
    init.body = JSON.stringify(opts.body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    const msg = data && typeof data.error === "string" ? data.error : `HTTP ${resp.status}`;
    throw new APIError(resp.status, msg);
  }
  return data;
}

// Live keeps one websocket open. handlers: {message(type, data), state(s),
// resync()} where s is "connecting", "live" or "offline".
export class Live {
  constructor(handlers) {
    this.h = handlers;
    this.backoff = 500;
    this.lastMessage = 0;
    this.ws = null;
    this.timer = null;
    setInterval(() => this.watchdog(), 1000);
  }

  start() {
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.h.state("connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws`);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.lastMessage = Date.now();
      this.h.state("live");
      this.h.resync();
    };
    ws.onmessage = (ev) => {
      this.lastMessage = Date.now();
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!m || typeof m.type !== "string") return;
      if (m.type === "lagged") {
        this.h.resync();
        return;
      }
      this.h.message(m.type, m.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.h.state("offline");
      this.retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  retry() {
    const wait = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, 15000);
    this.nextTry = Date.now() + wait;
    this.timer = setTimeout(() => this.connect(), wait);
  }

  // watchdog closes a socket that has gone quiet: the server sends stats
  // every second, so 6 s of silence means a dead link the browser has not
  // noticed yet.
  watchdog() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.lastMessage > 6000) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
      this.h.state("offline");
      this.retry();
    }
  }
}
