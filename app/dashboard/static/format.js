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

/** Time left, for people: "14 s", "3 min 5 s", "2 h 10 min". */
export function formatEta(seconds) {
  if (seconds == null) return "estimating…";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
  return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
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
