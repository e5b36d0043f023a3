// Importing a whole Google Takeout archive: one list per playlist (an existing list of the same name is
// filled, never doubled) and one job per list, shown together under the upload in the live panel.

import { ApiError } from "./api.js";
import { byId, h } from "./dom.js";
import { plural } from "./format.js";

/** onJobs(jobs) with the jobs it started; onLists() after lists were made or filled. */
export function createTakeoutImporter({ api, onJobs, onLists }) {
  const form = byId("takeout-form");
  const file = byId("takeout-file");
  const result = byId("takeout-result");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const archive = file.files[0];
    if (!archive) {
      show(h("p", { class: "form-error" }, "Choose the .zip file Google Takeout made first."));
      return;
    }
    const body = new FormData();
    body.append("file", archive);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    show(h("p", { class: "muted" }, `Reading ${archive.name}…`));
    try {
      const answer = await api.request("POST", "/api/imports/takeout", { body });
      form.reset();
      show(...summaryOf(answer));
      onJobs(answer.lists.map((item) => item.job).filter(Boolean));
      onLists();
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      show(h("p", { class: "form-error" }, message));
    } finally {
      button.disabled = false;
    }
  });

  function show(...children) {
    result.replaceChildren(...children.filter(Boolean));
  }

  return {
    clear() {
      form.reset();
      result.replaceChildren();
    },
  };
}

function summaryOf({ source, lists, skipped }) {
  const made = lists.filter((item) => item.created).length;
  const heading = h(
    "p",
    { class: "import-summary" },
    `${plural(lists.length, "list")} from ${source}` +
      (made === lists.length ? "" : ` (${made} new, ${lists.length - made} already there)`) +
      (skipped.length ? `; ${plural(skipped.length, "empty playlist")} skipped` : "") +
      ".",
  );
  const items = h(
    "ul",
    { class: "takeout-lists" },
    lists.map((item) =>
      h(
        "li",
        {},
        h("strong", {}, item.name),
        `: ${plural(item.accepted, "new video")}` +
          (item.duplicates ? `, ${plural(item.duplicates, "already there", "already there")}` : ""),
      ),
    ),
  );
  return [heading, items];
}
