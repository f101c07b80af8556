/* Waterflow console: one page, hash routes (#/runs, #/runs/<id>, #/agents, ...), and nothing but
 * the public REST API (/v1), with the same API key rules as any other client.
 *
 * Rules kept throughout:
 *  - user data (workflow, job and step names, log text, errors) is inserted as text only:
 *    el() and text nodes, never innerHTML;
 *  - the API key lives in sessionStorage and goes in the Authorization header, never in a URL;
 *  - live updates: the runs list polls every 2 s; a run reads its NDJSON /watch stream with
 *    fetch() (EventSource cannot send the Authorization header).
 */
"use strict";

const KEY_STORAGE = "waterflow.apiKey";
const DRAFT_STORAGE = "waterflow.draft";
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const MAX_LINES_PER_STEP = 5000;

/* ------------------------------------------------------------------ DOM and formatting */

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  return add(node, children);
}

function add(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace node's children (null and false are left out, strings become text). */
function fill(node, ...children) {
  node.replaceChildren();
  return add(node, children);
}

function cssToken(value) {
  return String(value || "none").toLowerCase().replace(/[^a-z0-9-]/g, "-");
}

function badge(status, extra) {
  return el("span", { class: `status status-${cssToken(status)}` + (extra ? " " + extra : "") }, status || "—");
}

function runLink(id, text) {
  return el("a", { href: "#/runs/" + encodeURIComponent(id) }, text || id);
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (isNaN(d)) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtClock(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

/** Seconds from start to end; a started, unfinished thing counts up to now. */
function elapsed(start, end) {
  if (!start) return null;
  const to = end ? Date.parse(end) : Date.now();
  return Math.max(0, (to - Date.parse(start)) / 1000);
}

function pairs(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return "";
  return entries.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

function table(headings, rows, props) {
  return el("table", props || {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function section(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), children);
}

function notice(kind, ...text) {
  return el("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/* ------------------------------------------------------------------ API access and the key */

class ApiError extends Error {
  constructor(status, title, detail, body) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.body = body;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(path, options = {}) {
  const headers = authHeaders();
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  let response;
  try {
    response = await fetch(path, { method: options.method || "GET", headers, body, signal: options.signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    setConnection("the API cannot be reached");
    throw new ApiError(0, "the API cannot be reached", error.message);
  }
  setConnection("");
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { title: text };
  }
  if (response.status === 401) {
    askForKey(sessionStorage.getItem(KEY_STORAGE) ? "The API refused the key; enter it again." : "");
    throw new ApiError(401, "unauthorized", data && data.detail, data);
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.title) || response.statusText, data && data.detail, data);
  return data;
}

function setConnection(problem) {
  const box = document.getElementById("connection");
  box.textContent = problem;
  box.classList.toggle("bad", Boolean(problem));
}

/** The key form: shown instead of the page the first time the API answers 401. */
function askForKey(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  updateKeyButton();
  if (document.getElementById("key-form")) return;
  stopPage();
  const input = el("input", { type: "password", id: "api-key", autocomplete: "off", required: true, placeholder: "API key" });
  const form = el("form", { id: "key-form", class: "panel key-form", method: "post", action: "#" },
    el("h1", {}, "API key needed"),
    el("p", {}, "This Waterflow API is protected by a key (WATERFLOW_API_KEY). The console keeps it for this browser tab only and sends it as an Authorization header."),
    message ? notice("error", message) : null,
    el("label", { for: "api-key" }, "Key "), input, " ",
    el("button", { type: "submit" }, "Continue"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    updateKeyButton();
    route();
  });
  fill(document.getElementById("main"), form);
  input.focus();
}

function updateKeyButton() {
  document.getElementById("forget-key").hidden = !sessionStorage.getItem(KEY_STORAGE);
}

/* ------------------------------------------------------------------ router */

let stopCurrent = null;

function stopPage() {
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
}

/** Per-page context: timers and streams registered here stop when the page is left. */
function newContext() {
  const stops = [];
  const ctx = { alive: true, onStop: (fn) => stops.push(fn) };
  stopCurrent = () => {
    ctx.alive = false;
    stops.forEach((fn) => fn());
  };
  return ctx;
}

/** Call fn now and then every ms milliseconds after it finished, while the page is shown. */
function poll(ctx, ms, fn) {
  let timer = null;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      if (error.status === 401) return;
    }
    if (ctx.alive) timer = setTimeout(tick, ms);
  };
  ctx.onStop(() => clearTimeout(timer));
  tick();
}

const PAGES = { runs: runsPage, run: runPage, agents: agentsPage, nodes: nodesPage, triggers: triggersPage, secrets: secretsPage, submit: submitPage };

function route() {
  stopPage();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  let name = parts[0] || "runs";
  if (name === "runs" && parts[1]) name = "run";
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === (name === "run" ? "runs" : name));
  }
  const main = document.getElementById("main");
  fill(main);
  const ctx = newContext();
  ctx.main = main;
  const page = PAGES[name];
  if (!page) {
    main.append(notice("error", "No such page: ", location.hash));
    return;
  }
  page(ctx, parts[1]);
}

/** Show an error at the top of the page (not for 401: the key form replaced the page). */
function showError(ctx, box, error) {
  if (!ctx.alive || error.status === 401 || error.name === "AbortError") return;
  fill(box, notice("error", error.message));
}

/* ------------------------------------------------------------------ page: runs */

function runsPage(ctx) {
  const cursors = [null];
  let runs = [];
  let next = null;
  const statusFilter = el("select", { id: "status-filter", "aria-label": "status", onchange: draw },
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) => el("option", { value: s }, s || "every status")));
  const nameFilter = el("input", { type: "search", id: "name-filter", placeholder: "workflow name", "aria-label": "workflow name", oninput: draw });
  const triggerFilter = el("select", { id: "trigger-filter", "aria-label": "started by", onchange: draw },
    ["", "api", "schedule", "webhook"].map((s) => el("option", { value: s }, s ? "started by " + s : "started by anything")));
  const count = el("span", { class: "muted" });
  const rows = el("tbody");
  const errors = el("div");
  const newer = el("button", { type: "button", onclick: () => { cursors.pop(); refresh(); } }, "← Newer");
  const older = el("button", { type: "button", onclick: () => { cursors.push(next); refresh(); } }, "Older →");
  ctx.main.append(
    el("h1", {}, "Runs"), errors,
    el("div", { class: "toolbar" }, statusFilter, nameFilter, triggerFilter, count),
    el("table", { id: "runs", class: "list" },
      el("thead", {}, el("tr", {}, ["Status", "Workflow", "Run", "Attempt", "Started by", "Created", "Duration", "Error"].map((h) => el("th", {}, h)))),
      rows),
    el("div", { class: "pager" }, newer, older));

  async function refresh() {
    const before = cursors[cursors.length - 1];
    try {
      const data = await api("/v1/workflows?limit=50" + (before ? "&before=" + encodeURIComponent(before) : ""));
      runs = data.runs;
      next = data.next;
      fill(errors);
      draw();
    } catch (error) {
      showError(ctx, errors, error);
      throw error;
    }
  }

  function draw() {
    const status = statusFilter.value;
    const name = nameFilter.value.trim().toLowerCase();
    const startedBy = triggerFilter.value;
    const shown = runs.filter((r) => (!status || r.status === status) && (!name || String(r.workflow).toLowerCase().includes(name))
      && (!startedBy || (r.event_name || "api") === startedBy));
    fill(rows, ...shown.map((r) => el("tr", { class: "run-row" },
      el("td", {}, badge(r.status), r.cancel_requested && !FINISHED.has(r.status) ? el("span", { class: "muted" }, " cancelling") : null),
      el("td", { class: "workflow" }, runLink(r.id, r.workflow || "(unnamed)")),
      el("td", { class: "mono" }, runLink(r.id)),
      el("td", {}, r.attempt),
      el("td", { class: "started-by" }, r.event_name || "api"),
      el("td", {}, fmtTime(r.created_at)),
      el("td", {}, fmtDuration(elapsed(r.started_at, r.finished_at))),
      el("td", { class: "error-text" }, r.error || ""))));
    if (!shown.length) rows.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, runs.length ? "No run on this page matches the filter." : "No runs yet: submit one.")));
    count.textContent = `${shown.length} of ${runs.length} runs on this page · updated ${fmtTime(new Date().toISOString()).slice(11)}`;
    newer.disabled = cursors.length === 1;
    older.disabled = !next;
  }

  poll(ctx, 2000, refresh);
}

/* ------------------------------------------------------------------ page: one run */

function runPage(ctx, runId) {
  const base = "/v1/workflows/" + encodeURIComponent(runId);
  let run = null;
  let events = [];
  let watching = false;
  let watchedOnce = false;
  let completedAttempt = 0; // the attempt of the last run.completed the watch stream delivered
  let awaitedAttempt = 0; // after Retry: the attempt the run is to reach
  let refreshTimer = null;
  const openInstances = new Set(); // instance steps the user unfolded, kept open across redraws
  const jobCards = new Map(); // job id -> its card in "Jobs"
  const actionResult = el("span", { class: "action-result", id: "action-result" });
  const logGroups = new Map(); // "job/step" -> {details, summary, body, count, lines}
  const errors = el("div");
  const header = el("div", { class: "run-header" });
  const graph = el("div", { class: "graph", id: "graph" });
  const jobs = el("div", { id: "jobs" });
  const live = el("span", { class: "live muted", id: "live" });
  const search = el("input", { type: "search", id: "log-search", placeholder: "search the logs", "aria-label": "search the logs", oninput: filterLogs });
  const streamFilter = el("select", { id: "stream-filter", "aria-label": "stream", onchange: filterLogs },
    ["all", "stdout", "stderr"].map((s) => el("option", { value: s }, s === "all" ? "stdout and stderr" : s)));
  const matches = el("span", { class: "muted" });
  const logs = el("div", { class: "logs", id: "logs" });
  const timeline = el("ol", { class: "timeline", id: "timeline" });
  const sourceView = el("pre", { class: "logs mono", id: "workflow-source" });
  ctx.main.append(errors, header,
    section("Job graph", graph),
    section("Jobs", jobs),
    section("Logs", el("div", { class: "toolbar" }, search, streamFilter, matches, live), logs),
    section("Event history", timeline),
    section("Workflow that ran", sourceView));
  api(base + "/workflow").then((workflow) => {  // the YAML as submitted (never changes)
    if (ctx.alive) sourceView.textContent = `# ${workflow.filename}\n${workflow.source}`;
  }).catch((error) => { sourceView.textContent = String(error.message || error); });

  async function refresh() {
    refreshTimer = null;
    try {
      const [state, history] = await Promise.all([api(base), api(base + "/events")]);
      if (!ctx.alive) return;
      run = state;
      events = history.events;
      fill(errors);
      draw();
      // The first watch loads the logs; later ones follow a run that became active again (a retry).
      if (!watching && (!watchedOnce || !FINISHED.has(run.status) || run.attempt > completedAttempt)) watch();
      if (run.attempt < awaitedAttempt) refreshSoon(); // the retry is not taken yet
    } catch (error) {
      showError(ctx, errors, error);
    }
  }

  function refreshSoon() {
    if (!refreshTimer && ctx.alive) refreshTimer = setTimeout(refresh, 250);
  }

  ctx.onStop(() => clearTimeout(refreshTimer));
  poll(ctx, 5000, async () => {
    if (!run || watching || !FINISHED.has(run.status)) return refresh();
    const state = await api(base); // finished: only see whether it was retried (here or elsewhere)
    if (state.attempt !== run.attempt || state.status !== run.status) await refresh();
  });

  async function watch() {
    watching = true;
    watchedOnce = true;
    const controller = new AbortController();
    ctx.onStop(() => controller.abort());
    for (const group of logGroups.values()) group.details.remove();
    logGroups.clear(); // the stream replays the run from its start
    live.textContent = "● live";
    try {
      const response = await fetch(base + "/watch", { headers: authHeaders(), signal: controller.signal, cache: "no-store" });
      if (response.status === 401) return askForKey("The API refused the key; enter it again.");
      if (!response.ok) throw new Error(`watch answered ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) if (line.trim()) onMessage(JSON.parse(line));
      }
      live.textContent = "run ended";
      watching = false;
      refreshSoon();
    } catch (error) {
      watching = false;
      if (error.name === "AbortError" || !ctx.alive) return;
      live.textContent = "live updates interrupted; reconnecting…";
      setTimeout(() => { if (ctx.alive && !watching) watch(); }, 3000);
    }
  }

  function onMessage(message) {
    if (message.kind === "log") addLogLine(message);
    else if (message.kind !== "keepalive") {  // an event (a timer event's kind is its timer's)
      if (message.type === "run.completed") completedAttempt = Math.max(completedAttempt, message.attempt || 0);
      refreshSoon();
    }
  }

  /* ---- drawing the state */

  function draw() {
    drawHeader();
    drawGraph();
    drawJobs();
    drawTimeline();
    for (const [key, group] of logGroups) group.label.textContent = logLabel(key);
  }

  function drawHeader() {
    const finished = FINISHED.has(run.status);
    const act = async (button, path, what) => {
      button.disabled = true;
      try {
        const answer = await api(base + path, { method: "POST" });
        actionResult.textContent = `${what}: ${answer.status}`;
        if (answer.attempt) awaitedAttempt = answer.attempt;
        refreshSoon();
      } catch (error) {
        actionResult.textContent = error.message;
        button.disabled = false;
      }
    };
    const cancel = el("button", { type: "button", id: "cancel", class: "danger", disabled: finished || run.cancel_requested },
      run.cancel_requested && !finished ? "Cancelling…" : "Cancel");
    cancel.addEventListener("click", () => { if (confirm(`Cancel run ${run.id}?`)) act(cancel, "/cancel", "cancel"); });
    const retry = el("button", { type: "button", id: "retry", disabled: !(finished && run.status !== "succeeded") }, "Retry failed");
    retry.addEventListener("click", () => act(retry, "/retry", "retry"));
    const facts = [
      ["Run", el("span", { class: "mono" }, run.id)],
      ["Attempt", run.attempt],
      ["Started by", run.event_name],
      ["Created", fmtTime(run.created_at)],
      ["Started", fmtTime(run.started_at)],
      ["Finished", fmtTime(run.finished_at)],
      ["Duration", fmtDuration(elapsed(run.started_at, run.finished_at))],
      ["Inputs", pairs(run.inputs) || "—"],
    ];
    if (run.concurrency_group) facts.push(["Concurrency", run.concurrency_group + (run.queued_behind ? ` (queued behind ${run.queued_behind})` : "")]);
    fill(header,
      el("h1", {}, badge(run.status), " ", el("span", { id: "run-title" }, run.workflow || "(unnamed)")),
      el("dl", { class: "facts" }, facts.map(([k, v]) => el("div", { class: "fact" }, el("dt", {}, k), el("dd", {}, v)))),
      run.error ? notice("error", run.error) : null,
      el("div", { class: "toolbar" }, cancel, retry, actionResult));
  }

  function topJobs() {
    return Object.values(run.jobs).filter((job) => !job.parent);
  }

  /** Level of each top-level job: 0 without needs, else one more than its deepest need. */
  function levels() {
    const byId = run.jobs;
    const level = {};
    const depth = (id, seen) => {
      if (level[id] !== undefined) return level[id];
      if (seen.has(id) || !byId[id]) return 0;
      seen.add(id);
      const needs = byId[id].needs || [];
      level[id] = needs.length ? 1 + Math.max(...needs.map((n) => depth(n, seen))) : 0;
      return level[id];
    };
    topJobs().forEach((job) => depth(job.id, new Set()));
    return level;
  }

  function instanceSummary(job) {
    const results = job.results || [];
    const ok = results.filter((r) => r.status === "succeeded").length;
    return `${ok} of ${results.length} ok`;
  }

  function drawGraph() {
    const level = levels();
    const columns = [];
    const boxes = new Map();
    for (const job of topJobs()) (columns[level[job.id]] ||= []).push(job);
    const canvas = el("div", { class: "graph-columns" });
    for (const column of columns.filter(Boolean)) {
      canvas.append(el("div", { class: "graph-column" }, column.map((job) => {
        const box = el("a", { class: `job-box status-border-${cssToken(job.waiting ? "waiting" : job.status)}`, href: "#", onclick: (e) => { e.preventDefault(); jobCards.get(job.id)?.scrollIntoView(); } },
          el("div", { class: "job-box-title" }, badge(job.status), " ", el("span", { class: "job-name" }, job.name)),
          el("div", { class: "muted" }, `${job.runs_on} · ${fmtDuration(elapsed(job.started_at, job.finished_at))}`),
          job.instances && job.instances.length ? el("div", { class: "instances" }, instanceSummary(job)) : null,
          job.waiting ? el("div", { class: "waiting" }, "waiting: ", job.waiting) : null,
          job.error ? el("div", { class: "error-text" }, job.error) : null);
        box.dataset.job = job.id;
        boxes.set(job.id, box);
        return box;
      })));
    }
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "graph-edges");
    fill(graph, svg, canvas);
    requestAnimationFrame(() => drawEdges(svg, boxes));
  }

  function drawEdges(svg, boxes) {
    const origin = graph.getBoundingClientRect();
    svg.setAttribute("width", graph.scrollWidth);
    svg.setAttribute("height", graph.scrollHeight);
    for (const job of topJobs()) {
      for (const need of job.needs || []) {
        const from = boxes.get(need);
        const to = boxes.get(job.id);
        if (!from || !to) continue;
        const a = from.getBoundingClientRect();
        const b = to.getBoundingClientRect();
        const x1 = a.right - origin.left, y1 = a.top + a.height / 2 - origin.top;
        const x2 = b.left - origin.left, y2 = b.top + b.height / 2 - origin.top;
        const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
        const mid = (x1 + x2) / 2;
        path.setAttribute("d", `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
        svg.append(path);
      }
    }
  }

  function drawJobs() {
    const level = levels();
    const ordered = topJobs().sort((a, b) => level[a.id] - level[b.id]);
    jobCards.clear();
    fill(jobs, ...ordered.map((job) => {
      const card = el("div", { class: "job-card" },
        el("h3", {}, badge(job.status), " ", job.name, el("span", { class: "muted" }, ` · runs-on ${job.runs_on}` + (job.agent ? ` · agent ${job.agent}` : "") + ` · ${fmtDuration(elapsed(job.started_at, job.finished_at))}`)),
        job.needs && job.needs.length ? el("div", { class: "muted" }, "needs: ", job.needs.join(", ")) : null,
        job.waiting ? notice("warning", "waiting: ", job.waiting) : null,
        job.lost_agent ? notice("warning", "lost agent: ", job.lost_agent) : null,
        job.error ? notice("error", job.error) : null,
        Object.keys(job.outputs || {}).length ? el("div", {}, el("strong", {}, "outputs: "), el("span", { class: "mono" }, pairs(job.outputs))) : null);
      if (job.instances && job.instances.length) card.append(resultsGrid(job));
      else card.append(stepsTable(job));
      card.dataset.job = job.id;
      jobCards.set(job.id, card);
      return card;
    }));
  }

  function instanceLabel(result) {
    if (result.matrix && Object.keys(result.matrix).length) return Object.values(result.matrix).map((v) => typeof v === "string" ? v : JSON.stringify(v)).join(", ");
    return result.agent || result.job;
  }

  /** The last stderr line an instance printed: often the reason a server failed ("disk full"). */
  function lastStderr(jobId) {
    let last = null;
    for (const [key, group] of logGroups) {
      if (!key.startsWith(jobId + "/")) continue;
      for (const line of group.lines) if (line.stream === "stderr") last = line;
    }
    return last ? last.text : "";
  }

  function resultsGrid(job) {
    const results = job.results || [];
    const failed = results.filter((r) => r.status !== "succeeded" && r.status !== "pending" && r.status !== "running");
    const summary = el("p", { class: "results-summary" }, el("strong", {}, instanceSummary(job)),
      failed.map((r) => [" · ", el("span", { class: "error-text" }, `${instanceLabel(r)} ${r.status}: ${lastStderr(r.job) || r.error || ""}`)]));
    const rows = results.map((r) => {
      const instance = run.jobs[r.job];
      const details = el("details", { open: openInstances.has(r.job) }, el("summary", {}, "steps"), instance ? stepsTable(instance) : null);
      details.addEventListener("toggle", () => { if (details.open) openInstances.add(r.job); else openInstances.delete(r.job); });
      return el("tr", { class: `result-row result-${cssToken(r.status)}` },
        el("td", {}, instanceLabel(r)),
        el("td", {}, r.agent || "—"),
        el("td", {}, badge(r.status)),
        el("td", {}, r.exit_code ?? "—"),
        el("td", { class: "mono" }, pairs(r.outputs)),
        el("td", { class: "error-text" }, [r.error, lastStderr(r.job)].filter(Boolean).join(" — ")),
        el("td", {}, details));
    });
    return el("div", { class: "results" }, summary,
      table(["Instance", "Agent", "Status", "Exit", "Outputs", "Error", ""], rows, { class: "list results-grid" }));
  }

  function stepsTable(job) {
    const rows = (job.steps || []).map((step) => {
      const history = (step.attempts || []).map((a) => `attempt ${a.attempt}: ${a.status}${a.error ? " (" + a.error + ")" : ""}`).join("\n");
      const name = el("a", { href: "#", onclick: (e) => { e.preventDefault(); openLogs(job.id, step.index); } }, step.name);
      return el("tr", { class: "step-row" },
        el("td", {}, step.index + 1),
        el("td", {}, name),
        el("td", {}, badge(step.status)),
        el("td", { title: history }, step.attempt || "—"),
        el("td", {}, step.agent || "—"),
        el("td", {}, fmtDuration(elapsed(step.started_at, step.finished_at))),
        el("td", {}, step.exit_code ?? "—"),
        el("td", { class: "mono" }, pairs(step.outputs)),
        el("td", { class: "error-text" }, step.error || ""));
    });
    return table(["#", "Step", "Status", "Attempt", "Agent", "Duration", "Exit", "Outputs", "Error"], rows, { class: "list steps" });
  }

  function drawTimeline() {
    const first = events.length ? Date.parse(events[0].at) : 0;
    const skip = new Set(["seq", "type", "run_id", "at", "proof", "job_id", "step_index"]);
    fill(timeline, ...events.map((event) => {
      const details = Object.entries(event).filter(([k, v]) => !skip.has(k) && v !== null && v !== false && v !== ""
        && !(typeof v === "object" && !Object.keys(v).length));
      const where = event.job_id ? event.job_id + (event.step_index !== undefined && event.step_index !== null ? ` step ${event.step_index + 1}` : "") : "";
      return el("li", { class: `event event-${cssToken(event.type.split(".").pop())}` },
        el("span", { class: "event-time", title: fmtTime(event.at) }, "+" + fmtDuration((Date.parse(event.at) - first) / 1000)),
        el("span", { class: "event-type" }, event.type),
        el("span", { class: "event-where" }, where),
        el("span", { class: "event-details muted" }, details.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ")));
    }));
  }

  /* ---- logs */

  function logLabel(key) {
    const [jobId, index] = [key.slice(0, key.lastIndexOf("/")), Number(key.slice(key.lastIndexOf("/") + 1))];
    const job = run && run.jobs[jobId];
    const step = job && job.steps && job.steps[index];
    return `${job ? job.name : jobId} › ${step ? step.name : "step " + (index + 1)}`;
  }

  function logGroup(jobId, stepIndex) {
    const key = `${jobId}/${stepIndex}`;
    let group = logGroups.get(key);
    if (!group) {
      const label = el("span", { class: "log-label" }, logLabel(key));
      const count = el("span", { class: "muted" });
      const body = el("div", { class: "log-lines" });
      const details = el("details", { class: "log-group", open: true }, el("summary", {}, label, " ", count), body);
      details.dataset.key = key;
      group = { details, label, count, body, lines: [] };
      logGroups.set(key, group);
      logs.append(details);
    }
    return group;
  }

  function addLogLine(line) {
    const group = logGroup(line.job, line.step);
    group.lines.push(line);
    const text = el("span", { class: "log-text" }, line.text);
    const row = el("div", { class: `log-line stream-${cssToken(line.stream)}` },
      el("span", { class: "log-time", title: fmtTime(line.at) }, fmtClock(line.at)),
      el("span", { class: "log-stream" }, line.stream === "stdout" ? "" : line.stream),
      line.attempt > 1 ? el("span", { class: "log-attempt" }, `#${line.attempt}`) : null,
      text);
    row.logLine = line;
    applyFilter(row, search.value.trim().toLowerCase(), streamFilter.value);
    group.body.append(row);
    if (group.body.childElementCount > MAX_LINES_PER_STEP) group.body.firstElementChild.remove();
    group.count.textContent = `(${group.lines.length} lines)`;
  }

  function applyFilter(row, needle, stream) {
    const line = row.logLine;
    const textBox = row.querySelector(".log-text");
    const visible = (stream === "all" || line.stream === stream) && (!needle || line.text.toLowerCase().includes(needle));
    row.hidden = !visible;
    if (!needle || !visible) {
      fill(textBox, line.text);
      return visible;
    }
    const parts = [];
    const lower = line.text.toLowerCase();
    let at = 0;
    for (let hit = lower.indexOf(needle); hit >= 0; hit = lower.indexOf(needle, at)) {
      parts.push(line.text.slice(at, hit), el("mark", {}, line.text.slice(hit, hit + needle.length)));
      at = hit + needle.length;
    }
    parts.push(line.text.slice(at));
    fill(textBox, ...parts.filter((p) => p !== ""));
    return visible;
  }

  function filterLogs() {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const group of logGroups.values()) {
      let inGroup = 0;
      for (const row of group.body.children) if (applyFilter(row, needle, streamFilter.value)) inGroup++;
      group.details.hidden = (needle || streamFilter.value !== "all") && !inGroup;
      if (needle && inGroup) group.details.open = true;
      shown += inGroup;
    }
    matches.textContent = needle || streamFilter.value !== "all" ? `${shown} matching lines` : "";
  }

  function openLogs(jobId, stepIndex) {
    const group = logGroups.get(`${jobId}/${stepIndex}`);
    if (!group) return alert("This step has printed nothing (yet).");
    group.details.open = true;
    group.details.scrollIntoView();
  }

}

/* ------------------------------------------------------------------ page: agents and groups */

function agentsPage(ctx) {
  const errors = el("div");
  const agents = el("div");
  const groups = el("div");
  ctx.main.append(el("h1", {}, "Agents and groups"), errors, section("Agents", agents), section("Server groups", groups));
  poll(ctx, 5000, async () => {
    try {
      const [a, g] = await Promise.all([api("/v1/agents"), api("/v1/groups")]);
      fill(errors);
      fill(agents, table(["Name", "Status", "Groups", "Labels", "Last heartbeat", "Version", "Running", "Running steps"],
        a.agents.map((agent) => el("tr", { class: "agent-row" },
          el("td", {}, agent.name),
          el("td", {}, badge(agent.status)),
          el("td", {}, (agent.groups || []).join(", ")),
          el("td", { class: "mono" }, pairs(agent.labels)),
          el("td", {}, fmtDuration(agent.age_seconds) + " ago"),
          el("td", {}, agent.version || "—"),
          el("td", {}, agent.capacity ? `${agent.running || 0} / ${agent.capacity}` : agent.running ?? "—"),
          el("td", { class: "mono" }, (agent.running_steps || []).map((key) => {
            const [runId, job, step, attempt] = key.split(":");
            return el("div", {}, runLink(runId), ` ${job} step ${Number(step) + 1} #${attempt}`);
          })))), { class: "list", id: "agents" }));
      if (!a.agents.length) agents.append(el("p", { class: "muted" }, "No agent has registered. Start one with: waterflow agent --group <group>"));
      fill(groups,
        g.error ? notice("error", g.error) : null,
        el("p", { class: "muted" }, "Definitions from: ", g.source),
        table(["Group", "Defined", "Description", "Agents", "Healthy", "Unhealthy", "Offline"],
          g.groups.map((group) => el("tr", {},
            el("td", {}, group.name), el("td", {}, group.defined ? "yes" : "declared by agents"), el("td", {}, group.description || ""),
            el("td", {}, group.agents),
            el("td", {}, group.healthy ? badge(String(group.healthy), "status-healthy") : 0),
            el("td", {}, group.unhealthy ? badge(String(group.unhealthy), "status-unhealthy") : 0),
            el("td", {}, group.offline ? badge(String(group.offline), "status-offline") : 0))), { class: "list", id: "groups" }));
    } catch (error) {
      showError(ctx, errors, error);
      throw error;
    }
  });
}

/* ------------------------------------------------------------------ page: nodes */

function nodesPage(ctx) {
  const errors = el("div");
  const box = el("div");
  ctx.main.append(el("h1", {}, "Nodes"), el("p", { class: "muted" }, "What steps can use with uses: name@version, as the healthy agents report it."), errors, box);
  api("/v1/nodes").then((data) => {
    fill(box, table(["Node", "Status", "Description", "Source", "Groups", "Agents", "Failed on"],
      data.nodes.map((node) => el("tr", { class: "node-row" },
        el("td", { class: "mono" }, `${node.name}@${node.version}`),
        el("td", {}, badge(node.status)),
        el("td", {}, node.description || ""),
        el("td", {}, node.source || ""),
        el("td", {}, (node.groups || []).join(", ")),
        el("td", {}, (node.agents || []).join(", ")),
        el("td", { class: "error-text" }, (node.failed_on || []).map((f) => `${f.agent}: ${f.error || "failed"}`).join("; ")))), { class: "list", id: "nodes" }));
  }).catch((error) => showError(ctx, errors, error));
}

/* ------------------------------------------------------------------ page: triggers */

function triggersPage(ctx) {
  const errors = el("div");
  const box = el("div");
  ctx.main.append(el("h1", {}, "Triggers"),
    el("p", { class: "muted" }, "Workflows registered with waterflow trigger add: started by their on.schedule crons and their webhook."),
    errors, box);
  api("/v1/triggers").then((data) => {
    fill(box, table(["Name", "Id", "File", "Schedules", "Next fire", "Inputs", "Webhook", "Registered", ""],
      data.triggers.map((trigger) => {
        const result = el("span", { class: "action-result" });
        const fire = el("button", { type: "button", class: "fire" }, "Fire now");
        fire.addEventListener("click", async () => {
          fire.disabled = true;
          try {
            const fired = await api(`/v1/triggers/${encodeURIComponent(trigger.id)}/fire`, { method: "POST", json: { inputs: {} } });
            fill(result, "fired: run ", runLink(fired.run_id));
          } catch (error) {
            result.textContent = error.message;
          }
          fire.disabled = false;
        });
        return el("tr", { class: "trigger-row" },
          el("td", {}, trigger.name), el("td", { class: "mono" }, trigger.id), el("td", {}, trigger.filename),
          el("td", { class: "mono" }, (trigger.crons || []).join("; ") || "—"),
          el("td", { class: "next-fire" }, trigger.next_fire_at ? fmtTime(trigger.next_fire_at) : "—"),
          el("td", { class: "mono" }, pairs(trigger.inputs)),
          el("td", { class: "mono" }, "POST " + trigger.webhook),
          el("td", {}, fmtTime(trigger.created_at)),
          el("td", {}, fire, " ", result));
      }), { class: "list", id: "triggers" }));
    if (!data.triggers.length) box.append(el("p", { class: "muted" }, "No trigger is registered."));
  }).catch((error) => showError(ctx, errors, error));
}

/* ------------------------------------------------------------------ page: secrets */

function secretsPage(ctx) {
  const errors = el("div");
  const box = el("div");
  ctx.main.append(el("h1", {}, "Secrets"),
    el("p", { class: "muted" }, "Names only: the API never returns a secret's value. Set them with waterflow secret set NAME."),
    errors, box);
  api("/v1/secrets").then((data) => {
    fill(box, data.secrets.length
      ? el("ul", { id: "secrets", class: "names" }, data.secrets.map((s) => el("li", { class: "mono" }, s.name)))
      : el("p", { class: "muted" }, "No secrets are stored."));
  }).catch((error) => showError(ctx, errors, error));
}

/* ------------------------------------------------------------------ page: submit */

const EXAMPLE = `name: hello
jobs:
  greet:
    runs-on: local
    steps:
      - name: Say hello
        run: echo "Hello from $(hostname)"
`;

function submitPage(ctx) {
  const filename = el("input", { id: "filename", value: "console.yml", "aria-label": "file name" });
  const source = el("textarea", { id: "workflow", spellcheck: "false", rows: 22, "aria-label": "workflow YAML" });
  source.value = sessionStorage.getItem(DRAFT_STORAGE) ?? EXAMPLE;
  source.addEventListener("input", () => sessionStorage.setItem(DRAFT_STORAGE, source.value));
  const upload = el("input", { type: "file", id: "upload", accept: ".yml,.yaml,text/yaml", "aria-label": "open a workflow file" });
  upload.addEventListener("change", async () => {  // read locally; nothing is sent until Validate or Run
    const file = upload.files && upload.files[0];
    if (!file) return;
    source.value = await file.text();
    filename.value = file.name;
    sessionStorage.setItem(DRAFT_STORAGE, source.value);
  });
  const inputs = el("textarea", { id: "inputs", rows: 3, spellcheck: "false", placeholder: "version=1.2.3", "aria-label": "inputs" });
  const result = el("div", { id: "diagnostics" });
  const validate = el("button", { type: "button", id: "validate" }, "Validate");
  const run = el("button", { type: "button", id: "run", class: "primary" }, "Run");
  ctx.main.append(el("h1", {}, "Submit a workflow"),
    el("div", { class: "submit-grid" },
      el("div", {}, el("label", { for: "workflow" }, "Workflow (YAML)"), source),
      el("div", {},
        el("label", { for: "upload" }, "Open a file"), upload,
        el("label", { for: "filename" }, "File name (used in diagnostics)"), filename,
        el("label", { for: "inputs" }, "Inputs, one NAME=VALUE a line"), inputs,
        el("div", { class: "toolbar" }, validate, run),
        result)));

  function parseInputs() {
    const values = {};
    for (const line of inputs.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      if (at < 1) throw new Error(`an input must be NAME=VALUE, got "${line}"`);
      values[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    return values;
  }

  function showDiagnostics(diagnostics, headline) {
    const lines = source.value.split("\n");
    const byLine = new Map();
    for (const d of diagnostics) if (d.line) (byLine.get(d.line) || byLine.set(d.line, []).get(d.line)).push(d);
    const list = el("ul", { class: "diagnostics" }, diagnostics.map((d) => el("li", { class: `diagnostic severity-${cssToken(d.severity || "error")}` },
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectPosition(d.line, d.col); } }, d.line ? `${d.line}:${d.col}` : "—"),
      " ", d.message, d.rule ? el("span", { class: "muted" }, ` (${d.rule})`) : null,
      d.hint ? el("div", { class: "muted hint" }, d.hint) : null)));
    const listing = el("div", { class: "listing", id: "listing" });
    lines.forEach((text, i) => {
      listing.append(el("div", { class: "listing-line" + (byLine.has(i + 1) ? " has-diagnostic" : "") },
        el("span", { class: "line-number" }, i + 1), el("span", { class: "line-text" }, text || " ")));
      for (const d of byLine.get(i + 1) || []) {
        listing.append(el("div", { class: `inline-diagnostic severity-${cssToken(d.severity || "error")}` },
          el("span", { class: "line-number" }, ""), el("span", { class: "line-text" }, " ".repeat(Math.max(0, (d.col || 1) - 1)) + "^ " + d.message)));
      }
    });
    fill(result, headline, list, diagnostics.some((d) => d.line) ? listing : null);
  }

  function selectPosition(line, col) {
    if (!line) return;
    const lines = source.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += Math.max(0, (col || 1) - 1);
    source.focus();
    source.setSelectionRange(offset, offset + 1);
  }

  function body() {
    return { workflow: source.value, filename: filename.value || "console.yml", inputs: parseInputs() };
  }

  validate.addEventListener("click", async () => {
    try {
      const answer = await api("/v1/validate", { method: "POST", json: body() });
      const errors = answer.errors.filter((d) => (d.severity || "error") === "error");
      showDiagnostics(answer.errors, answer.valid
        ? notice("ok", "Valid." + (answer.errors.length ? ` ${answer.errors.length} warning(s):` : ""))
        : notice("error", `${errors.length} error(s):`));
    } catch (error) {
      if (error.status !== 401) fill(result, notice("error", error.message));
    }
  });

  run.addEventListener("click", async () => {
    run.disabled = true;
    try {
      const answer = await api("/v1/workflows", { method: "POST", json: body() });
      location.hash = "#/runs/" + encodeURIComponent(answer.id);
    } catch (error) {
      if (error.status === 401) return;
      const problems = (error.body && error.body.errors) || [];
      if (problems.length) showDiagnostics(problems, notice("error", error.body.title || "invalid workflow"));
      else fill(result, notice("error", error.message));
    } finally {
      run.disabled = false;
    }
  });
}

/* ------------------------------------------------------------------ start */

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  updateKeyButton();
  route();
});
window.addEventListener("hashchange", route);
updateKeyButton();
route();
