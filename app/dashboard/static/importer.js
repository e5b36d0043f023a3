// Adding videos: one by URL, or many by file or pasted text. An import answers what it accepted, what
// was already there and, per line, what it could not use; all of it is shown.

import { ApiError } from "./api.js";
import { byId, h } from "./dom.js";
import { plural } from "./format.js";

const INVALID_COLUMNS = ["Line", "Value", "Reason"];

/** getListId() → the selected list; onJob(job) for the job an import started; onAdded() after any add. */
export function createImporter({ api, notify, getListId, onJob, onAdded }) {
  const addForm = byId("add-video-form");
  const addInput = byId("add-video-url");
  const importForm = byId("import-form");
  const fileInput = byId("import-file");
  const textInput = byId("import-text");
  const result = byId("import-result");

  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = addInput.value.trim();
    if (!url) return;
    const button = addForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.post(`/api/lists/${getListId()}/videos`, { url });
      addInput.value = "";
      onAdded();
    } catch (error) {
      notify(error.message);
      addInput.focus();
    } finally {
      button.disabled = false;
    }
  });

  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    const text = textInput.value.trim();
    if (!file && !text) {
      showResult(h("p", { class: "form-error" }, "Choose a file or paste some links first."));
      return;
    }
    let body;
    let contentType;
    if (file) {
      body = new FormData();
      body.append("file", file);
    } else {
      body = text;
      contentType = "text/plain; charset=utf-8";
    }
    const button = importForm.querySelector("button[type=submit]");
    button.disabled = true;
    showResult(h("p", { class: "muted" }, "Importing…"));
    try {
      const answer = await api.request("POST", `/api/lists/${getListId()}/imports`, {
        body,
        contentType,
      });
      importForm.reset();
      showResult(...summaryOf(answer));
      if (answer.job) onJob(answer.job);
      onAdded();
    } catch (error) {
      // 422 "nothing valid" still says why, line by line.
      const invalid = error instanceof ApiError ? error.extra?.invalid : null;
      showResult(h("p", { class: "form-error" }, error.message), invalid ? invalidTable(invalid) : null);
    } finally {
      button.disabled = false;
    }
  });

  function showResult(...children) {
    result.replaceChildren(...children.filter(Boolean));
  }

  return {
    clear() {
      importForm.reset();
      addForm.reset();
      result.replaceChildren();
    },
  };
}

function summaryOf({ accepted, duplicates, invalid, retried = 0 }) {
  const parts = [
    `Accepted ${plural(accepted, "video")}${retried ? ` (${retried} that had failed, retried)` : ""}`,
    `${plural(duplicates, "duplicate")} skipped`,
    `${plural(invalid.length, "invalid line")}`,
  ];
  const summary = h("p", { class: "import-summary" }, `${parts.join(" · ")}.`);
  return [summary, invalid.length ? invalidTable(invalid) : null];
}

function invalidTable(invalid) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "invalid-lines" },
      h("caption", {}, "Lines that were not imported"),
      h("thead", {}, h("tr", {}, INVALID_COLUMNS.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        invalid.map((line) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "Line" }, String(line.line)),
            h("td", { "data-label": "Value", class: "invalid-value" }, line.value),
            h("td", { "data-label": "Reason" }, line.reason),
          ),
        ),
      ),
    ),
  );
}
