// The dashboard's entry point: sign in and out, the lists, and the wiring between the live client (one
// socket per browser: tabs.js), the live panel, the video table, the import forms, notifications and the
// running-job count in the title and favicon.

import { Api } from "./api.js";
import { createRunningBadge } from "./badge.js";
import { byId, h, showError } from "./dom.js";
import { formatDate, plural } from "./format.js";
import { createHistory } from "./history.js";
import { createImporter } from "./importer.js";
import { LiveClient, isActive, jobStateFromApi } from "./live.js";
import { createNotifier } from "./notify.js";
import { createLivePanel } from "./panel.js";
import { TabGroup } from "./tabs.js";
import { createTakeoutImporter } from "./takeout.js";
import { createVideoTable } from "./videos.js";

const TOKEN_KEY = "sytb.token";
const LIST_KEY = "sytb.list";
// Cards show how long their job has run, and finished ones leave (for the history) 10 minutes after
// they finished: redrawing every second keeps both current.
const TICK_MS = 1000;
const REVOKED = "Your token is no longer valid (revoked?). Sign in again.";

const session = {
  token: null,
  signedIn: false,
  live: null,
  group: null,
  paused: false,
  missed: 0, // live changes not drawn while paused
  lists: [],
  listId: null,
  expireTimer: null,
  asked: new Set(), // list ids we fetched the lists for already (see learnNewLists)
  finished: new Set(), // job ids seen finished, so the history reloads once per job that ends
  historyStale: false, // a job finished while paused: the history reloads on resuming
};

const api = new Api({
  getToken: () => session.token,
  // A 401 while signed in means the token was revoked; during sign-in, signIn() explains it itself.
  onUnauthorized: () => session.signedIn && signOut(REVOKED),
});

const ui = {
  account: byId("account"),
  accountEmail: byId("account-email"),
  consoleLink: byId("console-link"),
  connection: byId("connection"),
  signin: byId("signin"),
  signinForm: byId("signin-form"),
  tokenInput: byId("token-input"),
  signinError: byId("signin-error"),
  workspace: byId("workspace"),
  lists: byId("lists"),
  listsError: byId("lists-error"),
  newListForm: byId("new-list-form"),
  newListName: byId("new-list-name"),
  newListError: byId("new-list-error"),
  noList: byId("no-list"),
  listView: byId("list-view"),
  listTitle: byId("list-title"),
  renameButton: byId("rename-list"),
  renameForm: byId("rename-form"),
  renameInput: byId("rename-input"),
  renameError: byId("rename-error"),
  listError: byId("list-error"),
  addVideos: byId("add-videos"),
  checkAvailability: byId("check-availability"),
  schedule: byId("refresh-schedule"),
  nextCheck: byId("next-check"),
  pause: byId("pause-live"),
  paused: byId("live-paused"),
};

/** An error next to what caused it; "" clears it. */
function report(el, message, input = null) {
  // A request that failed because the token was revoked has already signed us out and said why.
  if (message && !session.signedIn) return;
  showError(el, message, input);
}

const listName = (listId) => session.lists.find((list) => list.id === listId)?.name ?? null;

const panel = createLivePanel({
  root: byId("jobs"),
  empty: byId("live-empty"),
  announcer: byId("live-announcer"),
  listName,
  onCancel: (job) => jobAction(job, "cancel"),
  onRetry: (job) => jobAction(job, "retry"),
});

const jobHistory = createHistory({
  api,
  report: (message) => report(byId("history-error"), message),
  listName,
  onRetry: (job) => jobAction(job, "retry"),
});

const videos = createVideoTable({
  api,
  report: (message) => report(byId("videos-error"), message),
  reportList: (message) => report(ui.listError, message),
  onChanged: refreshLists,
  onJobs: (jobs) => jobs.forEach((job) => session.live?.upsert(jobStateFromApi(job))),
});

const takeout = createTakeoutImporter({
  api,
  onJobs: (jobs) => jobs.forEach((job) => session.live?.upsert(jobStateFromApi(job))),
  onLists: () => {
    refreshLists();
    videos.load();
  },
});

const badge = createRunningBadge();

const notifier = createNotifier({
  button: byId("notify-toggle"),
  note: byId("notify-note"),
  group: () => session.group ?? { role: "alone", anyTabVisible: () => !document.hidden },
  listName,
});

const importer = createImporter({
  api,
  report,
  getListId: () => session.listId,
  onJob: (job) => {
    session.live?.upsert(jobStateFromApi(job));
  },
  onAdded: () => {
    videos.load();
    refreshLists();
  },
});

// -- signing in and out --

/** A sign-in link (`/#token=sytb_…`) stores its token and leaves no trace of it in the address bar. */
function takeTokenFromLink() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return null;
  localStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

/** A sign-in link pasted into a tab already on the page changes only the hash: sign in with it. */
function signInFromNewLink() {
  const token = takeTokenFromLink();
  if (!token) return;
  if (session.signedIn) signOut();
  signIn(token);
}

async function signIn(token) {
  session.token = token;
  let me;
  try {
    me = await api.get("/api/me");
  } catch (error) {
    session.token = null;
    if (error.status === 401) {
      forgetToken(token);
      showSignIn("That token was not accepted: it is unknown or revoked.");
    } else {
      // Keep a stored token: the server is only unreachable, and a reload will work again.
      showSignIn(error.message);
    }
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  session.signedIn = true;
  ui.accountEmail.textContent = me.email;
  ui.consoleLink.hidden = !me.is_admin;
  videos.setPartialMetadata(me.metadata_source === "oembed");
  ui.account.hidden = false;
  ui.signin.hidden = true;
  ui.workspace.hidden = false;
  ui.workspace.setAttribute("aria-busy", "true");
  startLive(token, me.id);
  await refreshLists();
  jobHistory.load();
  ui.workspace.setAttribute("aria-busy", "false");
  // Someone quick may have created and selected a list while the lists were loading: keep that one.
  if (session.listId) return;
  const remembered = localStorage.getItem(LIST_KEY);
  selectList(session.lists.some((list) => list.id === remembered) ? remembered : session.lists[0]?.id);
}

function signOut(message = "") {
  // Another tab may have signed in since, storing its newer token: that one (and its list) stays.
  if (forgetToken(session.token)) localStorage.removeItem(LIST_KEY);
  session.group?.stop();
  session.group = null;
  session.live = null;
  clearInterval(session.expireTimer);
  Object.assign(session, {
    token: null,
    signedIn: false,
    lists: [],
    listId: null,
    asked: new Set(),
    finished: new Set(),
    historyStale: false,
  });
  videos.hide();
  importer.clear();
  takeout.clear();
  jobHistory.reset();
  if (session.paused) togglePause();
  panel.render([]);
  badge.show(0);
  ui.lists.replaceChildren();
  ui.account.hidden = true;
  ui.workspace.hidden = true;
  ui.connection.textContent = "";
  for (const el of document.querySelectorAll("#workspace .form-error")) showError(el, "");
  showSignIn(message);
}

/** Removes the stored token if it is `token` (true then); a token stored by another tab since is kept. */
function forgetToken(token) {
  if (token == null || localStorage.getItem(TOKEN_KEY) !== token) return false;
  localStorage.removeItem(TOKEN_KEY);
  return true;
}

function showSignIn(message = "") {
  ui.signin.hidden = false;
  ui.workspace.hidden = true;
  ui.signinError.textContent = message;
  ui.tokenInput.focus();
}

// -- live progress --

function startLive(token, userId) {
  const live = new LiveClient({
    token,
    onChange: (listIds) => {
      // Before anything draws: drawing prunes jobs finished long ago, and one that finished and aged out
      // during a pause must still reach the history.
      noteFinishedJobs(live);
      learnNewLists(listIds);
      if (session.paused) {
        session.missed += 1;
        drawPaused();
        return;
      }
      drawJobs();
      if (listIds.has(videos.listId)) videos.refreshSoon();
    },
    onStatus: (status) => group.status(status),
    onFrame: (frame) => group.frame(frame),
    onJobEnded: (job) => notifier.jobEnded(job),
    onUnauthorized: () => signOut(REVOKED),
  });
  // Only one tab of the browser holds the socket; the others show what it relays.
  const group = new TabGroup({
    live,
    userId,
    onStatus: (status) => {
      const offline = status === "reconnecting";
      ui.connection.textContent = offline ? "Reconnecting…" : "";
      document.documentElement.dataset.liveStatus = status;
      // Cards now show the state they had when the connection dropped, until it is back.
      panel.setOffline(offline);
      if (!session.paused) drawJobs();
    },
    onRole: (role) => {
      document.documentElement.dataset.liveRole = role;
    },
  });
  session.live = live;
  session.group = group;
  group.start();
  session.expireTimer = setInterval(() => session.paused || drawJobs(), TICK_MS);
}

/** Pause: the panel and the table stop moving (the socket stays, so resuming shows the latest at once). */
function togglePause() {
  session.paused = !session.paused;
  ui.pause.setAttribute("aria-pressed", String(session.paused));
  ui.pause.textContent = session.paused ? "Resume live updates" : "Pause live updates";
  if (session.paused) {
    session.missed = 0;
    drawPaused();
    return;
  }
  ui.paused.hidden = true;
  if (session.missed) {
    drawJobs();
    videos.refreshSoon();
  }
  if (session.historyStale) refreshHistory();
  session.missed = 0;
}

function drawPaused() {
  ui.paused.hidden = false;
  ui.paused.textContent = session.missed
    ? `Live updates paused: ${plural(session.missed, "update")} not shown yet.`
    : "Live updates paused.";
  showRunning();
}

/** A job that just finished belongs in the history: reload it (debounced; while paused, on resuming). */
function noteFinishedJobs(live) {
  for (const job of live.jobs.values()) {
    if (job.finishedAt != null && !session.finished.has(job.job_id)) {
      session.finished.add(job.job_id);
      session.historyStale = true;
    }
  }
  if (session.historyStale && !session.paused) refreshHistory();
}

function refreshHistory() {
  session.historyStale = false;
  jobHistory.refreshSoon();
}

/** A job in a list this tab has not seen (made in another tab): fetch the lists once, for its name. */
function learnNewLists(listIds) {
  const unknown = [...listIds].filter(
    (id) => id && !session.asked.has(id) && !session.lists.some((list) => list.id === id),
  );
  if (!unknown.length) return;
  unknown.forEach((id) => session.asked.add(id)); // a deleted list must not make us ask on every event
  refreshLists();
}

function drawJobs() {
  const jobs = session.live ? session.live.visibleJobs() : [];
  panel.render(jobs);
  showRunning(jobs);
}

/** The count of running jobs in the title and favicon (kept current even while paused: it moves nothing). */
function showRunning(jobs = session.live ? session.live.visibleJobs() : []) {
  badge.show(jobs.filter(isActive).length);
}

/** Cancel or retry; a failure is thrown to the card, which shows it. */
async function jobAction(job, action) {
  const answer = await api.post(`/api/jobs/${job.job_id}/${action}`);
  // The socket will say the same soon; showing the answer now makes the click feel instant.
  session.live?.upsert(jobStateFromApi(answer));
}

// -- lists --

async function refreshLists() {
  try {
    const page = await api.get("/api/lists?limit=1000");
    session.lists = page.items;
  } catch (error) {
    if (error.status !== 401) report(ui.listsError, `The lists could not be loaded: ${error.message}`);
    return;
  }
  report(ui.listsError, "");
  drawLists();
}

function drawLists() {
  const focusedId = document.activeElement?.dataset?.listId;
  ui.lists.replaceChildren(
    ...session.lists.map((list) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "list-button",
            "data-list-id": list.id,
            "aria-current": list.id === session.listId ? "true" : null,
            onclick: () => selectList(list.id),
          },
          h("span", { class: "list-button__name" }, list.name),
          h(
            "span",
            { class: "list-button__count" },
            String(list.video_count),
            h("span", { class: "visually-hidden" }, list.video_count === 1 ? " video" : " videos"),
          ),
        ),
      ),
    ),
  );
  // Redrawing replaced the buttons: give the focus back to the one that had it.
  if (focusedId) ui.lists.querySelector(`[data-list-id="${CSS.escape(focusedId)}"]`)?.focus();
  const current = currentList();
  if (current) {
    ui.listTitle.textContent = current.name;
    drawSchedule(current);
  }
  if (!session.paused) drawJobs(); // card titles name the lists (resuming draws them)
}

function drawSchedule(list) {
  ui.schedule.value = list.refresh_schedule ?? "off";
  ui.nextCheck.textContent = list.next_refresh_at ? `Next check ${formatDate(list.next_refresh_at)}` : "";
}

async function checkAvailability() {
  const list = currentList();
  if (!list) return;
  ui.checkAvailability.disabled = true;
  try {
    const job = await api.post(`/api/lists/${list.id}/refresh`);
    report(ui.listError, "");
    session.live?.upsert(jobStateFromApi(job));
    refreshLists(); // a scheduled list is next due one interval from now
  } catch (error) {
    report(ui.listError, `The check could not start: ${error.message}`);
  } finally {
    ui.checkAvailability.disabled = false;
  }
}

async function changeSchedule() {
  const list = currentList();
  if (!list) return;
  try {
    const updated = await api.patch(`/api/lists/${list.id}`, { refresh_schedule: ui.schedule.value });
    session.lists = session.lists.map((other) => (other.id === updated.id ? updated : other));
    report(ui.listError, "");
    drawSchedule(updated);
  } catch (error) {
    report(ui.listError, `The schedule could not be saved: ${error.message}`);
    drawSchedule(list);
  }
}

function currentList() {
  return session.lists.find((list) => list.id === session.listId) ?? null;
}

function selectList(listId) {
  if (listId && listId === session.listId && !ui.listView.hidden) return; // already shown: keep the forms
  session.listId = listId ?? null;
  closeRename();
  report(ui.listError, "");
  if (!session.listId) {
    localStorage.removeItem(LIST_KEY);
    ui.listView.hidden = true;
    ui.noList.hidden = false;
    videos.hide();
    drawLists();
    return;
  }
  localStorage.setItem(LIST_KEY, session.listId);
  ui.noList.hidden = true;
  ui.listView.hidden = false;
  importer.clear();
  // An empty list needs videos first; a full one needs its table in view more than the forms.
  ui.addVideos.open = (currentList()?.video_count ?? 0) === 0;
  drawLists();
  videos.show(session.listId);
}

async function createList(event) {
  event.preventDefault();
  const name = ui.newListName.value.trim();
  if (!name) return;
  try {
    const list = await api.post("/api/lists", { name });
    ui.newListName.value = "";
    report(ui.newListError, "", ui.newListName);
    session.lists.push(list);
    selectList(list.id);
  } catch (error) {
    report(ui.newListError, error.message, ui.newListName);
    ui.newListName.focus();
  }
}

function openRename() {
  ui.renameForm.hidden = false;
  ui.renameButton.setAttribute("aria-expanded", "true");
  ui.renameInput.value = currentList()?.name ?? "";
  ui.renameInput.select();
  ui.renameInput.focus();
}

function closeRename({ refocus = false } = {}) {
  report(ui.renameError, "", ui.renameInput);
  ui.renameForm.hidden = true;
  ui.renameButton.setAttribute("aria-expanded", "false");
  if (refocus) ui.renameButton.focus();
}

async function renameList(event) {
  event.preventDefault();
  const name = ui.renameInput.value.trim();
  if (!name) return;
  try {
    const updated = await api.patch(`/api/lists/${session.listId}`, { name });
    session.lists = session.lists.map((list) => (list.id === updated.id ? updated : list));
    closeRename({ refocus: true });
    drawLists();
  } catch (error) {
    report(ui.renameError, error.message, ui.renameInput);
    ui.renameInput.focus();
  }
}

async function deleteList() {
  const list = currentList();
  if (!list) return;
  const question =
    `Delete the list “${list.name}” and its ${plural(list.video_count, "video")}? ` +
    "Imports still running into it are cancelled.";
  if (!window.confirm(question)) return;
  try {
    await api.delete(`/api/lists/${list.id}`);
  } catch (error) {
    report(ui.listError, `The list could not be deleted: ${error.message}`);
    return;
  }
  session.lists = session.lists.filter((other) => other.id !== list.id);
  selectList(session.lists[0]?.id);
}

/** A plain link cannot send the Authorization header: fetch the CSV, then hand the browser a blob. */
async function exportList() {
  const list = currentList();
  if (!list) return;
  let file;
  try {
    file = await api.download(`/api/lists/${list.id}/export.csv`);
  } catch (error) {
    report(ui.listError, `The export failed: ${error.message}`);
    return;
  }
  report(ui.listError, "");
  const url = URL.createObjectURL(file.blob);
  const link = h("a", { href: url, download: fileName(list.name) ?? file.filename });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started by now; the object URL only has to outlive this task.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

function fileName(listName) {
  const base = listName.replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-+|-+$/g, "").slice(0, 80);
  return base ? `${base}.csv` : null;
}

// -- start --

function wire() {
  ui.signinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = ui.tokenInput.value.trim();
    if (!token) return;
    await signIn(token);
    if (session.signedIn) ui.tokenInput.value = "";
  });
  byId("sign-out").addEventListener("click", () => signOut());
  ui.newListForm.addEventListener("submit", createList);
  ui.renameButton.addEventListener("click", () => (ui.renameForm.hidden ? openRename() : closeRename()));
  ui.renameForm.addEventListener("submit", renameList);
  byId("rename-cancel").addEventListener("click", () => closeRename({ refocus: true }));
  ui.renameForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeRename({ refocus: true });
  });
  byId("delete-list").addEventListener("click", deleteList);
  byId("export-list").addEventListener("click", exportList);
  ui.checkAvailability.addEventListener("click", checkAvailability);
  ui.schedule.addEventListener("change", changeSchedule);
  ui.pause.addEventListener("click", togglePause);
}

function boot() {
  takeTokenFromLink();
  wire();
  window.addEventListener("hashchange", signInFromNewLink);
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

boot();
