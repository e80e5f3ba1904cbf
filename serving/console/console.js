"use strict";
const PAGE = 20;
let token = sessionStorage.getItem("fraudgraph-token") || "";
let offset = 0, current = null;
const $ = (id) => document.getElementById(id);
const status = (msg, bad) => { $("status").textContent = msg; $("status").className = bad ? "error" : ""; };

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "Authorization": "Bearer " + token,
    "Content-Type": "application/json", ...(options.headers || {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}

function text(tag, value, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = value;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

async function loadQueue(done = "") {
  try {
    const page = await api(`/v1/reviews?status=open&offset=${offset}&limit=${PAGE}`);
    const body = $("queue").querySelector("tbody");
    body.replaceChildren();
    for (const c of page.cases) {
      const row = document.createElement("tr");
      row.dataset.customer = c.customer_id;
      row.append(text("td", c.customer_id), text("td", c.score == null ? "-" : c.score.toFixed(3)),
                 text("td", c.lifetime_value == null ? "-" : c.lifetime_value.toFixed(2)),
                 text("td", c.reason_codes.join(", ")));
      row.addEventListener("click", () => openCase(c.customer_id));
      body.append(row);
    }
    $("queue-total").textContent = `(${page.total} open)`;
    $("next").disabled = page.next_offset == null;
    $("prev").disabled = offset === 0;
    status(`${done}queue loaded: ${page.total} open`);
  } catch (e) { status(e.message, true); }
}

async function openCase(id) {
  try {
    const [customer, hood] = await Promise.all([api(`/v1/customers/${encodeURIComponent(id)}`),
      api(`/v1/customers/${encodeURIComponent(id)}/neighbourhood?hops=1&limit=60`)]);
    current = id;
    $("case").hidden = false;
    $("case-id").textContent = id;
    $("case-summary").textContent = `score ${customer.score == null ? "-" : customer.score.toFixed(3)}, ` +
      `decision ${customer.decision || "-"}, lifetime value ${customer.lifetime_value ?? "-"}, ` +
      `label ${customer.label || "-"}, model ${customer.model_version || "-"}`;
    $("case-codes").replaceChildren(...customer.reason_codes.map((c) => text("span", c)));
    $("note").value = "";
    drawGraph(id, hood);
    status(`case ${id} open`);
  } catch (e) { status(e.message, true); }
}

function drawGraph(centreId, hood) {
  const svg = $("graph"), NS = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const node = (tag, attrs, title) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (title) { const t = document.createElementNS(NS, "title"); t.textContent = title; el.append(t); }
    svg.append(el); return el;
  };
  const idents = hood.identifiers, customers = hood.customers, pos = {};
  pos["c:" + centreId] = [0, 0];
  idents.forEach((d, i) => { const a = 2 * Math.PI * i / Math.max(1, idents.length);
    pos[`i:${d.kind}:${d.value_hash}`] = [110 * Math.cos(a), 110 * Math.sin(a)]; });
  customers.forEach((c, i) => { const a = 2 * Math.PI * i / Math.max(1, customers.length) + 0.2;
    pos["c:" + c.customer_id] = [230 * Math.cos(a), 180 * Math.sin(a)]; });
  const line = (a, b) => node("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: "#c5ccd6" });
  idents.forEach((d) => line(pos["c:" + centreId], pos[`i:${d.kind}:${d.value_hash}`]));
  customers.forEach((c) => c.via.forEach((v) => { if (pos["i:" + v]) line(pos["i:" + v], pos["c:" + c.customer_id]); }));
  idents.forEach((d) => { const [x, y] = pos[`i:${d.kind}:${d.value_hash}`];
    node("rect", { x: x - 6, y: y - 6, width: 12, height: 12, fill: "#2b6cb0", class: "identifier" },
         `${d.kind} shared by ${d.degree}${d.truncated ? " (capped)" : ""}`);
    node("text", { x: x + 8, y: y + 4, "font-size": 10 }).textContent = `${d.kind} (${d.degree})`; });
  customers.forEach((c) => { const [x, y] = pos["c:" + c.customer_id];
    const fraud = c.label === "fraud";
    node("circle", { cx: x, cy: y, r: 6, fill: fraud ? "#b00020" : "#4a5568",
      class: fraud ? "customer fraud" : "customer" }, `${c.customer_id} ${c.label || ""} ${c.decision || ""}`); });
  node("circle", { cx: 0, cy: 0, r: 9, fill: "#e67e22", class: "customer centre" }, centreId);
}

async function record(outcome) {
  if (!current) return;
  try {
    await api(`/v1/reviews/${encodeURIComponent(current)}`, { method: "POST",
      body: JSON.stringify({ outcome, note: $("note").value }) });
    const id = current;
    $("case").hidden = true; current = null;
    await loadQueue(`recorded ${outcome} for ${id}; `);
  } catch (e) { status(e.message, true); }
}

$("save-token").addEventListener("click", () => { token = $("token").value.trim();
  sessionStorage.setItem("fraudgraph-token", token); offset = 0; loadQueue(); });
$("next").addEventListener("click", () => { offset += PAGE; loadQueue(); });
$("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadQueue(); });
$("outcome-fraud").addEventListener("click", () => record("fraud"));
$("outcome-legit").addEventListener("click", () => record("legit"));
if (token) loadQueue(); else status("enter an API token with the read and review scopes");
