// One socket per browser, not per tab: the tabs of one user elect a leader with a Web Lock, and only the
// leader's LiveClient holds the WebSocket. It relays every frame it applies on a BroadcastChannel; the
// other tabs (followers) apply them with the same seq rules (LiveClient.receive), so all tabs show the same
// thing. When the leader's tab closes, the browser releases its lock and the next tab in line gets it at
// once: it opens the socket with `after` = the last seq it applied, and the server replays what came since.
//
// A new follower asks the leader for its whole state ("join") and takes it as a snapshot; a follower that
// ever sees a gap asks again. Without Web Locks (an http:// page that is not localhost is not a secure
// context) every tab keeps its own socket, as before.

const LOCK_PREFIX = "sytb-live:";

export class TabGroup {
  /** "alone" (own socket, no election), "leader" or "follower". */
  role = "alone";

  #live;
  #name;
  #onStatus;
  #onRole;
  #tab = crypto.randomUUID();
  #channel = null;
  #stopLock = null;
  #release = null;
  #visible = new Map(); // tab id → whether that tab is visible (the leader's view of the others)
  #pageListeners = null;
  #comeBack = null;

  /**
   * live: this tab's LiveClient (its onFrame and onStatus handlers must call frame() and status());
   * userId: tabs of one user share one socket; onStatus(status): the connection status to show (the
   * leader's, in a follower); onRole(role).
   */
  constructor({ live, userId, onStatus, onRole }) {
    this.#live = live;
    this.#name = LOCK_PREFIX + userId;
    this.#onStatus = onStatus;
    this.#onRole = onRole;
  }

  start() {
    if (!navigator.locks || !window.BroadcastChannel) {
      this.#setRole("alone");
      this.#live.start();
      return;
    }
    this.#channel = new BroadcastChannel(this.#name);
    this.#channel.onmessage = (message) => this.#onMessage(message.data);
    this.#listenToPage();
    this.#setRole("follower");
    this.#post({ type: "join", tab: this.#tab });
    this.#announceVisibility();
    this.#stopLock = new AbortController();
    navigator.locks
      .request(this.#name, { signal: this.#stopLock.signal }, () => this.#lead())
      .catch((error) => {
        if (error.name !== "AbortError") console.warn("live: the tab election failed", error);
      });
  }

  /** Leaves the group for good (sign out): a leader gives the socket (and the lock) to the next tab. */
  stop() {
    this.#leave("signed out");
    this.#comeBack?.abort();
    this.#comeBack = null;
  }

  #leave(reason) {
    this.#pageListeners?.abort();
    this.#pageListeners = null;
    this.#stopLock?.abort();
    this.#stopLock = null;
    this.#post({ type: "gone", tab: this.#tab });
    this.#live.stop(reason);
    this.#release?.();
    this.#release = null;
    this.#channel?.close();
    this.#channel = null;
  }

  /** For the LiveClient's onFrame: the leader shares every frame it applied. */
  frame(frame) {
    if (this.role === "leader") this.#post({ type: "frame", frame });
  }

  /** For the LiveClient's onStatus: shown here, and by the followers when this tab leads. */
  status(status) {
    if (this.role === "follower") return; // a follower shows its leader's
    this.#onStatus?.(status);
    if (this.role === "leader") this.#post({ type: "status", status });
  }

  /** Whether any tab of the group is in view (a notification is for when none is). */
  anyTabVisible() {
    return !document.hidden || [...this.#visible.values()].some(Boolean);
  }

  /** Holds the lock (and the socket) until this tab stops or closes. */
  #lead() {
    this.#setRole("leader");
    this.#visible.clear();
    this.#post({ type: "roll-call" }); // who is there, and in view?
    this.#live.start();
    this.#onStatus?.(this.#live.status);
    return new Promise((resolve) => {
      this.#release = resolve;
    });
  }

  #onMessage(message) {
    switch (message.type) {
      case "frame":
        if (this.role === "follower" && !this.#live.receive(message.frame)) this.#rejoin();
        break;
      case "join":
        if (this.role === "leader") this.#post({ type: "state", to: message.tab, ...this.#state() });
        break;
      case "state":
        if (this.role === "follower" && message.to === this.#tab) {
          this.#live.receive({ type: "snapshot", seq: message.seq, jobs: message.jobs });
          this.#onStatus?.(message.status);
        }
        break;
      case "status":
        if (this.role === "follower") this.#onStatus?.(message.status);
        break;
      case "roll-call":
        this.#announceVisibility();
        break;
      case "visible":
        this.#visible.set(message.tab, message.visible);
        break;
      case "gone":
        this.#visible.delete(message.tab);
        break;
      default:
        break;
    }
  }

  #state() {
    // As a snapshot would carry them: the receiving tab stamps each finished job from its `at`.
    const jobs = [...this.#live.jobs.values()].map(({ finishedAt: _finishedAt, ...job }) => job);
    return { seq: this.#live.lastSeq, jobs, status: this.#live.status };
  }

  #rejoin() {
    this.#post({ type: "join", tab: this.#tab });
  }

  #announceVisibility() {
    this.#post({ type: "visible", tab: this.#tab, visible: !document.hidden });
  }

  #listenToPage() {
    this.#pageListeners = new AbortController();
    const { signal } = this.#pageListeners;
    document.addEventListener("visibilitychange", () => this.#announceVisibility(), { signal });
    // Leaving: the next tab takes the socket at once, not when this document is finally destroyed. A
    // page kept in the back/forward cache joins again when it is shown.
    window.addEventListener(
      "pagehide",
      () => {
        this.#leave("page hidden");
        this.#comeBack = new AbortController();
        window.addEventListener("pageshow", (event) => event.persisted && this.start(), {
          signal: this.#comeBack.signal,
          once: true,
        });
      },
      { signal },
    );
  }

  #post(message) {
    this.#channel?.postMessage(message);
  }

  #setRole(role) {
    this.role = role;
    this.#onRole?.(role);
  }
}
