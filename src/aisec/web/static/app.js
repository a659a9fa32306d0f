// aisec serve UI: every call goes to the public API (/api/v1); unsafe methods carry the CSRF header.
"use strict";
const API = "/api/v1";
function csrf() { const m = document.cookie.match(/(?:^|; )aisec_csrf=([^;]*)/); return m ? decodeURIComponent(m[1]) : ""; }
async function api(path, opts = {}) {
  const o = Object.assign({ credentials: "same-origin", headers: {} }, opts);
  if (o.method && o.method !== "GET") o.headers["X-CSRF-Token"] = csrf();
  if (o.json !== undefined) { o.headers["Content-Type"] = "application/json"; o.body = JSON.stringify(o.json); }
  const r = await fetch(API + path, o);
  const ct = r.headers.get("content-type") || "";
  const body = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) { const d = body && body.detail; throw new Error(typeof d === "string" ? d : (d ? JSON.stringify(d) : `${r.status} ${r.statusText}`)); }
  return body;
}
function say(text, ok = false) { const m = document.getElementById("message"); m.textContent = text; m.hidden = !text; m.classList.toggle("ok", ok); }
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
}
const names = (xs) => (xs || []).map((x) => (typeof x === "string" ? x : x.name));
function debounce(f, ms) { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); }; }

// ---- new assessment -------------------------------------------------------------------------------
let CAT = null; const uploads = {};
function taskEntry(task) { return (CAT.tasks || []).find((t) => (t.name || t) === task) || {}; }
function fill(select, options, extra) {
  select.replaceChildren(...options.map((n) => el("option", { value: n, text: n })));
  if (extra) select.append(el("option", { value: extra, text: `uploaded: ${extra}` }));
}
function paramInput(check, p) {
  const id = `p-${check}-${p.name}`;
  const t = p.type || typeof p.default;
  let inp;
  if (t === "boolean" || t === "bool") { inp = el("input", { type: "checkbox", id }); inp.checked = !!p.default; }
  else if (p.choices || p.enum) { inp = el("select", { id }); fill(inp, p.choices || p.enum); if (p.default != null) inp.value = p.default; }
  else { inp = el("input", { id, type: (t === "integer" || t === "number" || t === "int" || t === "float") ? "text" : "text" });
         inp.value = p.default == null ? "" : (Array.isArray(p.default) ? p.default.join(",") : p.default); }
  inp.dataset.check = check; inp.dataset.param = p.name; inp.dataset.type = t;
  inp.dataset.initial = inp.type === "checkbox" ? String(inp.checked) : inp.value;  // unchanged: not sent
  if (p.help) inp.title = p.help;
  return [el("label", { for: id, text: p.name }), inp];
}
function value(inp) {
  if (inp.type === "checkbox") return inp.checked;
  const v = inp.value.trim(), t = inp.dataset.type;
  if (t === "array" || t === "list" || v.includes(",")) return v ? v.split(",").map((s) => (isNaN(+s) || s.trim() === "" ? s.trim() : +s)) : [];
  if (t === "integer" || t === "int" || t === "number" || t === "float") return v === "" ? null : +v;
  return v;
}
function renderChecks(task) {
  const box = document.getElementById("checks"); box.querySelectorAll(".check").forEach((c) => c.remove());
  for (const c of CAT.checks || []) {
    if (c.tasks && !c.tasks.includes(task)) continue;
    const id = `c-${c.name}`;
    const cb = el("input", { type: "checkbox", id, value: c.name }); cb.dataset.checkbox = c.name;
    const params = el("div", { class: "params" });
    for (const p of c.params || []) if (p.type !== "object" && p.type !== "dict" && p.name !== "seed") params.append(...paramInput(c.name, p));
    if (c.attacks && c.attacks.length && !(c.params || []).some((p) => p.name === "attacks"))
      params.append(...paramInput(c.name, { name: "attacks", type: "array", default: names(c.attacks).slice(0, 1), help: `one or more of ${names(c.attacks).join(", ")}` }));
    box.append(el("div", { class: "check" }, cb, el("label", { for: id, text: ` ${c.name}` }), (c.help || c.summary) ? el("small", { text: ` — ${c.help || c.summary}` }) : "", params));
  }
}
function body() {
  const task = (document.querySelector("input[name=task]:checked") || {}).value;
  const checks = {};
  document.querySelectorAll("[data-checkbox]").forEach((cb) => {
    if (!cb.checked) return;
    const ps = {};
    document.querySelectorAll(`[data-check="${cb.value}"]`).forEach((i) => {
      const now = i.type === "checkbox" ? String(i.checked) : i.value;
      if (now === i.dataset.initial) return;  // the check's own default applies
      const v = value(i); if (v !== null && v !== "") ps[i.dataset.param] = v; });
    checks[cb.value] = ps;
  });
  return { task, dataset: document.getElementById("dataset").value, model: document.getElementById("model").value,
           checks, seed: +document.getElementById("seed").value || 0 };
}
const preview = debounce(async () => {
  const b = body();
  if (!Object.keys(b.checks).length) { document.getElementById("command").textContent = "(pick at least one check)"; return; }
  try {
    const r = await api("/plans/preview", { method: "POST", json: b });
    document.getElementById("command").textContent = r.command;
    document.getElementById("plan-yaml").textContent = r.plan_yaml;
    document.getElementById("download-plan").href = "data:application/x-yaml;charset=utf-8," + encodeURIComponent(r.plan_yaml);
    say("");
  } catch (e) { say(`Plan not valid: ${e.message}`); }
}, 250);
function onTask() {
  const task = document.querySelector("input[name=task]:checked").value, t = taskEntry(task);
  fill(document.getElementById("dataset"), names(t.datasets), uploads.dataset);
  fill(document.getElementById("model"), names(t.models), uploads.model);
  renderChecks(task); preview();
}
async function upload(ev) {
  const inp = ev.target, f = inp.files[0]; if (!f) return;
  const fd = new FormData(); fd.append("kind", inp.dataset.kind); fd.append("file", f);
  try {
    const r = await api("/uploads", { method: "POST", body: fd });
    uploads[inp.dataset.kind] = `upload:${r.upload_id}`; onTask();
    document.getElementById(inp.dataset.kind).value = `upload:${r.upload_id}`; preview();
    say(`Uploaded ${r.name} (${r.size} bytes)`, true);
  } catch (e) { inp.value = ""; say(`Upload refused: ${e.message}`); }
}
async function pageNew() {
  CAT = await api("/catalogue");
  if (CAT.tasks && !Array.isArray(CAT.tasks)) CAT.tasks = Object.entries(CAT.tasks).map(([name, v]) => ({ name, ...v }));
  const box = document.getElementById("tasks");
  (CAT.tasks || []).forEach((t, i) => {
    const n = t.name || t, id = `task-${n}`;
    const r = el("input", { type: "radio", name: "task", id, value: n }); if (i === 0) r.checked = true;
    box.append(r, el("label", { for: id, text: ` ${n} ` }));
  });
  const form = document.getElementById("assess");
  form.addEventListener("change", (e) => { if (e.target.name === "task") onTask(); else if (e.target.type !== "file") preview(); });
  form.addEventListener("input", (e) => { if (e.target.type !== "file") preview(); });
  document.querySelectorAll("input[type=file]").forEach((i) => i.addEventListener("change", upload));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { const r = await api("/runs", { method: "POST", json: body() }); location.href = `/runs/${r.run_id}`; }
    catch (err) { say(`Run not started: ${err.message}`); }
  });
  onTask();
}

// ---- runs -----------------------------------------------------------------------------------------
async function pageRuns() {
  const runs = await api("/runs"), tb = document.querySelector("#runs-table tbody");
  const items = Array.isArray(runs) ? runs : runs.runs || [];
  tb.replaceChildren(...items.map((r) => {
    const sel = el("input", { type: "checkbox", "aria-label": `select ${r.id}`, value: r.id });
    const cancel = el("button", { type: "button", text: "Cancel" }), rerun = el("button", { type: "button", text: "Re-run" });
    cancel.onclick = async () => { try { await api(`/runs/${r.id}/cancel`, { method: "POST" }); pageRuns(); } catch (e) { say(e.message); } };
    rerun.onclick = async () => { try { const n = await api(`/runs/${r.id}/rerun`, { method: "POST" }); location.href = `/runs/${n.run_id}`; } catch (e) { say(e.message); } };
    return el("tr", {}, el("td", {}, sel, " ", el("a", { href: `/runs/${r.id}`, text: r.id })), el("td", { text: r.created || "" }),
      el("td", { text: r.status || "" }), el("td", { text: r.model || "" }), el("td", { text: r.dataset || "" }),
      el("td", { text: names(r.checks).join(", ") }), el("td", { text: r.verdict || "" }), el("td", {}, cancel, " ", rerun));
  }));
  const link = document.getElementById("compare-selected");
  link.onclick = (e) => { const ids = [...tb.querySelectorAll("input:checked")].map((c) => c.value);
    e.preventDefault(); location.href = "/compare?" + ids.map((i) => `runs=${encodeURIComponent(i)}`).join("&"); };
}

// ---- a run ----------------------------------------------------------------------------------------
function curves(result) {
  // robustness curves from result.json: any object with attack + points[{eps, robust_accuracy, ci}]
  const out = [];
  (function walk(o) {
    if (!o || typeof o !== "object") return;
    if (Array.isArray(o)) { o.forEach(walk); return; }
    if (o.attack && Array.isArray(o.points) && o.points.length && "robust_accuracy" in o.points[0]) { out.push(o); return; }
    Object.values(o).forEach(walk);
  })(result);
  return out;
}
function chart(div, series) {
  const traces = [];
  series.forEach(({ label, curve }, i) => {
    const xs = curve.points.map((p) => p.eps), color = `hsl(${(i * 67) % 360},60%,40%)`;
    const lo = curve.points.map((p) => (p.ci ? p.ci.low : p.robust_accuracy)), hi = curve.points.map((p) => (p.ci ? p.ci.high : p.robust_accuracy));
    traces.push({ x: xs.concat([...xs].reverse()), y: hi.concat([...lo].reverse()), fill: "toself", fillcolor: color.replace("hsl", "hsla").replace(")", ",0.15)"),
                  line: { width: 0 }, hoverinfo: "skip", showlegend: false, type: "scatter" });
    traces.push({ x: xs, y: curve.points.map((p) => p.robust_accuracy), name: label, mode: "lines+markers", line: { color }, type: "scatter" });
  });
  if (!traces.length) { div.textContent = "No robustness curves in this result."; return; }
  if (window.Plotly) window.Plotly.newPlot(div, traces, { xaxis: { title: { text: "eps" } }, yaxis: { title: { text: "robust accuracy" }, range: [0, 1.02] },
    margin: { t: 20 }, dragmode: "zoom" }, { responsive: true, displaylogo: false });
  else div.textContent = "plotly.min.js not available";
}
const curveLabel = (c) => `${c.attack} ${c.norm || ""}${c.targeted ? " targeted" : ""}`.trim();
async function showResults(id, info) {
  document.getElementById("results").hidden = false;
  const s = info.summary || {};
  const v = info.verdict || (info.policy && info.policy.verdict) || s.verdict;
  document.getElementById("verdict").textContent = typeof v === "boolean" ? (v ? "pass" : "fail")
    : v && typeof v === "object" ? (v.verdict || v.status || (v.passed ? "pass" : "fail")) : (v || "not judged (no policy)");
  document.getElementById("reliability").textContent = info.reliability || s.reliability || "—";
  const dl = document.getElementById("downloads");
  dl.replaceChildren(el("a", { href: `${API}/runs/${id}/report`, text: "report.html", download: "report.html" }), " · ",
    el("a", { href: `${API}/runs/${id}/result`, text: "result.json", download: "result.json" }), " · ",
    el("a", { href: `${API}/runs/${id}/bundle`, text: "evidence bundle", download: "" }));
  let result = {}; try { result = await api(`/runs/${id}/result`); } catch (e) { say(`result.json: ${e.message}`); }
  chart(document.getElementById("chart"), curves(result).map((c) => ({ label: curveLabel(c), curve: c })));
  const arts = (info.artifacts || info.artefacts || []).map((a) => (typeof a === "string" ? a : a.path));
  document.getElementById("examples").replaceChildren(...arts.filter((p) => /\.png$/i.test(p)).slice(0, 12)
    .map((p) => el("img", { src: `${API}/runs/${id}/artifacts/${p}`, alt: `artefact ${p}` })));
  const ex = []; (function walk(o, k) { if (!o || typeof o !== "object") return; for (const [kk, v] of Object.entries(o)) {
    if (/explanation|explain/i.test(kk) && typeof v === "string") ex.push(v); else walk(v, kk); } })(result);
  document.getElementById("explanations").replaceChildren(...(ex.length ? ex : ["—"]).slice(0, 20).map((t) => el("li", { text: t })));
  try { const ev = await api(`/evidence?run=${encodeURIComponent(id)}`); const items = Array.isArray(ev) ? ev : ev.records || [];
    document.querySelector("#evidence tbody").replaceChildren(...items.map((r) => el("tr", {}, el("td", { text: r.id }), el("td", { text: r.metric || r.kind || "" }), el("td", { text: r.value == null ? "" : String(r.value) }))));
  } catch (e) { /* the evidence table stays empty */ }
  document.getElementById("report").src = `${API}/runs/${id}/report`;
}
async function pageRun(root) {
  const id = root.dataset.runId, prog = document.getElementById("progress"), log = document.getElementById("log");
  const status = document.getElementById("status"), rows = {};
  document.getElementById("cancel").onclick = async () => { try { await api(`/runs/${id}/cancel`, { method: "POST" }); } catch (e) { say(e.message); } };
  document.getElementById("rerun").onclick = async () => { try { const n = await api(`/runs/${id}/rerun`, { method: "POST" }); location.href = `/runs/${n.run_id}`; } catch (e) { say(e.message); } };
  const finish = async () => { const info = await api(`/runs/${id}`); status.textContent = info.status; if (["complete", "done", "finished"].includes(info.status)) await showResults(id, info); };
  const info = await api(`/runs/${id}`); status.textContent = info.status;
  if (["complete", "done", "finished", "failed", "cancelled", "interrupted"].includes(info.status)) { await finish(); return; }
  const es = new EventSource(`${API}/runs/${id}/events`);
  es.addEventListener("progress", (m) => { const d = JSON.parse(m.data), key = d.task || "run";
    rows[key] = rows[key] || prog.appendChild(el("li"));
    rows[key].textContent = `${key} ${d.done ?? ""}/${d.total ?? "?"}${d.done === d.total ? " … completed" : " …"}`;
    log.textContent += `${key} ${d.done}/${d.total}\n`; });
  es.addEventListener("status", (m) => { const d = JSON.parse(m.data); status.textContent = d.status || m.data; });
  es.addEventListener("log", (m) => { log.textContent += m.data + "\n"; });
  es.addEventListener("done", async () => { es.close(); await finish(); });
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) finish(); };
}

// ---- compare --------------------------------------------------------------------------------------
function table(t, rows) {
  if (!rows.length) { t.querySelector("thead").replaceChildren(); t.querySelector("tbody").replaceChildren(el("tr", {}, el("td", { text: "none" }))); return; }
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  t.querySelector("thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { scope: "col", text: c }))));
  t.querySelector("tbody").replaceChildren(...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", { text: typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : (r[c] ?? "") })))));
}
async function pageCompare() {
  const ids = new URLSearchParams(location.search).getAll("runs");
  if (ids.length >= 2) {
    try { const c = await api("/compare?" + ids.map((i) => `runs=${encodeURIComponent(i)}`).join("&"));
      table(document.getElementById("compare-table"), Array.isArray(c) ? c : c.rows || [c]); } catch (e) { say(`Compare: ${e.message}`); }
    const series = [];
    for (const id of ids) { try { curves(await api(`/runs/${id}/result`)).forEach((cv) => series.push({ label: `${id}: ${curveLabel(cv)}`, curve: cv })); } catch (e) { /* skip */ } }
    chart(document.getElementById("chart"), series);
  } else say("Pick two or more runs on the Runs page to compare them.");
  try { const lb = await api("/leaderboard"); table(document.getElementById("leaderboard"), Array.isArray(lb) ? lb : lb.rows || []); } catch (e) { say(`Leaderboard: ${e.message}`); }
}

// ---- evidence -------------------------------------------------------------------------------------
async function pageEvidence() {
  // bound first: a click while the records are still loading must not be lost
  document.getElementById("verify").onclick = async () => {
    try { const r = await api("/evidence/verify", { method: "POST" }); document.getElementById("verify-report").textContent = r.text || JSON.stringify(r, null, 2);
      say(r.ok === false ? "Evidence verification FAILED" : "Evidence verified: ok", r.ok !== false); } catch (e) { say(`Verify: ${e.message}`); }
  };
  const ev = await api("/evidence"), items = Array.isArray(ev) ? ev : ev.records || [];
  document.querySelector("#evidence-table tbody").replaceChildren(...items.map((r) => el("tr", {}, el("td", { text: r.id }),
    el("td", { text: r.run_id || "" }), el("td", { text: r.check || "" }), el("td", { text: r.metric || "" }),
    el("td", { text: r.value ?? "" }), el("td", { text: r.stored_at || "" }))));
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-page]"); if (!root) return;
  const f = { new: pageNew, runs: pageRuns, run: pageRun, compare: pageCompare, evidence: pageEvidence }[root.dataset.page];
  if (f) f(root).catch((e) => say(e.message));
});
