// The job history: finished jobs, newest first, paginated and filtered by outcome. Each opens to its
// progress history (GET /api/jobs/{id}/progress-history) drawn as a small processed-over-time chart.
// Cards leave the live panel after a while; their jobs stay here.

import { ApiError } from "./api.js";
import { byId, h } from "./dom.js";
import { JOB_STATUS_LABELS, formatClock, formatSpan, jobTitle, plural } from "./format.js";
import { jobStateFromApi } from "./live.js";
import { hasSomethingToRetry, nextAttemptText } from "./panel.js";

export const HISTORY_PAGE = 10;
const HISTORY_EVENTS_MAX = 5000; // a chart needs no more points than this
const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 320, height: 72, pad: 2 };

/** listName(listId) → name or null; onRetry(jobState) → promise (the app starts the retry). */
export function createHistory({ api, notify, listName, onRetry }) {
  const list = byId("history-jobs");
  const empty = byId("history-empty");
  const outcome = byId("history-outcome");
  const summary = byId("history-summary");
  const prev = byId("history-prev");
  const next = byId("history-next");
  const pager = byId("history-pager");
  let offset = 0;
  let total = 0;
  let generation = 0;
  let refreshTimer = null;
  const open = new Set(); // job ids whose details are open, kept open across redraws

  async function load() {
    const mine = ++generation;
    const params = new URLSearchParams({
      state: "finished",
      limit: String(HISTORY_PAGE),
      offset: String(offset),
    });
    if (outcome.value) params.set("outcome", outcome.value);
    let page;
    try {
      page = await api.get(`/api/jobs?${params}`);
    } catch (error) {
      if (mine === generation && !(error instanceof ApiError && error.status === 401)) notify(error.message);
      return;
    }
    if (mine !== generation) return;
    total = page.total;
    draw(page.items);
  }

  function draw(jobs) {
    list.replaceChildren(...jobs.map((job) => historyItem(job)));
    empty.hidden = jobs.length > 0;
    empty.textContent = outcome.value ? "No finished job ended so." : "No finished jobs yet.";
    summary.textContent = jobs.length
      ? `${offset + 1}–${offset + jobs.length} of ${plural(total, "finished job")}`
      : "";
    prev.disabled = offset === 0;
    next.disabled = offset + HISTORY_PAGE >= total;
    pager.hidden = total <= HISTORY_PAGE;
  }

  function historyItem(job) {
    const state = jobStateFromApi(job);
    const ready = job.processed - job.failed;
    const ran = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
    const took = Number.isFinite(ran) ? formatSpan(ran) : "—";
    const started = job.started_at ?? job.created_at;
    const details = h("div", { class: "history__details", id: `history-details-${job.id}` });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "history__toggle",
        "aria-expanded": "false",
        "aria-controls": details.id,
      },
      h("span", { class: "history__title" }, jobTitle(state)),
      h("span", { class: "history__list" }, listName(job.list_id) ?? "a deleted list"),
      h("time", { class: "history__started", datetime: started }, formatClock(started)),
      h("span", { class: "history__took" }, took),
      h("span", { class: "history__counts" }, `${ready} ready, ${job.failed} failed of ${job.total}`),
      h(
        "span",
        { class: `history__outcome badge badge--${job.status}` },
        JOB_STATUS_LABELS[job.status] ?? job.status,
      ),
    );
    const item = h("li", { class: "history__job", "data-job-id": job.id }, toggle, details);
    details.hidden = true;
    const show = async () => {
      const opening = details.hidden;
      details.hidden = !opening;
      toggle.setAttribute("aria-expanded", String(opening));
      if (opening) open.add(job.id);
      else open.delete(job.id);
      if (opening && !details.childElementCount) await fillDetails(details, job, state);
    };
    toggle.addEventListener("click", show);
    if (open.has(job.id)) show();
    return item;
  }

  async function fillDetails(details, job, state) {
    const parts = [];
    if (job.message) parts.push(h("p", { class: "history__message" }, job.message));
    const nextTry = nextAttemptText(state);
    if (nextTry) parts.push(h("p", { class: "job__next" }, nextTry));
    if (job.last_error && !(job.message ?? "").includes(job.last_error)) {
      parts.push(h("p", { class: "job__error" }, `Last error: ${job.last_error}`));
    }
    if (hasSomethingToRetry(state)) {
      const retry = h("button", { type: "button", class: "button button--small button--primary" }, "Retry");
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          await onRetry(state);
          retry.hidden = true;
        } catch {
          retry.disabled = false; // the app has shown the error
        }
      });
      parts.push(retry);
    }
    const loading = h("p", { class: "muted" }, "Loading its progress…");
    const chartSlot = h("div", { class: "history__chart" }, loading);
    parts.push(chartSlot);
    details.replaceChildren(...parts);
    let events;
    try {
      events = await progressHistory(job.id);
    } catch (error) {
      chartSlot.replaceChildren(h("p", { class: "form-error" }, error.message));
      return;
    }
    chartSlot.replaceChildren(progressChart(events, job));
  }

  async function progressHistory(jobId) {
    const events = [];
    let after = 0;
    while (after != null && events.length < HISTORY_EVENTS_MAX) {
      const page = await api.get(`/api/jobs/${jobId}/progress-history?after_seq=${after}&limit=1000`);
      events.push(...page.events);
      after = page.next_after_seq;
    }
    return events;
  }

  /** A finished job's events changed the history: reload, at most once a second. */
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      load();
    }, 1000);
  }

  function reset() {
    offset = 0;
    outcome.value = "";
    open.clear();
    list.replaceChildren();
  }

  outcome.addEventListener("change", () => {
    offset = 0;
    load();
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - HISTORY_PAGE);
    load();
  });
  next.addEventListener("click", () => {
    offset += HISTORY_PAGE;
    load();
  });

  return { load, refreshSoon, reset };
}

/** Processed (and failed) over time as an SVG built with DOM calls (the CSP forbids inline markup). */
export function progressChart(events, job) {
  const points = events.filter((event) => Number.isFinite(Date.parse(event.at)));
  const label = chartLabel(points, job);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${CHART.width} ${CHART.height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.append(title);
  if (points.length === 0) return svg;
  const start = Date.parse(points[0].at);
  const span = Math.max(1, Date.parse(points[points.length - 1].at) - start);
  const most = Math.max(1, ...points.map((event) => event.total));
  const x = (event) => CHART.pad + ((Date.parse(event.at) - start) / span) * (CHART.width - 2 * CHART.pad);
  const y = (value) => CHART.height - CHART.pad - (value / most) * (CHART.height - 2 * CHART.pad);
  for (const [name, value] of [
    ["chart__processed", (event) => event.processed],
    ["chart__failed", (event) => event.failed],
  ]) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", name);
    const coordinates = points.map((event) => `${x(event).toFixed(1)},${y(value(event)).toFixed(1)}`);
    line.setAttribute("points", coordinates.join(" "));
    svg.append(line);
  }
  return svg;
}

function chartLabel(points, job) {
  if (points.length === 0) return "No progress history (it may have been pruned)";
  const seconds = (Date.parse(points[points.length - 1].at) - Date.parse(points[0].at)) / 1000;
  const last = points[points.length - 1];
  return (
    `Processed over time: ${last.processed} of ${plural(last.total ?? job.total, "video")} ` +
    `in ${formatSpan(seconds)}, ${last.failed} failed (${plural(points.length, "progress event")})`
  );
}
