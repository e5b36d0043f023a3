// Adding videos: one by URL, or many by file or pasted text. An import answers what it accepted, what
// was already there and, per line, what it could not use; all of it is shown.

import { ApiError } from "./api.js";
import { byId, h } from "./dom.js";
import { plural } from "./format.js";

const INVALID_COLUMNS = ["Line", "Value", "Reason"];

/**
 * report(el, message, input) shows an error next to its cause; getListId() → the selected list;
 * onJob(job) for the job an import started; onAdded() after any add.
 */
export function createImporter({ api, report, getListId, onJob, onAdded }) {
  const addForm = byId("add-video-form");
  const addInput = byId("add-video-url");
  const addError = byId("add-video-error");
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
      report(addError, "", addInput);
      onAdded();
    } catch (error) {
      report(addError, error.message, addInput);
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
      const count = error instanceof ApiError ? error.extra?.lines?.invalid : undefined;
      showResult(
        h("p", { class: "form-error" }, error.message),
        invalid?.length ? invalidTable(invalid, count) : null,
      );
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
      report(addError, "", addInput);
      result.replaceChildren();
    },
  };
}

function summaryOf({ accepted, duplicates, invalid, lines, retried = 0 }) {
  const parts = [
    `Accepted ${plural(accepted, "video")}${retried ? ` (${retried} that had failed, retried)` : ""}`,
    `${plural(duplicates, "duplicate")} skipped`,
    plural(lines.invalid, "invalid line"),
  ];
  if (lines.blank) parts.push(plural(lines.blank, "blank line"));
  if (lines.skipped) parts.push(plural(lines.skipped, "header or comment line"));
  const summary = h(
    "p",
    { class: "import-summary" },
    `${parts.join(" · ")} (${plural(lines.total, "line")} in all).`,
  );
  return [summary, invalid.length ? invalidTable(invalid, lines.invalid) : null];
}

function invalidTable(invalid, count = invalid.length) {
  const caption =
    count > invalid.length
      ? `Lines that were not imported (the first ${invalid.length} of ${count})`
      : "Lines that were not imported";
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "invalid-lines" },
      h("caption", {}, caption),
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
