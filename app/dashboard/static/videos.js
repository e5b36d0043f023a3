// The video table of the selected list: status filter, search, paging, and refreshes driven by live
// events (at most one a second, however fast the events come).

import { ApiError } from "./api.js";
import { byId, debounce, h } from "./dom.js";
import { VIDEO_STATUS_LABELS, formatDate, formatDuration, plural } from "./format.js";

export const PAGE_SIZE = 50;
const REFRESH_EVERY_MS = 1000;
const SEARCH_PAUSE_MS = 300;

/**
 * report(message) shows an error by the table, reportList(message) one under the list's header (where
 * "Retry failed (N)" is); "" clears them. onChanged() after a video was removed; onJobs(jobs) with the
 * jobs (API shape) a retry started, for the live panel.
 */
export function createVideoTable({ api, report, reportList, onChanged, onJobs }) {
  const retryFailed = byId("retry-failed");
  const statusFilter = byId("status-filter");
  const search = byId("search");
  const rows = byId("video-rows");
  const summary = byId("videos-summary");
  const emptyNote = byId("videos-empty");
  const hint = byId("videos-hint");
  const prev = byId("prev-page");
  const next = byId("next-page");

  let listId = null;
  let offset = 0;
  let total = 0;
  let generation = 0; // answers to older requests (an earlier filter, another list) are dropped
  let lastLoadAt = 0;
  let refreshTimer = null;
  let partialMetadata = false; // no YouTube API key on the server: no durations or dates

  async function load() {
    if (!listId) return;
    const mine = ++generation;
    lastLoadAt = Date.now();
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
    if (statusFilter.value) params.set("status", statusFilter.value);
    const q = search.value.trim();
    if (q) params.set("q", q);
    let page;
    try {
      page = await api.get(`/api/lists/${listId}/videos?${params}`);
    } catch (error) {
      if (mine === generation && !(error instanceof ApiError && error.status === 401)) {
        report(`The videos could not be loaded: ${error.message}`);
      }
      return;
    }
    if (mine !== generation) return;
    report("");
    if (page.items.length === 0 && page.total > 0 && offset > 0) {
      // The page emptied under us (videos deleted): step back to the last page that has rows.
      offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      load();
      return;
    }
    countFailed(mine);
    total = page.total;
    draw(page.items);
  }

  /** "Retry failed (N)": N is the list's failed videos, whatever the filter shows. */
  async function countFailed(mine) {
    let page;
    try {
      page = await api.get(`/api/lists/${listId}/videos?status=failed&limit=1`);
    } catch {
      return; // the table's own request reports errors; the button keeps its last count
    }
    if (mine !== generation) return;
    retryFailed.hidden = page.total === 0;
    retryFailed.textContent = `Retry failed (${page.total})`;
    retryFailed.disabled = false;
  }

  async function startRetry(request, showFailure) {
    let jobs;
    try {
      jobs = await request();
    } catch (error) {
      showFailure(error.message);
      throw error;
    }
    showFailure("");
    onJobs?.(jobs);
    load();
  }

  async function retryAllFailed() {
    retryFailed.disabled = true;
    try {
      await startRetry(
        async () => [await api.post(`/api/lists/${listId}/retry-failed`)],
        (message) => reportList(message && `The failed videos could not be retried: ${message}`),
      );
    } catch {
      retryFailed.disabled = false;
    }
  }

  function retryOne(video) {
    const name = video.title ?? video.youtube_id;
    return startRetry(
      async () => (await api.post("/api/videos/retry", { ids: [video.id] })).jobs,
      (message) => report(message && `“${name}” could not be retried: ${message}`),
    );
  }

  function draw(videos) {
    const keep = new Map([...rows.children].map((tr) => [tr.dataset.key, tr]));
    const wanted = videos.map((video) => keep.get(rowKey(video)) ?? videoRow(video, remove, retryOne));
    // Reuse unchanged rows so a focused link or button keeps its focus across refreshes.
    wanted.forEach((tr, index) => {
      if (rows.children[index] !== tr) rows.insertBefore(tr, rows.children[index] ?? null);
    });
    while (rows.children.length > wanted.length) rows.lastElementChild.remove();

    const first = videos.length ? offset + 1 : 0;
    const filtered = statusFilter.value || search.value.trim();
    summary.textContent = videos.length
      ? `Showing ${first}–${offset + videos.length} of ${plural(total, filtered ? "matching video" : "video")}`
      : "";
    hint.hidden = !(partialMetadata && videos.some((video) => video.status === "ready"));
    emptyNote.hidden = videos.length > 0;
    emptyNote.textContent = filtered ? "No videos match." : "No videos yet: add one or import a file.";
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE_SIZE >= total;
    byId("pager").hidden = total <= PAGE_SIZE;
  }

  async function remove(video) {
    const name = video.title ?? video.youtube_id;
    if (!window.confirm(`Remove “${name}” from this list?`)) return;
    try {
      await api.delete(`/api/videos/${video.id}`);
    } catch (error) {
      report(`“${name}” could not be removed: ${error.message}`);
      return;
    }
    onChanged?.();
    load();
  }

  /** Live events for this list: reload, but never more than once per REFRESH_EVERY_MS. */
  function refreshSoon() {
    if (!listId || refreshTimer) return; // the one already scheduled will read the latest state
    const wait = Math.max(0, lastLoadAt + REFRESH_EVERY_MS - Date.now());
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      load();
    }, wait);
  }

  function show(id) {
    retryFailed.hidden = true;
    listId = id;
    offset = 0;
    statusFilter.value = "";
    search.value = "";
    rows.replaceChildren();
    summary.textContent = "";
    emptyNote.hidden = true;
    load();
  }

  function hide() {
    retryFailed.hidden = true;
    listId = null;
    hint.hidden = true;
    generation += 1;
    clearTimeout(refreshTimer);
    refreshTimer = null;
    rows.replaceChildren();
  }

  const reloadFromStart = () => {
    offset = 0;
    load();
  };
  retryFailed.addEventListener("click", retryAllFailed);
  statusFilter.addEventListener("change", reloadFromStart);
  search.addEventListener("input", debounce(reloadFromStart, SEARCH_PAUSE_MS));
  // Enter in the search box should search now, not submit anything.
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      reloadFromStart();
    }
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE_SIZE;
    load();
  });

  return {
    show,
    hide,
    load,
    refreshSoon,
    /** Metadata comes from oEmbed (no API key): say why durations and dates are empty. */
    setPartialMetadata(partial) {
      partialMetadata = partial;
    },
    get listId() {
      return listId;
    },
  };
}

// A row is rebuilt only when its video changed.
const rowKey = (video) => `${video.id}@${video.updated_at}`;

function videoRow(video, onRemove, onRetry) {
  const title = video.title ?? video.youtube_id;
  const thumbnail = video.thumbnail_url
    ? h("img", {
        src: video.thumbnail_url,
        alt: "",
        loading: "lazy",
        decoding: "async",
        width: 120,
        height: 68,
        // A thumbnail that fails (gone, blocked, offline) gets the placeholder, not a broken image.
        onerror: (event) => event.target.replaceWith(thumbPlaceholder()),
      })
    : thumbPlaceholder();
  return h(
    "tr",
    { "data-key": rowKey(video), "data-video-id": video.id, "data-status": video.status },
    h("td", { class: "cell-thumb" }, thumbnail),
    h(
      "td",
      { class: "cell-title", "data-label": "Title" },
      h("a", { href: video.url, target: "_blank", rel: "noopener noreferrer" }, title),
      video.error && video.status !== "ready"
        ? h("span", { class: "video-error" }, videoProblem(video))
        : null,
    ),
    h("td", { class: "cell-channel", "data-label": "Channel" }, video.channel_title ?? "—"),
    h("td", { class: "cell-duration", "data-label": "Duration" }, formatDuration(video.duration_s)),
    h(
      "td",
      { class: "cell-status", "data-label": "Status" },
      h("span", { class: `badge badge--${video.status}` }, VIDEO_STATUS_LABELS[video.status] ?? video.status),
    ),
    h(
      "td",
      { class: "cell-published", "data-label": "Published" },
      video.published_at
        ? h("time", { datetime: video.published_at }, formatDate(video.published_at))
        : "—",
    ),
    h(
      "td",
      { class: "cell-actions" },
      video.status === "failed" || video.status === "cancelled"
        ? h(
            "button",
            {
              type: "button",
              class: "button button--small",
              "aria-label": `Retry ${title}`,
              onclick: (event) => {
                const button = event.currentTarget;
                button.disabled = true;
                onRetry(video).catch(() => {
                  button.disabled = false; // the error is shown; the row can be retried again
                });
              },
            },
            "Retry",
          )
        : null,
      h(
        "button",
        {
          type: "button",
          class: "button button--small button--quiet",
          "aria-label": `Remove ${title}`,
          onclick: () => onRemove(video),
        },
        "Remove",
      ),
    ),
  );
}

/** Why a video is not ready; a video gone from YouTube says since when (its metadata is what it was). */
function videoProblem(video) {
  if (video.status !== "unavailable" || !video.unavailable_since) return video.error;
  return `Gone from YouTube since ${formatDate(video.unavailable_since)}: ${video.error}`;
}

function thumbPlaceholder() {
  return h("span", { class: "thumb-placeholder", "aria-hidden": "true" });
}
