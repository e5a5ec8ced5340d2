// The scheduler dashboard: polls the scheduler's REST API (same origin, same bearer token) once a second.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "msfl-manage-token";
const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(path, body) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  const init = { method: body === undefined ? "GET" : "POST", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = {};
  try { data = await resp.json(); } catch (e) { data = { error_message: "HTTP " + resp.status }; }
  return { status: resp.status, data };
}

function text(id, value) { $(id).textContent = value === null || value === undefined ? "-" : String(value); }

function banner(message) {
  const el = $("banner");
  el.textContent = message || "";
  el.classList.toggle("hidden", !message);
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "-";
  return ms < 10000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

function result(it) { return it.success === null ? "unknown" : it.success ? "success" : "fail"; }

function fmtNum(x) { return x === null || x === undefined ? "-" : Number(x).toFixed(4); }

function renderCluster(c) {
  text("fl-instance", c.instance ? "instance " + c.instance : "no cluster yet");
  text("state", c.state);
  text("iteration", c.iteration);
  text("iteration-num", c.fl_iteration_num);
  text("live-servers", c.live_servers);
  text("live-workers", c.live_workers);
  text("last-result", c.last_result || "-");
  const p = c.progress || {};
  const upd = p.updateModel || {};
  text("update-count", upd.count || 0);
  text("update-threshold", upd.threshold || 0);
  const pct = upd.threshold ? Math.min(100, 100 * (upd.count || 0) / upd.threshold) : 0;
  $("update-bar").style.width = pct + "%";
  const start = p.startFLJob || {};
  text("start-threshold", start.threshold || 0);
  text("start-window", start.opened_ms ? "open since " + new Date(start.opened_ms).toLocaleTimeString() : "not open");
  renderNodes(c.nodes || []);
}

function renderNodes(nodes) {
  const body = $("nodes");
  body.replaceChildren();
  const select = $("scale-in-node");
  const chosen = select.value;
  select.replaceChildren();
  for (const n of nodes) {
    const tr = document.createElement("tr");
    for (const v of [n.node_id, n.role, n.rank === undefined ? "-" : n.rank, n.alive ? "yes" : "no"]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
    if (n.role !== "WORKER" && n.alive) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = n.node_id;
      select.appendChild(opt);
    }
  }
  if (chosen) select.value = chosen;
}

function renderIterations(items) {
  const strip = $("strip");
  strip.replaceChildren();
  const body = $("iterations");
  body.replaceChildren();
  for (const it of items) {
    const cell = document.createElement("span");
    cell.className = it.success === null ? "unknown" : it.success ? "ok" : "fail";
    cell.title = "iteration " + it.iteration + ": " + result(it);
    strip.appendChild(cell);
  }
  for (const it of items.slice().reverse().slice(0, 50)) {
    const tr = document.createElement("tr");
    tr.dataset.iteration = it.iteration;
    const cells = [it.iteration, result(it), fmtMs(it.duration_ms),
      it.participants === null ? "-" : it.participants, fmtNum(it.loss), fmtNum(it.accuracy), it.result || ""];
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      td.textContent = v;
      if (i === 1) td.className = it.success === null ? "muted" : it.success ? "ok" : "bad";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  drawCurves(items.filter((it) => it.loss !== null && it.loss !== undefined));
}

function drawCurves(points) {
  const canvas = $("curves");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#c6cdd9";
  ctx.strokeRect(pad, 10, w - pad - 10, h - pad - 10);
  if (points.length === 0) return;
  const xs = points.map((p) => p.iteration);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const maxLoss = Math.max(1e-9, ...points.map((p) => p.loss));
  const x = (v) => pad + (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)) * (w - pad - 20);
  const y = (v, top) => 10 + (1 - v / top) * (h - pad - 10);
  const line = (key, top, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(p.iteration), y(p[key], top)));
    ctx.stroke();
  };
  line("loss", maxLoss, "#d9822b");
  line("accuracy", 1, "#2f6fd6");
  ctx.fillStyle = "#6b7385";
  ctx.fillText(String(x0), pad, h - 8);
  ctx.fillText(String(x1), w - 40, h - 8);
}

let tokenRequired = null;   // asked once: without a token the page does not call what would refuse it

async function refresh() {
  try {
    if (tokenRequired === null) {
      const resp = await fetch("/dashboard/api/access");
      tokenRequired = (await resp.json()).token_required;
    }
    if (tokenRequired && !token()) {
      banner("This scheduler requires its management token: enter it above.");
      return;
    }
    const { status, data } = await api("/dashboard/api/overview");
    if (status === 401) {
      banner("This scheduler requires its management token: enter it above.");
      return;
    }
    if (status !== 200) {
      banner(data.error_message || "HTTP " + status);
      return;
    }
    banner(data.cluster && data.cluster.error ? "cluster state: " + data.cluster.error : "");
    renderCluster(data.cluster || {});
    renderIterations(data.iterations || []);
  } catch (e) {
    banner("scheduler unreachable");
  }
}

async function act(path, body) {
  const { status, data } = await api(path, body);
  $("action-result").textContent = path + ": " + (data.message || data.error_message || "HTTP " + status);
  refresh();
}

function formNumbers(form) {
  const out = {};
  for (const input of form.querySelectorAll("input")) {
    if (input.value !== "") out[input.name] = Number(input.value);
  }
  return out;
}

function setup() {
  $("token").value = token();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    refresh();
  });
  $("enable").addEventListener("click", () => act("/enableFLS", {}));
  $("disable").addEventListener("click", () => act("/disableFLS", {}));
  $("new-instance").addEventListener("submit", (e) => {
    e.preventDefault();
    act("/newInstance", formNumbers(e.target));
  });
  $("scale-out").addEventListener("submit", (e) => {
    e.preventDefault();
    act("/scaleout", { worker_num: 0, ...formNumbers(e.target) });
  });
  $("scale-in").addEventListener("submit", (e) => {
    e.preventDefault();
    const node = $("scale-in-node").value;
    if (node) act("/scalein", { node_ids: [node] });
  });
  refresh();
  setInterval(refresh, POLL_MS);
}

setup();
