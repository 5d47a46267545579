// Ask: a question in plain language; shows the answer, the SQL it ran
// (copyable) and the rows.
import { h, replace, str, sqlBlock, notAvailable, cell } from "../dom.js";
import { api } from "../conn.js";
import { store } from "../store.js";

let root = null;
let out = null;
let busy = false;
const history = []; // this tab's earlier answers, newest first (max 10)

function answerView(q, a) {
  const cols = Array.isArray(a.columns) ? a.columns : [];
  const rows = Array.isArray(a.rows) ? a.rows : [];
  return h("section", { class: "card answer" },
    h("div", { class: "question", text: q }),
    h("div", { class: "answer-text", text: str(a.text) || "(no answer text)" }),
    a.sql ? sqlBlock(a.sql, "SQL that ran", true) : h("div", { class: "muted small", text: "No SQL was run." }),
    rows.length
      ? h("div", { class: "tablewrap" }, h("table", { class: "grid" },
        h("thead", null, h("tr", null, cols.map((c) => h("th", { text: str(c) })))),
        h("tbody", null, rows.slice(0, 1000).map((r) => h("tr", null, (Array.isArray(r) ? r : [r]).map((v) => cell(v)))))))
      : h("div", { class: "muted small", text: "No rows." }),
    rows.length > 1000 ? h("div", { class: "muted small", text: `first 1000 of ${rows.length} rows` }) : null);
}

function renderOut() {
  if (out) replace(out, history.map(({ q, a, err }) => err
    ? h("section", { class: "card answer" }, h("div", { class: "question", text: q }), h("div", { class: "error-text", text: err }))
    : answerView(q, a)));
}

export const ask = {
  mount(el) {
    root = el;
    if (!store.config.ask) {
      replace(root, h("h1", { text: "Ask" }), notAvailable("Asking questions"));
      return;
    }
    const ta = h("textarea", { name: "question", rows: 3, id: "question", spellcheck: "false",
      placeholder: "e.g. which processes opened connections to new destinations in the last hour?" });
    const btn = h("button", { type: "submit", class: "primary", text: "Ask" });
    const state = h("span", { class: "muted" });
    const form = h("form", { class: "askform" }, ta, h("div", { class: "row" }, btn, state));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const q = ta.value.trim();
      if (!q || busy) return;
      busy = true;
      btn.disabled = true;
      replace(state, "Asking… (the LLM writes SQL, ClickHouse runs it)");
      try {
        const a = await api("/api/ask", { method: "POST", body: { question: q } });
        history.unshift({ q, a });
      } catch (e) {
        history.unshift({ q, err: "Failed: " + str(e.message) });
      } finally {
        busy = false;
        btn.disabled = false;
        replace(state);
        if (history.length > 10) history.length = 10;
        renderOut();
      }
    });
    ta.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
    });
    out = h("div", { id: "answers" });
    replace(root, h("h1", { text: "Ask" }), form, h("p", { class: "muted small", text: "Ctrl+Enter to send. Answers are generated; check the SQL." }), out);
    renderOut();
  },
  unmount() {
    root = null;
    out = null;
  },
};
