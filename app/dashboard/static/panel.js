// The live panel: one card per job, updated in place (so a focused Cancel button keeps its focus while
// events stream in). The cards' data comes from LiveClient.visibleJobs(); this module only draws them.
// The jobs of one upload that filled several lists (a Google Takeout archive, one job per list) are
// drawn together under the upload, each card titled by its list.

import { h } from "./dom.js";
import {
  JOB_STATUS_LABELS,
  formatClock,
  formatEta,
  formatPercent,
  formatRate,
  formatSpan,
  jobCounts,
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
  const groups = new Map(); // upload_id → group
  const lastStatus = new Map(); // job_id → status we last drew, to announce only changes
  let offlineSince = null; // while the socket is down: when it went down (the cards show that moment)

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
    // One entry per job, or per upload for the jobs that share one: where its first (newest) job is.
    const entries = [];
    const members = new Map(); // upload_id → its jobs, newest first
    for (const job of ordered) {
      if (!job.upload_id) {
        entries.push({ job });
      } else if (!members.has(job.upload_id)) {
        members.set(job.upload_id, [job]);
        entries.push({ uploadId: job.upload_id });
      } else {
        members.get(job.upload_id).push(job);
      }
    }
    for (const [id, group] of groups) {
      if (!members.has(id)) {
        group.el.remove();
        groups.delete(id);
      }
    }
    entries.forEach((entry, index) => {
      let el;
      if (entry.job) {
        el = drawCard(entry.job, listName(entry.job.list_id), now, null);
      } else {
        const group = groups.get(entry.uploadId) ?? createGroup(entry.uploadId);
        groups.set(entry.uploadId, group);
        drawGroup(group, members.get(entry.uploadId), now);
        el = group.el;
      }
      placeAt(root, el, index);
    });
    empty.hidden = ordered.length > 0;
  }

  function drawCard(job, list, now, group) {
    let card = cards.get(job.job_id);
    if (!card) {
      card = createCard(job, { onCancel, onRetry });
      cards.set(job.job_id, card);
    }
    updateCard(card, job, list, now, { inUpload: group !== null });
    showOffline(card, offlineSince);
    announceChange(job);
    return card.el;
  }

  function drawGroup(group, jobs, now) {
    const { parts } = group;
    const active = jobs.filter(isActive).length;
    const total = jobs.reduce((sum, job) => sum + job.total, 0);
    const processed = jobs.reduce((sum, job) => sum + job.processed, 0);
    parts.title.textContent = jobTitle(jobs[0]);
    parts.summary.textContent =
      `${plural(jobs.length, "list")}, ${active ? `${active} running` : "all done"}: ` +
      `${processed} of ${plural(total, "video")} processed`;
    // Its lists in the order of the upload's answer (the oldest job first), as people read a list.
    [...jobs].reverse().forEach((job, index) => {
      placeAt(parts.jobs, drawCard(job, listName(job.list_id), now, group), index);
    });
  }

  function announceChange(job) {
    const before = lastStatus.get(job.job_id);
    lastStatus.set(job.job_id, job.status);
    if (before === undefined || before === job.status || isActive(job)) return;
    announcer.textContent = `${jobTitle(job)}: ${JOB_STATUS_LABELS[job.status] ?? job.status}. ${
      job.message ?? ""
    }`;
  }

  /** The socket is down (true) or back (false); call render() after it. */
  function setOffline(offline) {
    offlineSince = offline ? (offlineSince ?? new Date()) : null;
  }

  return { render, setOffline };
}

/** Puts `el` at `index` of `parent` unless it is there: moving a node takes the focus from its buttons. */
function placeAt(parent, el, index) {
  if (parent.children[index] !== el) parent.insertBefore(el, parent.children[index] ?? null);
}

function createGroup(uploadId) {
  const parts = {
    title: h("h3", { class: "job-group__title" }),
    summary: h("p", { class: "job-group__summary" }),
    jobs: h("ul", { class: "jobs job-group__jobs" }),
  };
  const el = h(
    "li",
    { class: "job-group", "data-upload-id": uploadId },
    h("div", { class: "job-group__head" }, parts.title, parts.summary),
    parts.jobs,
  );
  return { el, parts };
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
    offline: h("p", { class: "job__offline", id: `offline-${job.job_id}`, hidden: true }),
    actionError: h("p", { class: "job__action-error", role: "alert" }),
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
    parts.offline,
    parts.actionError,
    parts.message,
    parts.next,
    parts.error,
  );
  const card = { el, parts, job, busy: null, retried: false, offline: false };
  parts.cancel.addEventListener("click", () => act(card, "cancel", onCancel));
  parts.retry.addEventListener("click", () => act(card, "retry", onRetry));
  return card;
}

async function act(card, action, handler) {
  card.busy = action;
  card.parts.actionError.textContent = "";
  updateButtons(card);
  let done = false;
  try {
    await handler(card.job);
    done = true;
  } catch (error) {
    // Next to the button that failed, announced; the button becomes usable again.
    card.parts.actionError.textContent = `${action === "cancel" ? "Cancel" : "Retry"} failed: ${error.message}`;
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

/** "Next attempt at 10:03:15 (in 12 s)" for a running job between attempts, "Resumes at …" for one
 * waiting for the YouTube quota, "Next automatic try …" for a failed one whose leftovers a cron retries. */
export function nextAttemptText(job, now = Date.now()) {
  const at = Date.parse(job.next_attempt_at ?? "");
  if (!Number.isFinite(at)) return "";
  let label = isActive(job) ? "Next attempt" : "Next automatic try";
  if (job.status === "waiting") label = "Resumes when the quota resets";
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

function updateCard(card, job, listName, now, { inUpload = false } = {}) {
  const { parts } = card;
  card.job = job;
  if (!isActive(job) && card.busy === "cancel-sent") card.busy = null;
  // Under its upload a card is one list of it: the list names it (the upload's name is above).
  const title = inUpload && listName ? listName : jobTitle(job);
  const percent = formatPercent(job.progress);
  const finished = !isActive(job);
  const ready = Math.max(0, job.processed - job.failed);

  card.el.classList.remove(...STATUS_CLASSES);
  card.el.classList.add(`job--${job.status}`);
  // A single added video is a one-line card: it must not push the page around.
  card.el.classList.toggle("job--compact", job.kind === "add");
  parts.title.textContent = title;
  parts.status.textContent = JOB_STATUS_LABELS[job.status] ?? job.status;
  const preposition = job.kind === "refresh" ? "of" : "into";
  const into = listName ? `${preposition} ${listName}` : `${preposition} a deleted list`;
  parts.list.textContent = into;
  parts.list.hidden = inUpload;
  parts.started.textContent = job.started_at ? `started ${formatClock(job.started_at)}` : "waiting to start";
  const elapsed = elapsedSeconds(job, now);
  parts.elapsed.textContent =
    elapsed == null ? "" : `${finished ? "took" : "running for"} ${formatSpan(elapsed)}`;
  parts.elapsed.hidden = elapsed == null;

  parts.progress.setAttribute("aria-label", `Progress of ${title} ${into}`);
  parts.progress.setAttribute("aria-valuenow", String(job.progress ?? 0));
  const spoken =
    job.kind === "refresh"
      ? jobCounts(job)
      : `${job.processed} of ${plural(job.total, "video")} processed, ${ready} ready, ${job.failed} failed`;
  parts.progress.setAttribute("aria-valuetext", `${percent}: ${spoken}`);
  // CSSOM writes are allowed by the CSP (style-src 'self'); inline style attributes would not be.
  const share = (count) => `${job.total ? Math.min(100, (100 * count) / job.total) : 0}%`;
  parts.ready.style.width = job.total ? share(ready) : `${Math.min(100, Math.max(0, job.progress ?? 0))}%`;
  parts.failedBar.style.width = share(job.failed);
  parts.failedBar.hidden = job.failed === 0;

  parts.percent.textContent = percent;
  parts.counts.textContent = jobCounts(job);
  parts.rate.textContent = formatRate(job.rate);
  parts.rate.hidden = job.rate == null || finished;
  parts.eta.textContent = `ETA ${formatEta(job.eta_s)}`;
  parts.eta.hidden = finished || job.status === "queued" || job.next_attempt_at != null;
  parts.message.textContent = job.message ?? "";
  // An availability check's progress and outcome messages only repeat its counts.
  const repeatsCounts = job.kind === "refresh" && ["running", "completed"].includes(job.status);
  parts.message.hidden = !job.message || repeatsCounts;
  parts.next.textContent = nextAttemptText(job, now);
  parts.next.hidden = !parts.next.textContent;
  // Never the same sentence twice: an error the message already says is not repeated.
  const repeated = job.error && job.message && job.message.includes(job.error);
  parts.error.textContent = job.error && !repeated ? `Last error: ${job.error}` : "";
  parts.error.hidden = !parts.error.textContent;
  // The buttons' names say which job they act on ("Cancel 400 pasted links into Music").
  card.name = `${title} ${into}`;
  updateButtons(card);
}

/** While the socket is down: the card's state is as of `since`; no ETA, and no actions, saying why. */
function showOffline(card, since) {
  const offline = since !== null && (isActive(card.job) || !card.parts.retry.hidden);
  card.offline = offline;
  card.el.classList.toggle("job--offline", offline);
  card.parts.offline.hidden = !offline;
  card.parts.offline.textContent = offline
    ? `Not connected: this is the state at ${since.toLocaleTimeString()}. ` +
      "Cancel and Retry come back with the connection."
    : "";
  if (offline) card.parts.eta.hidden = true;
  updateButtons(card);
}

function updateButtons(card) {
  const { job, parts, busy, offline } = card;
  const active = isActive(job);
  const cancelling = busy === "cancel" || busy === "cancel-sent";
  parts.cancel.hidden = !active;
  parts.cancel.disabled = cancelling || offline;
  parts.cancel.textContent = cancelling ? "Cancelling…" : "Cancel";
  parts.cancel.setAttribute("aria-label", `${cancelling ? "Cancelling" : "Cancel"} ${card.name}`);
  parts.retry.hidden = !hasSomethingToRetry(job) || card.retried;
  parts.retry.disabled = busy === "retry" || offline;
  parts.retry.textContent = busy === "retry" ? "Retrying…" : "Retry";
  parts.retry.setAttribute("aria-label", `${busy === "retry" ? "Retrying" : "Retry"} ${card.name}`);
  for (const button of [parts.cancel, parts.retry]) {
    if (offline) button.setAttribute("aria-describedby", parts.offline.id);
    else button.removeAttribute("aria-describedby");
  }
}
