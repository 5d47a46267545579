// DOM helpers. Telemetry strings are hostile: everything here builds nodes
// with createElement/textContent only. There is no innerHTML anywhere in the
// dashboard, and no helper that takes HTML.

const SAFE_ATTRS = new Set(["class", "title", "type", "placeholder", "value", "name", "id",
  "role", "aria-label", "aria-live", "rows", "colspan", "for", "tabindex", "disabled", "data-id",
  "data-kind", "autocomplete", "spellcheck", "list"]);

// h builds an element. props: attribute names from SAFE_ATTRS, "text" for
// textContent, "href" (only "#..." links), "on<event>" for listeners.
// Children are nodes, strings (become text nodes), arrays, null or false.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "href") {
        if (typeof v === "string" && v.startsWith("#")) el.setAttribute("href", v);
      } else if (SAFE_ATTRS.has(k) || k.startsWith("data-")) el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// str renders any telemetry value as plain text: arrays of strings (argv) are
// joined with spaces, arguments containing spaces are quoted.
export function str(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map((a) => {
    const s = str(a);
    return /[\s"']/.test(s) || s === "" ? JSON.stringify(s) : s;
  }).join(" ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// toMillis accepts RFC 3339 strings, "YYYY-MM-DD hh:mm:ss.fffffffffZ"
// (Arrow's marshalling), epoch seconds, milliseconds or nanoseconds.
export function toMillis(ts) {
  if (ts === null || ts === undefined || ts === "") return NaN;
  if (typeof ts === "number") {
    if (ts > 1e17) return ts / 1e6; // ns
    if (ts > 1e14) return ts / 1e3; // µs
    if (ts > 1e11) return ts; // ms
    return ts * 1000;
  }
  let s = String(ts).trim().replace(" ", "T");
  // Keep at most milliseconds: not every engine parses 9 fractional digits.
  s = s.replace(/(\.\d{3})\d+/, "$1");
  if (/T\d\d:\d\d(:\d\d)?(\.\d+)?$/.test(s)) s += "Z";
  return Date.parse(s);
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// fmtTime shows a timestamp as UTC hh:mm:ss.mmm (dates other than today get
// the date too).
export function fmtTime(ts) {
  const ms = toMillis(ts);
  if (!Number.isFinite(ms)) return str(ts);
  const d = new Date(ms);
  const t = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
  const today = new Date().toISOString().slice(0, 10);
  const day = d.toISOString().slice(0, 10);
  return day === today ? t : `${day} ${t}`;
}

export function fmtISO(ts) {
  const ms = toMillis(ts);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : str(ts);
}

export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(digits) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(digits) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(digits) + "k";
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(digits);
}

export function severityBadge(sev) {
  const s = str(sev) || "unknown";
  const known = ["info", "low", "medium", "high", "critical"].includes(s) ? s : "unknown";
  return h("span", { class: `sev sev-${known}`, text: s });
}

export function stateBadge(state) {
  const s = str(state) || "unknown";
  const known = ["ok", "degraded", "down", "off", "learning", "open", "summarizing", "resolved", "closed"].includes(s) ? s : "unknown";
  return h("span", { class: `state state-${known}`, text: s });
}

// copyButton copies text to the clipboard; where the Clipboard API is not
// available (plain http on a non-local host) it selects the target instead.
export function copyButton(getText, target) {
  const b = h("button", { class: "copy", type: "button", text: "Copy" });
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = "Copied";
    } catch {
      if (target) {
        const r = document.createRange();
        r.selectNodeContents(target);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(r);
      }
      b.textContent = "Press Ctrl+C";
    }
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
  return b;
}

// sqlParts gives the controls (a show/hide toggle and a copy button) and the
// hidden <pre> of a SQL snippet, so a card can put the controls in its header
// and the snippet at full width under it.
export function sqlParts(sql, label = "SQL", open = false) {
  if (!sql) return null;
  const pre = h("pre", { class: "sql", text: sql });
  pre.hidden = !open;
  const toggle = h("button", { type: "button", class: "sqltoggle" + (open ? " open" : ""), text: label + (open ? " ▾" : " ▸") });
  toggle.addEventListener("click", () => {
    pre.hidden = !pre.hidden;
    toggle.textContent = label + (pre.hidden ? " ▸" : " ▾");
    toggle.classList.toggle("open", !pre.hidden);
  });
  return { controls: h("span", { class: "sqlctl" }, toggle, copyButton(() => sql, pre)), pre };
}

// sqlBlock is a collapsible, copyable SQL snippet.
export function sqlBlock(sql, label = "SQL", open = false) {
  const p = sqlParts(sql, label, open);
  return p ? h("div", { class: "sqlbox" }, p.controls, p.pre) : null;
}

// table renders rows (arrays of cells: nodes or values) under headers.
export function table(headers, rows, opts = {}) {
  return h("table", { class: "grid" + (opts.class ? " " + opts.class : "") },
    h("thead", null, h("tr", null, headers.map((x) => h("th", { text: x })))),
    h("tbody", null, rows));
}

export function cell(v, cls) {
  if (v instanceof Node) return h("td", { class: cls }, v);
  const s = str(v);
  return h("td", { class: cls, title: s.length > 40 ? s : null, text: s });
}

export function notAvailable(what) {
  return h("div", { class: "empty" }, `${what} not available: no data source is wired for it.`);
}
