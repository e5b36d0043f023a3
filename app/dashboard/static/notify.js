// Opt-in browser notifications: when a job ends while no tab of the app is in view, one notification
// says how it ended, with its counts. Only one tab of the browser notifies (the one holding the socket,
// tabs.js); a notification is tagged with its job, so the browser never shows one job's end twice.

import { JOB_STATUS_LABELS, jobTitle, plural, refreshFindings } from "./format.js";

const PREFERENCE_KEY = "sytb.notify";

/** button: the toggle (hidden where the browser has no notifications); note: where to say it is blocked;
 * group: the TabGroup (who notifies, and whether a tab is in view); listName(listId) → name or null. */
export function createNotifier({ button, note, group, listName }) {
  const supported = "Notification" in window;
  button.hidden = !supported;

  const wanted = () => localStorage.getItem(PREFERENCE_KEY) === "on";
  const allowed = () => supported && Notification.permission === "granted";

  function draw() {
    const on = wanted() && allowed();
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Notifications on" : "Notify me when a job ends";
    const blocked = supported && Notification.permission === "denied";
    note.hidden = !(wanted() && blocked);
    note.textContent = "Notifications are blocked for this site: allow them in the browser's site settings.";
  }

  async function toggle() {
    if (wanted() && allowed()) {
      localStorage.removeItem(PREFERENCE_KEY);
    } else {
      localStorage.setItem(PREFERENCE_KEY, "on");
      if (Notification.permission === "default") await Notification.requestPermission();
    }
    draw();
  }

  /** A job ended: tell the user if they asked to be told and no tab of the app is in view. */
  function jobEnded(job) {
    if (!wanted() || !allowed() || group().role === "follower" || group().anyTabVisible()) return;
    const list = listName(job.list_id);
    const outcome = JOB_STATUS_LABELS[job.status] ?? job.status;
    const title = `${jobTitle(job)}${list ? ` (${list})` : ""}: ${outcome}`;
    const notification = new Notification(title, {
      body: job.message ?? outcomeCounts(job),
      tag: job.job_id,
      icon: "/static/favicon.svg",
    });
    notification.addEventListener("click", () => {
      window.focus();
      notification.close();
    });
  }

  button.addEventListener("click", toggle);
  draw();
  return { jobEnded };
}

function outcomeCounts(job) {
  if (job.kind === "refresh") return refreshFindings(job) || `${plural(job.processed, "video")} checked`;
  return `${job.processed - job.failed} ready, ${job.failed} failed of ${plural(job.total, "video")}`;
}
