// The dashboard's entry point: sign in and out, the lists, and the wiring between the live client, the
// live panel, the video table and the import forms.

import { Api } from "./api.js";
import { byId, h } from "./dom.js";
import { plural } from "./format.js";
import { createHistory } from "./history.js";
import { createImporter } from "./importer.js";
import { LiveClient, jobStateFromApi } from "./live.js";
import { createLivePanel } from "./panel.js";
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
  lists: [],
  listId: null,
  expireTimer: null,
  asked: new Set(), // list ids we fetched the lists for already (see learnNewLists)
  finished: new Set(), // job ids seen finished, so the history reloads once per job that ends
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
  notice: byId("notice"),
  noticeText: byId("notice-text"),
  signin: byId("signin"),
  signinForm: byId("signin-form"),
  tokenInput: byId("token-input"),
  signinError: byId("signin-error"),
  workspace: byId("workspace"),
  lists: byId("lists"),
  newListForm: byId("new-list-form"),
  newListName: byId("new-list-name"),
  noList: byId("no-list"),
  listView: byId("list-view"),
  listTitle: byId("list-title"),
  renameButton: byId("rename-list"),
  renameForm: byId("rename-form"),
  renameInput: byId("rename-input"),
  addVideos: byId("add-videos"),
};

function notify(message) {
  // A request that failed because the token was revoked has already signed us out and said why.
  if (message && !session.signedIn) return;
  ui.noticeText.textContent = message;
  ui.notice.hidden = !message;
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

const jobHistory = createHistory({ api, notify, listName, onRetry: (job) => jobAction(job, "retry") });

const videos = createVideoTable({
  api,
  notify,
  onChanged: refreshLists,
  onJobs: (jobs) => jobs.forEach((job) => session.live?.upsert(jobStateFromApi(job))),
});

const importer = createImporter({
  api,
  notify,
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
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
}

async function signIn(token) {
  session.token = token;
  let me;
  try {
    me = await api.get("/api/me");
  } catch (error) {
    session.token = null;
    if (error.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
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
  ui.account.hidden = false;
  ui.signin.hidden = true;
  ui.workspace.hidden = false;
  ui.workspace.setAttribute("aria-busy", "true");
  startLive(token);
  await refreshLists();
  jobHistory.load();
  ui.workspace.setAttribute("aria-busy", "false");
  // Someone quick may have created and selected a list while the lists were loading: keep that one.
  if (session.listId) return;
  const remembered = localStorage.getItem(LIST_KEY);
  selectList(session.lists.some((list) => list.id === remembered) ? remembered : session.lists[0]?.id);
}

function signOut(message = "") {
  session.live?.stop();
  session.live = null;
  clearInterval(session.expireTimer);
  Object.assign(session, {
    token: null,
    signedIn: false,
    lists: [],
    listId: null,
    asked: new Set(),
    finished: new Set(),
  });
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(LIST_KEY);
  videos.hide();
  importer.clear();
  jobHistory.reset();
  panel.render([]);
  ui.lists.replaceChildren();
  ui.account.hidden = true;
  ui.workspace.hidden = true;
  ui.connection.textContent = "";
  notify("");
  showSignIn(message);
}

function showSignIn(message = "") {
  ui.signin.hidden = false;
  ui.workspace.hidden = true;
  ui.signinError.textContent = message;
  ui.tokenInput.focus();
}

// -- live progress --

function startLive(token) {
  const live = new LiveClient({
    token,
    onChange: (listIds) => {
      drawJobs();
      if (listIds.has(videos.listId)) videos.refreshSoon();
      learnNewLists(listIds);
      noteFinishedJobs(live);
    },
    onStatus: (status) => {
      ui.connection.textContent = status === "reconnecting" ? "Reconnecting…" : "";
    },
    onUnauthorized: () => signOut(REVOKED),
  });
  session.live = live;
  live.start();
  session.expireTimer = setInterval(drawJobs, TICK_MS);
}

/** A job that just finished belongs in the history: reload it (debounced). */
function noteFinishedJobs(live) {
  let ended = false;
  for (const job of live.jobs.values()) {
    if (job.finishedAt != null && !session.finished.has(job.job_id)) {
      session.finished.add(job.job_id);
      ended = true;
    }
  }
  if (ended) jobHistory.refreshSoon();
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
  panel.render(session.live ? session.live.visibleJobs() : []);
}

async function jobAction(job, action) {
  try {
    const answer = await api.post(`/api/jobs/${job.job_id}/${action}`);
    // The socket will say the same soon; showing the answer now makes the click feel instant.
    session.live?.upsert(jobStateFromApi(answer));
  } catch (error) {
    notify(error.message);
    throw error;
  }
}

// -- lists --

async function refreshLists() {
  try {
    const page = await api.get("/api/lists?limit=1000");
    session.lists = page.items;
  } catch (error) {
    if (error.status !== 401) notify(error.message);
    return;
  }
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
  if (current) ui.listTitle.textContent = current.name;
  drawJobs(); // card titles name the lists
}

function currentList() {
  return session.lists.find((list) => list.id === session.listId) ?? null;
}

function selectList(listId) {
  if (listId && listId === session.listId && !ui.listView.hidden) return; // already shown: keep the forms
  session.listId = listId ?? null;
  closeRename();
  notify("");
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
    session.lists.push(list);
    selectList(list.id);
  } catch (error) {
    notify(error.message);
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
    notify(error.message);
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
    notify(error.message);
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
    notify(error.message);
    return;
  }
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
  byId("notice-dismiss").addEventListener("click", () => notify(""));
  ui.newListForm.addEventListener("submit", createList);
  ui.renameButton.addEventListener("click", () => (ui.renameForm.hidden ? openRename() : closeRename()));
  ui.renameForm.addEventListener("submit", renameList);
  byId("rename-cancel").addEventListener("click", () => closeRename({ refocus: true }));
  ui.renameForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeRename({ refocus: true });
  });
  byId("delete-list").addEventListener("click", deleteList);
  byId("export-list").addEventListener("click", exportList);
}

function boot() {
  takeTokenFromLink();
  wire();
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

boot();
