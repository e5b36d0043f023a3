// Tiny DOM helpers. Text always goes in as text nodes, never as HTML: titles come from YouTube.

/**
 * h("a", { href, class: "x", onclick: fn }, "text", child) → an element.
 * null/false attributes and children are skipped; `true` sets a boolean attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((child) => child != null && child !== false));
  return el;
}

export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}

/** Calls `fn` once the calls have paused for `ms` (search as you type). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Shows `message` in `el`, the error line next to what caused it (a role="alert" element, so screen
 * readers announce it); "" clears it. `input`, if given, is marked invalid and described by the message.
 */
export function showError(el, message, input = null) {
  el.textContent = message;
  if (!input) return;
  if (message) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", el.id);
  } else {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}
