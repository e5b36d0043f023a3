// How numbers, durations and dates read on the dashboard (the live panel and the video table).

const pad2 = (n) => String(n).padStart(2, "0");

/** A video's length as h:mm:ss, or m:ss under an hour (YouTube's own style); "—" before it is known. */
export function formatDuration(seconds) {
  if (seconds == null) return "—";
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad2(m)}:${pad2(s)}` : `${m}:${pad2(s)}`;
}

/** A span of time, for people: "14 s", "3 min 5 s", "2 h 10 min". */
export function formatSpan(seconds) {
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
  return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
}

/** Time left: a span, or "estimating…" before it is known. */
export function formatEta(seconds) {
  return seconds == null ? "estimating…" : formatSpan(seconds);
}

/** A moment as a wall-clock time ("10:02", or "10:02:15"), with the date when it is not today. */
export function formatClock(iso, { seconds = false } = {}) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  const time = date.toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: seconds ? "2-digit" : undefined,
  });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${time}`;
}

const KIND_TITLES = { import: "Import", add: "1 video added", retry: "Retry" };

/** What a person recognises a job by: its source ("links.csv", "12 pasted links", "retry of …"). */
export function jobTitle(job) {
  const source = job.source ?? KIND_TITLES[job.kind] ?? "Import";
  return source.charAt(0).toUpperCase() + source.slice(1);
}

export function formatRate(rate) {
  if (rate == null) return "—";
  return `${rate < 10 ? rate.toFixed(1) : Math.round(rate)} videos/s`;
}

/** Whole percent, rounded down so a bar never claims 100% before the job is done. */
export function formatPercent(progress) {
  return `${Math.floor(Math.min(100, Math.max(0, progress ?? 0)))}%`;
}

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export const JOB_STATUS_LABELS = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  completed_with_errors: "Completed with errors",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const VIDEO_STATUS_LABELS = {
  pending: "Pending",
  ready: "Ready",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}
