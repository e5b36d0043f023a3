// The live panel: one card per job, updated in place (so a focused Cancel button keeps its focus while
// events stream in). The cards' data comes from LiveClient.visibleJobs(); this module only draws them.

import { h } from "./dom.js";
import {
  JOB_STATUS_LABELS,
  formatClock,
  formatEta,
  formatPercent,
  formatRate,
  formatSpan,
  jobTitle,
  plural,
} from "./format.js";
import { isActive } from "./live.js";

const STATUS_CLASSES = Object.keys(JOB_STATUS_LABELS).map((status) => `job--${status}`);

/**
 * root: the <ul> of cards; empty: the "nothing running" note; announcer: a polite live region for
 * status changes (announcing every percent would drown a screen reader).
 * listName(listId) → the list's name or null; onCancel(job) and onRetry(job) → promises.
 */
export function createLivePanel({ root, empty, announcer, listName, onCancel, onRetry }) {
  const cards = new Map(); // job_id → card
  const lastStatus = new Map(); // job_id → status we last drew, to announce only changes

  function render(jobs, now = Date.now()) {
    // Newest first: a new import (or a retry) appears at the top, where the eye already is.
    const ordered = [...jobs].reverse();
    const wanted = new Set(ordered.map((job) => job.job_id));
    for (const [id, card] of cards) {
      if (!wanted.has(id)) {
        card.el.remove();
        cards.delete(id);
        lastStatus.delete(id);
      }
    }
    ordered.forEach((job, index) => {
      let card = cards.get(job.job_id);
      if (!card) {
        card = createCard(job, { onCancel, onRetry });
        cards.set(job.job_id, card);
      }
      updateCard(card, job, listName(job.list_id), now);
      // Move only what is out of place: moving a node would take the focus away from its buttons.
      if (root.children[index] !== card.el) root.insertBefore(card.el, root.children[index] ?? null);
      announceChange(job);
    });
    empty.hidden = ordered.length > 0;
  }

  function announceChange(job) {
    const before = lastStatus.get(job.job_id);
    lastStatus.set(job.job_id, job.status);
    if (before === undefined || before === job.status || isActive(job)) return;
    announcer.textContent = `${jobTitle(job)}: ${JOB_STATUS_LABELS[job.status] ?? job.status}. ${
      job.message ?? ""
    }`;
  }

  return { render };
}

function createCard(job, { onCancel, onRetry }) {
  const parts = {
    title: h("h3", { class: "job__title" }),
    status: h("span", { class: "job__status" }),
    list: h("span", { class: "job__list" }),
    started: h("span", { class: "job__started" }),
    elapsed: h("span", { class: "job__elapsed" }),
    ready: h("div", { class: "progress__ready" }),
    failedBar: h("div", { class: "progress__failed" }),
    percent: h("span", { class: "job__percent" }),
    counts: h("span", { class: "job__counts" }),
    rate: h("span", { class: "job__rate" }),
    eta: h("span", { class: "job__eta" }),
    message: h("p", { class: "job__message" }),
    next: h("p", { class: "job__next" }),
    error: h("p", { class: "job__error" }),
    cancel: h("button", { type: "button", class: "button button--small" }, "Cancel"),
    retry: h("button", { type: "button", class: "button button--small button--primary" }, "Retry"),
  };
  parts.progress = h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 },
    parts.ready,
    parts.failedBar,
  );
  const el = h(
    "li",
    { class: "job", "data-job-id": job.job_id },
    h("div", { class: "job__head" }, parts.title, parts.status),
    h("p", { class: "job__meta" }, parts.list, parts.started, parts.elapsed),
    parts.progress,
    h(
      "div",
      { class: "job__foot" },
      h("p", { class: "job__stats" }, parts.percent, parts.counts, parts.rate, parts.eta),
      h("div", { class: "job__actions" }, parts.cancel, parts.retry),
    ),
    parts.message,
    parts.next,
    parts.error,
  );
  const card = { el, parts, job, busy: null, retried: false };
  parts.cancel.addEventListener("click", () => act(card, "cancel", onCancel));
  parts.retry.addEventListener("click", () => act(card, "retry", onRetry));
  return card;
}

async function act(card, action, handler) {
  card.busy = action;
  updateButtons(card);
  let done = false;
  try {
    await handler(card.job);
    done = true;
  } catch {
    // The caller has shown the error; the button becomes usable again.
  }
  if (done && action === "retry") card.retried = true; // its failed videos now belong to the new job
  // A running job stops between batches: keep "Cancelling…" until its terminal event arrives.
  card.busy = done && action === "cancel" && isActive(card.job) ? "cancel-sent" : null;
  updateButtons(card);
}

/** Seconds the job has run: until now while active, until its terminal event once finished. */
function elapsedSeconds(job, now) {
  const started = Date.parse(job.started_at ?? "");
  if (!Number.isFinite(started)) return null;
  const end = isActive(job) ? now : Date.parse(job.at);
  return Number.isFinite(end) ? Math.max(0, (end - started) / 1000) : null;
}

/** "Next attempt at 10:03:15 (in 12 s)" for a running job between attempts, "Next automatic try …"
 * for a failed one whose leftovers a cron retries. */
export function nextAttemptText(job, now = Date.now()) {
  const at = Date.parse(job.next_attempt_at ?? "");
  if (!Number.isFinite(at)) return "";
  const label = isActive(job) ? "Next attempt" : "Next automatic try";
  const wait = Math.max(0, Math.round((at - now) / 1000));
  return `${label} at ${formatClock(job.next_attempt_at, { seconds: wait < 3600 })} (${
    wait ? `in ${formatSpan(wait)}` : "due now"
  })`;
}

/** Something a Retry would fetch again: failed or cancelled videos, or those a stop left pending. */
export function hasSomethingToRetry(job) {
  if (isActive(job)) return false;
  const leftPending = job.status === "failed" && job.total > job.processed;
  return job.failed > 0 || job.status === "cancelled" || leftPending;
}

function updateCard(card, job, listName, now) {
  const { parts } = card;
  card.job = job;
  if (!isActive(job) && card.busy === "cancel-sent") card.busy = null;
  const title = jobTitle(job);
  const percent = formatPercent(job.progress);
  const finished = !isActive(job);
  const ready = Math.max(0, job.processed - job.failed);

  card.el.classList.remove(...STATUS_CLASSES);
  card.el.classList.add(`job--${job.status}`);
  // A single added video is a one-line card: it must not push the page around.
  card.el.classList.toggle("job--compact", job.kind === "add");
  parts.title.textContent = title;
  parts.status.textContent = JOB_STATUS_LABELS[job.status] ?? job.status;
  const into = listName ? `into ${listName}` : "into a deleted list";
  parts.list.textContent = into;
  parts.started.textContent = job.started_at ? `started ${formatClock(job.started_at)}` : "waiting to start";
  const elapsed = elapsedSeconds(job, now);
  parts.elapsed.textContent =
    elapsed == null ? "" : `${finished ? "took" : "running for"} ${formatSpan(elapsed)}`;
  parts.elapsed.hidden = elapsed == null;

  parts.progress.setAttribute("aria-label", `Progress of ${title} ${into}`);
  parts.progress.setAttribute("aria-valuenow", String(job.progress ?? 0));
  parts.progress.setAttribute(
    "aria-valuetext",
    `${percent}: ${job.processed} of ${job.total} videos processed, ${ready} ready, ${job.failed} failed`,
  );
  // CSSOM writes are allowed by the CSP (style-src 'self'); inline style attributes would not be.
  const share = (count) => `${job.total ? Math.min(100, (100 * count) / job.total) : 0}%`;
  parts.ready.style.width = job.total ? share(ready) : `${Math.min(100, Math.max(0, job.progress ?? 0))}%`;
  parts.failedBar.style.width = share(job.failed);
  parts.failedBar.hidden = job.failed === 0;

  parts.percent.textContent = percent;
  parts.counts.textContent =
    `${job.processed} of ${plural(job.total, "video")} processed, ${job.failed} failed`;
  parts.rate.textContent = formatRate(job.rate);
  parts.rate.hidden = job.rate == null || finished;
  parts.eta.textContent = `ETA ${formatEta(job.eta_s)}`;
  parts.eta.hidden = finished || job.status === "queued" || job.next_attempt_at != null;
  parts.message.textContent = job.message ?? "";
  parts.message.hidden = !job.message;
  parts.next.textContent = nextAttemptText(job, now);
  parts.next.hidden = !parts.next.textContent;
  // Never the same sentence twice: an error the message already says is not repeated.
  const repeated = job.error && job.message && job.message.includes(job.error);
  parts.error.textContent = job.error && !repeated ? `Last error: ${job.error}` : "";
  parts.error.hidden = !parts.error.textContent;
  updateButtons(card);
}

function updateButtons(card) {
  const { job, parts, busy } = card;
  const active = isActive(job);
  parts.cancel.hidden = !active;
  parts.cancel.disabled = busy === "cancel" || busy === "cancel-sent";
  parts.cancel.textContent = parts.cancel.disabled ? "Cancelling…" : "Cancel";
  parts.retry.hidden = !hasSomethingToRetry(job) || card.retried;
  parts.retry.disabled = busy === "retry";
  parts.retry.textContent = busy === "retry" ? "Retrying…" : "Retry";
}
