// How many jobs are running, where a tab in the background still shows it: the page title ("(2) …")
// and the favicon (a count drawn on it). An SVG data URL: the CSP allows `data:` images, and no canvas.

const ICON = "/static/favicon.svg";

export function createRunningBadge({ title = document.title } = {}) {
  const link = document.querySelector('link[rel="icon"]');
  let shown = 0;

  /** Shows `count` running jobs (0: the plain title and icon). */
  function show(count) {
    if (count === shown) return;
    shown = count;
    document.title = count ? `(${count}) ${title}` : title;
    if (link) link.href = count ? iconWithCount(count) : ICON;
  }

  return { show };
}

function iconWithCount(count) {
  const text = count > 99 ? "99+" : String(count);
  const size = text.length > 2 ? 11 : 14;
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
    '<rect width="32" height="32" rx="7" fill="#c4302b"/><path d="M8 9v14l11-7z" fill="#fff"/>' +
    '<circle cx="23" cy="23" r="9" fill="#1f5fbf" stroke="#fff" stroke-width="1.5"/>' +
    `<text x="23" y="27.5" font-family="sans-serif" font-size="${size}" font-weight="700" ` +
    `text-anchor="middle" fill="#fff">${text}</text></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}
