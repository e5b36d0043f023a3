// The live progress client (docs/design.md, "The progress socket"): one WebSocket per tab to /api/ws/progress.
//
// The server numbers every event of a user with a gapless `seq`. We keep the last seq we applied, resume
// with it (`after`) on every reconnect, and ignore anything at or below it, so reconnects, server restarts
// and replays never show an event twice or skip one. A `snapshot` frame replaces all job state at once.

const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const TOO_MANY_SOCKETS_DELAY_MS = 30_000;
const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
const READY_WITHIN_MS = 15_000;
export const RECENT_MS = 10 * 60 * 1000; // finished jobs stay on the dashboard this long

const CLOSE_NORMAL = 1000;
const CLOSE_RESYNC = 4000; // ours: we saw a gap or a dead socket and start over from our last seq
// The only code that says the token is bad: the server sends it only after checking the token. On any
// other close the token is kept and the client reconnects.
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_TOO_MANY_SOCKETS = 4429;
const CLOSE_RATE_LIMITED = 4430; // reason: "rate limited; retry in N s"
const CLOSE_SERVER_RESTARTING = 1012;

const ACTIVE = new Set(["queued", "running"]);

export function isActive(job) {
  return ACTIVE.has(job.status);
}

/** A job from the HTTP API (JobOut) in the event shape the socket uses, so both can go in one map. */
export function jobStateFromApi(job) {
  return {
    seq: job.last_seq ?? 0,
    job_id: job.id,
    list_id: job.list_id,
    kind: job.kind,
    source: job.source,
    status: job.status,
    progress: job.progress,
    processed: job.processed,
    failed: job.failed,
    total: job.total,
    rate: job.rate,
    eta_s: job.eta_s,
    message: job.message,
    error: job.last_error,
    started_at: job.started_at,
    next_attempt_at: job.next_attempt_at,
    at: job.finished_at ?? job.started_at ?? job.created_at,
  };
}

function progressUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/ws/progress`;
}

/** Exponential backoff with "equal jitter": between half and all of 0.5 s × 2^attempt, capped at 30 s. */
function backoffMs(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** "rate limited; retry in 12 s" → 12000 (0 when the reason says nothing). */
function retryAfterMs(reason) {
  const seconds = /retry in (\d+) s/.exec(reason)?.[1];
  return seconds ? Number(seconds) * 1000 : 0;
}

export class LiveClient {
  /** job_id → the job's latest state (event shape) plus `finishedAt` (ms) once it is terminal. */
  jobs = new Map();

  #token;
  #url;
  #handlers;
  #ws = null;
  #lastSeq = null;
  #attempt = 0;
  #reconnectTimer = null;
  #watchdog = null;
  #pinger = null;
  #running = false;
  #status = "idle";
  #pageListeners = null;

  /**
   * handlers: onChange(listIds: Set) after job state changed (listIds: the lists it touched),
   * onStatus("connecting" | "online" | "reconnecting" | "idle"), onUnauthorized() when the server
   * says 4401 (the client has stopped by then).
   */
  constructor({ token, url = progressUrl(), ...handlers }) {
    this.#token = token;
    this.#url = url;
    this.#handlers = handlers;
  }

  get status() {
    return this.#status;
  }

  start() {
    if (this.#running) return;
    this.#running = true;
    this.#listenToPage();
    this.#setStatus("connecting");
    this.#connect();
  }

  /** For good (sign out): a clean close and no reconnect. */
  stop() {
    this.#running = false;
    this.#pageListeners?.abort();
    this.#pageListeners = null;
    this.#disconnect(CLOSE_NORMAL, "signed out");
    this.#setStatus("idle");
  }

  /** Merges a job state learnt over HTTP (an import or retry answer) unless the socket knows newer. */
  upsert(state) {
    const known = this.jobs.get(state.job_id);
    if (known && (known.seq ?? 0) >= (state.seq ?? 0)) return;
    this.jobs.set(state.job_id, stamp(state, Date.now()));
    this.#changed(new Set([state.list_id]));
  }

  /** Active jobs and jobs finished within RECENT_MS, oldest first; forgets the older finished ones. */
  visibleJobs(now = Date.now()) {
    for (const [id, job] of this.jobs) {
      if (job.finishedAt != null && now - job.finishedAt > RECENT_MS) this.jobs.delete(id);
    }
    return [...this.jobs.values()];
  }

  // -- the socket --

  #connect() {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.#ws) return;
      // The token goes in the first frame, never in the URL (URLs end up in logs).
      ws.send(JSON.stringify({ type: "hello", token: this.#token, after: this.#lastSeq }));
      this.#armWatchdog(READY_WITHIN_MS);
    });
    ws.addEventListener("message", (message) => this.#onFrame(ws, message.data));
    // An "error" is always followed by "close"; recovery happens there.
    ws.addEventListener("close", (event) => this.#onClose(ws, event.code, event.reason ?? ""));
  }

  #onFrame(ws, data) {
    if (ws !== this.#ws) return;
    clearTimeout(this.#watchdog); // any frame proves the socket is alive
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.warn("live: ignored a frame that is not JSON");
      return;
    }
    switch (frame.type) {
      case "event":
        this.#applyEvent(frame);
        break;
      case "snapshot":
        this.#applySnapshot(frame);
        break;
      case "ready":
        this.#lastSeq = Math.max(this.#lastSeq ?? 0, frame.seq);
        this.#attempt = 0; // a connection that got this far resets the backoff
        this.#setStatus("online");
        this.#startPinging(ws);
        break;
      case "pong":
        break;
      default:
        console.warn(`live: ignored an unknown frame type ${frame.type}`);
    }
  }

  #applyEvent(event) {
    if (this.#lastSeq !== null && event.seq <= this.#lastSeq) return; // already applied (replay overlap)
    if (this.#lastSeq !== null && event.seq > this.#lastSeq + 1) {
      // The stream is gapless by contract; if one is missing anyway, resume from what we have.
      this.#resync("gap in seq");
      return;
    }
    this.#lastSeq = event.seq;
    const { type: _type, ...state } = event;
    this.jobs.set(state.job_id, stamp(state, Date.now()));
    this.#changed(new Set([state.list_id]));
  }

  #applySnapshot(frame) {
    const now = Date.now();
    this.jobs = new Map(frame.jobs.map((job) => [job.job_id, stamp(job, now, { fromSnapshot: true })]));
    this.#lastSeq = frame.seq;
    this.#changed(new Set(frame.jobs.map((job) => job.list_id)));
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return; // a socket we already gave up on
    this.#ws = null;
    this.#stopTimers();
    if (!this.#running) return;
    if (code === CLOSE_UNAUTHENTICATED) {
      this.stop();
      this.#handlers.onUnauthorized?.();
      return;
    }
    this.#setStatus("reconnecting");
    this.#scheduleReconnect(this.#delayAfter(code, reason));
  }

  #delayAfter(code, reason) {
    if (code === CLOSE_SERVER_RESTARTING) {
      // A deploy or restart: another process (or this one, restarted) answers soon.
      return 250 + Math.random() * 750;
    }
    const delay = backoffMs(this.#attempt);
    this.#attempt += 1;
    // Too many tabs open for this user: wait until some close instead of hammering the server.
    if (code === CLOSE_TOO_MANY_SOCKETS) return Math.max(delay, TOO_MANY_SOCKETS_DELAY_MS);
    // Rate limited: wait as long as the server asks (at most the longest backoff), keeping the token.
    if (code === CLOSE_RATE_LIMITED) return Math.max(delay, Math.min(retryAfterMs(reason), BACKOFF_MAX_MS));
    return delay;
  }

  #scheduleReconnect(delay) {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** Drops the current socket without waiting for its close handshake and reconnects. */
  #resync(reason) {
    this.#disconnect(CLOSE_RESYNC, reason);
    if (!this.#running) return;
    this.#setStatus("reconnecting");
    this.#scheduleReconnect(backoffMs(this.#attempt++));
  }

  #disconnect(code, reason) {
    this.#stopTimers();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const ws = this.#ws;
    this.#ws = null; // its close event is ignored from now on
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code, reason);
  }

  // -- liveness --

  #armWatchdog(ms) {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => this.#resync("no answer"), ms);
  }

  #startPinging(ws) {
    clearInterval(this.#pinger);
    // A half-open TCP connection (laptop asleep, NAT timeout) never fires "close": ask, and expect an answer.
    this.#pinger = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: "ping" }));
      this.#armWatchdog(PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  #stopTimers() {
    clearTimeout(this.#watchdog);
    clearInterval(this.#pinger);
    this.#watchdog = null;
    this.#pinger = null;
  }

  // -- the page's lifecycle --

  #listenToPage() {
    this.#pageListeners = new AbortController();
    const { signal } = this.#pageListeners;
    // Leaving the page: say goodbye properly (1000), so the server sees a clean close, not a dropped one.
    window.addEventListener("pagehide", () => this.#disconnect(CLOSE_NORMAL, "page hidden"), { signal });
    // Back from the back/forward cache: resume from the last seq we saw.
    window.addEventListener(
      "pageshow",
      (event) => {
        if (event.persisted && this.#running && !this.#ws) this.#reconnectNow();
      },
      { signal },
    );
    // The network is back: no need to wait out the backoff.
    window.addEventListener(
      "online",
      () => {
        if (this.#running && !this.#ws) this.#reconnectNow();
      },
      { signal },
    );
  }

  #reconnectNow() {
    this.#setStatus("reconnecting");
    this.#connect();
  }

  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this.#handlers.onStatus?.(status);
  }

  #changed(listIds) {
    this.#handlers.onChange?.(listIds);
  }
}

/**
 * Adds `finishedAt` to a terminal state: when it was seen, so it stays RECENT_MS from then. A snapshot's
 * `at` says when the job really finished (a reload must not restart the 10 minutes); a clock ahead of the
 * server's must not make it look older than that, hence the cap at `now`.
 */
function stamp(state, now, { fromSnapshot = false } = {}) {
  if (isActive(state)) return { ...state, finishedAt: null };
  const at = Date.parse(state.at);
  const finishedAt = fromSnapshot && Number.isFinite(at) ? Math.min(at, now) : now;
  return { ...state, finishedAt };
}
