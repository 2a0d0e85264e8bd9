// The review queue: tickets waiting for review, oldest first, cleared with
// the keyboard. Each decision is a POST to the same API integrations use;
// the page moves on at once and the request runs behind it, so the reviewer
// never waits for the network. The next ticket's evidence is fetched ahead.
//
// The server hands out the queue a page at a time (keyset pages: deciding a
// ticket never shifts the ones behind it). The page reads the first page,
// reads on when the reviewer nears the end of what it holds, and refreshes
// by re-reading the head of the queue, never the whole backlog.

import { act, getJson, requireSignIn, roundTrips } from "./api.js";
import { EvidencePlayer, prepareEvidence, releaseEvidence } from "./player.js";
import { REJECTION_REASONS, areaText, ago, el, header, label, showError, when } from "./ui.js";

const PAGE_SIZE = 50;
const READ_ON_WITHIN = 10; // tickets left ahead when the next page is read
const PRELOAD_AHEAD = 2;
const POLL_S = 20;

const $ = (id) => document.getElementById(id);
const loads = Number(sessionStorage.getItem("citywatch.queue-loads") || 0) + 1;
sessionStorage.setItem("citywatch.queue-loads", String(loads));
document.body.dataset.loads = String(loads);

const state = {
  user: null,
  queue: [], // QueuedTicket, oldest first: the part of the queue read so far
  index: 0,
  after: null, // cursor of the last ticket read: the next page starts behind it
  atEnd: false, // the last read reached the end of the queue
  total: 0, // tickets waiting in all, as the server last counted them
  reading: Promise.resolve(), // reads of the queue, one after the other
  readingOn: false,
  selected: new Set(),
  decided: new Set(), // ids acted on here: never shown again
  cache: new Map(), // id -> Promise<{detail, prepared}>
  rejecting: false,
  inFlight: 0,
  cleared: 0,
  failures: 0,
};
// For the people and tests watching the page.
window.citywatchQueue = { state, roundTrips, refresh: () => refresh() };

const player = new EvidencePlayer(document.querySelector(".evidence"));
const hiddenPreload = el("video", { muted: true, preload: "auto", hidden: true });
document.body.append(hiddenPreload);

function current() {
  return state.queue[state.index] || null;
}

// --- loading -----------------------------------------------------------------

function readPage(after = null) {
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  if (after) query.set("after", after);
  return getJson(`/api/review-queue?${query}`);
}

// Reads run one at a time, so two never append the same tickets.
function serially(read) {
  const next = state.reading.then(read);
  state.reading = next.catch(() => {});
  return next;
}

function isNew(ticket) {
  return !state.queue.some((t) => t.id === ticket.id) && !state.decided.has(ticket.id);
}

// The next page, behind the last ticket read.
async function readOn() {
  const page = await readPage(state.after);
  const wasEmpty = state.queue.length === 0;
  state.queue.push(...page.items.filter(isNew));
  if (page.items.length) state.after = page.items.at(-1).cursor;
  state.atEnd = page.next === null;
  updated(wasEmpty);
}

function readOnIfNearTheEnd() {
  if (state.atEnd || state.readingOn) return;
  if (state.queue.length - state.index > READ_ON_WITHIN) return;
  state.readingOn = true;
  serially(readOn).then(
    () => {
      state.readingOn = false;
      readOnIfNearTheEnd(); // decided faster than the page came
    },
    (error) => {
      state.readingOn = false; // tried again on the next move or refresh
      showStatus(`The queue could not be read: ${error.message}`, true);
    },
  );
}

// Re-reads the head of the queue: tickets decided elsewhere leave, reopened
// or new ones join in their place; at the end of the queue, also what came
// in behind it.
async function refresh() {
  await serially(async () => {
    const page = await readPage();
    const wasEmpty = state.queue.length === 0;
    mergeHead(page);
    updated(wasEmpty);
  });
  if (state.atEnd) await serially(readOn);
}

function mergeHead(page) {
  const shown = current();
  const fresh = new Set(page.items.map((t) => t.id));
  // The page covers the queue up to its last ticket (all of it at the end).
  const through = page.next === null ? null : page.items.at(-1).cursor;
  const covered = (t) => through === null || t.cursor <= through;
  state.queue = state.queue.filter((t) => t === shown || fresh.has(t.id) || !covered(t));
  // Behind the last ticket read, tickets join by reading on, in order.
  const reached = (t) => state.atEnd || (state.after !== null && t.cursor <= state.after);
  const joining = page.items.filter((t) => isNew(t) && reached(t));
  state.queue.push(...joining);
  state.queue.sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));
  if (state.atEnd && page.items.length && (state.after === null || page.items.at(-1).cursor > state.after)) {
    state.after = page.items.at(-1).cursor;
    state.atEnd = page.next === null;
  }
  state.total = page.total;
  state.index = shown ? state.queue.indexOf(shown) : Math.min(state.index, Math.max(0, state.queue.length - 1));
}

function updated(wasEmpty) {
  if (wasEmpty && state.queue.length) {
    show(); // reads on, too, when near the end
    return;
  }
  renderList();
  preloadAround(); // a ticket just behind the current one may be new
  readOnIfNearTheEnd();
}

// The ticket's detail and evidence, fetched once; ``ahead`` marks fetches for
// tickets not yet on screen, which yield to the one shown and to decisions.
function evidenceFor(ticket, { ahead = false } = {}) {
  let entry = state.cache.get(ticket.id);
  if (!entry) {
    const controller = new AbortController();
    const options = { signal: controller.signal, priority: ahead ? "low" : "high" };
    entry = getJson(`/api/tickets/${ticket.id}`, options).then(async (detail) => ({
      detail,
      prepared: await prepareEvidence(detail, options),
    }));
    entry.controller = controller;
    entry.catch(() => state.cache.delete(ticket.id));
    state.cache.set(ticket.id, entry);
  }
  return entry;
}

// Fetching ahead waits while decisions are on their way: on a busy machine
// a decision's round trip should not share the server with downloads.
function preloadAround() {
  if (state.inFlight > 0) {
    state.preloadWaiting = true;
    return;
  }
  state.preloadWaiting = false;
  const keep = new Set();
  for (let i = Math.max(0, state.index - 1); i <= state.index + PRELOAD_AHEAD; i++) {
    const ticket = state.queue[i];
    if (!ticket) continue;
    keep.add(ticket.id);
    if (i > state.index) evidenceFor(ticket, { ahead: true }).catch(() => {});
  }
  // The clip on screen stays until the next one replaces it.
  if (player.prepared?.ticketId) keep.add(player.prepared.ticketId);
  const next = state.queue[state.index + 1];
  if (next) {
    evidenceFor(next, { ahead: true }).then(({ prepared }) => {
      // A hidden element demuxes the next clip, so it starts at once.
      if (state.queue[state.index + 1]?.id === next.id && prepared.clipUrl) {
        hiddenPreload.src = prepared.clipUrl;
      }
    }, () => {});
  }
  for (const [id, entry] of state.cache) {
    if (!keep.has(id)) {
      state.cache.delete(id);
      entry.controller.abort(); // moved past it: stop its downloads
      entry.then(({ prepared }) => releaseEvidence(prepared)).catch(() => {});
    }
  }
}

// --- rendering ---------------------------------------------------------------

function show() {
  const ticket = current();
  document.body.classList.toggle("queue-empty", !ticket);
  $("all-clear").hidden = Boolean(ticket);
  $("review-body").hidden = !ticket;
  $("ticket-link").hidden = !ticket;
  closeReasons();
  renderList();
  if (!ticket) {
    $("ticket-title").textContent = "Review queue";
    $("ticket-subtitle").textContent = state.cleared ? `${state.cleared} reviewed in this session.` : "";
    player.show({ problems: { clip: "" }, urls: [] });
    document.body.dataset.current = "";
    return;
  }
  document.body.dataset.current = String(ticket.id);
  $("ticket-title").textContent = `${label(ticket.category)} · ${ticket.camera_id}`;
  $("ticket-subtitle").textContent = `Ticket ${ticket.id} · rule ${ticket.rule}${ticket.zone ? `, zone ${ticket.zone}` : ""} · detected ${ago(ticket.detected_at)}`;
  $("ticket-link").href = `/ui/tickets/${ticket.id}`;
  renderFacts(ticket);
  player.root.dataset.playback = "loading";
  evidenceFor(ticket)
    .then(({ detail, prepared }) => {
      if (current()?.id !== ticket.id) return; // moved on meanwhile
      renderFacts(detail);
      player.show(prepared);
    })
    .catch((error) => {
      if (current()?.id !== ticket.id || error.name === "AbortError") return;
      showStatus(`Ticket ${ticket.id} could not be read: ${error.message}`, true);
    });
  preloadAround();
  readOnIfNearTheEnd();
}

function renderFacts(ticket) {
  const facts = [
    ["Camera", ticket.camera_id],
    ["Area", areaText(ticket.area_path)],
    ["What", [label(ticket.class_name || "—"), ticket.score ? `${Math.round(ticket.score * 100)}%` : ""].join(" ")],
    ["Detected", when(ticket.detected_at)],
    ["Duration", `${(ticket.ended_ts_s - ticket.started_ts_s).toFixed(1)} s`],
    ["Evidence", label(ticket.evidence_state)],
  ];
  if (ticket.duplicate_count) facts.push(["Repeats", `${ticket.duplicate_count} later event(s)`]);
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function renderList() {
  const list = $("queue");
  $("queue-count").textContent = String(Math.max(state.total, state.queue.length));
  list.replaceChildren(
    ...state.queue.map((ticket, i) =>
      el(
        "li",
        {
          class: [i === state.index ? "current" : "", state.selected.has(ticket.id) ? "selected" : ""].join(" ").trim() || null,
          "data-id": ticket.id,
          "aria-current": i === state.index ? "true" : null,
          onclick: () => go(i),
        },
        el("span", { class: `dot cat-${ticket.category}`, "aria-hidden": "true" }),
        el(
          "span",
          { class: "item-main" },
          el("strong", { text: label(ticket.category) }),
          el("span", { class: "muted small", text: `#${ticket.id} · ${ticket.camera_id}` }),
        ),
        el("span", { class: "muted small age", text: ago(ticket.created_at) }),
        ticket.evidence_state !== "stored" ? el("span", { class: `badge ev-${ticket.evidence_state}`, text: ticket.evidence_state }) : null,
      ),
    ),
  );
  list.querySelector("li.current")?.scrollIntoView({ block: "nearest" });
  const count = state.selected.size;
  $("reject").firstChild.textContent = count ? `Reject ${count} selected ` : "Reject ";
}

function showStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function showTiming() {
  if (!roundTrips.length) return;
  const sorted = [...roundTrips].sort((a, b) => a - b);
  const p50 = sorted[Math.floor((sorted.length - 1) * 0.5)];
  $("timing").textContent = `${state.cleared} reviewed · round trip ${roundTrips.at(-1).toFixed(0)} ms (median ${p50.toFixed(0)} ms)`;
}

// --- navigation and selection ----------------------------------------------------

function go(index) {
  if (state.queue.length === 0) return;
  state.index = Math.max(0, Math.min(index, state.queue.length - 1));
  show();
}

function toggleSelected(ticket = current()) {
  if (!ticket) return;
  if (state.selected.has(ticket.id)) state.selected.delete(ticket.id);
  else state.selected.add(ticket.id);
  renderList();
}

function extendSelection(step) {
  const ticket = current();
  if (!ticket) return;
  state.selected.add(ticket.id);
  const target = state.queue[state.index + step];
  if (target) {
    state.selected.add(target.id);
    go(state.index + step);
  } else {
    renderList();
  }
}

// --- decisions -----------------------------------------------------------------

function decide(tickets, body, verb) {
  if (!tickets.length) return;
  const ids = new Set(tickets.map((t) => t.id));
  const position = state.index;
  const at = new Map(tickets.map((t) => [t.id, state.queue.indexOf(t)]));
  state.queue = state.queue.filter((t) => !ids.has(t.id));
  for (const id of ids) {
    state.selected.delete(id);
    state.decided.add(id);
  }
  state.total = Math.max(0, state.total - tickets.length);
  const before = [...at.values()].filter((i) => i < position).length;
  state.index = Math.min(position - before, Math.max(0, state.queue.length - 1));
  const sent = tickets.map((ticket) => send(ticket, body, verb, at.get(ticket.id)));
  show();
  return sent;
}

async function send(ticket, body, verb, position) {
  state.inFlight += 1;
  document.body.dataset.inflight = String(state.inFlight);
  try {
    await null; // let the page show the next ticket first
    const { elapsedMs } = await act(ticket.id, "review", body);
    state.cleared += 1;
    showStatus(`${verb} ticket ${ticket.id} (${elapsedMs.toFixed(0)} ms).`);
    showTiming();
  } catch (error) {
    state.failures += 1;
    if (error.status === 409 || error.status === 404) {
      showStatus(`Ticket ${ticket.id}: ${error.message}`, true);
    } else {
      // Not decided after all: put it back where it was, to try again.
      state.decided.delete(ticket.id);
      state.total += 1;
      state.queue.splice(Math.min(position, state.queue.length), 0, ticket);
      if (state.queue.length === 1) state.index = 0;
      else if (position <= state.index) state.index += 1;
      showStatus(`Ticket ${ticket.id} was not ${verb.toLowerCase()}: ${error.message}. It is back in the queue.`, true);
      if (state.queue.length === 1) show();
      else renderList();
    }
  } finally {
    state.inFlight -= 1;
    document.body.dataset.inflight = String(state.inFlight);
    if (state.inFlight === 0 && state.preloadWaiting) preloadAround();
    document.body.dataset.cleared = String(state.cleared);
  }
}

function confirmCurrent() {
  const ticket = current();
  if (ticket) decide([ticket], { decision: "confirm" }, "Confirmed");
}

function rejectionTargets() {
  const chosen = state.queue.filter((t) => state.selected.has(t.id));
  return chosen.length ? chosen : [current()].filter(Boolean);
}

function openReasons() {
  const targets = rejectionTargets();
  if (!targets.length) return;
  state.rejecting = true;
  $("reject-what").textContent = targets.length > 1 ? `Reject ${targets.length} tickets` : `Reject ticket ${targets[0].id}`;
  $("reason-picker").hidden = false;
}

function closeReasons() {
  state.rejecting = false;
  $("reason-picker").hidden = true;
}

function reject(reason) {
  const targets = rejectionTargets();
  closeReasons();
  decide(targets, { decision: "reject", reason }, "Rejected");
}

// --- keyboard --------------------------------------------------------------------

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest?.("input, textarea, select")) return;
  const key = event.key;
  if (state.rejecting) {
    const digit = Number(key);
    if (Number.isInteger(digit) && digit >= 1 && digit <= REJECTION_REASONS.length) {
      reject(REJECTION_REASONS[digit - 1][0]);
    } else if (key === "Escape" || key === "r" || key === "R") {
      closeReasons();
    }
    event.preventDefault();
    return;
  }
  const handlers = {
    c: confirmCurrent,
    Enter: confirmCurrent,
    r: openReasons,
    s: () => go(state.index + 1),
    ArrowRight: () => (event.shiftKey ? extendSelection(1) : go(state.index + 1)),
    ArrowDown: () => (event.shiftKey ? extendSelection(1) : go(state.index + 1)),
    b: () => go(state.index - 1),
    ArrowLeft: () => (event.shiftKey ? extendSelection(-1) : go(state.index - 1)),
    ArrowUp: () => (event.shiftKey ? extendSelection(-1) : go(state.index - 1)),
    x: () => toggleSelected(),
    Escape: () => {
      state.selected.clear();
      renderList();
    },
    " ": () => player.togglePlay(),
    e: () => player.replayEvent(),
    o: () => current() && location.assign(`/ui/tickets/${current().id}`),
  };
  const handler = handlers[key.length === 1 ? key.toLowerCase() : key];
  if (!handler) return;
  if (event.target.closest?.("button, a") && (key === "Enter" || key === " ")) return;
  event.preventDefault();
  handler();
}

function wireButtons() {
  $("confirm").addEventListener("click", confirmCurrent);
  $("reject").addEventListener("click", openReasons);
  $("skip").addEventListener("click", () => go(state.index + 1));
  $("back").addEventListener("click", () => go(state.index - 1));
  $("select").addEventListener("click", () => toggleSelected());
  $("play").addEventListener("click", () => player.togglePlay());
  $("replay").addEventListener("click", () => player.replayEvent());
  $("refresh").addEventListener("click", () => refresh().catch((e) => showStatus(e.message, true)));
  $("reasons").replaceChildren(
    ...REJECTION_REASONS.map(([value, text], i) =>
      el("li", {}, el("button", { type: "button", class: "ghost", onclick: () => reject(value) }, el("kbd", { text: String(i + 1) }), ` ${text}`)),
    ),
  );
  player.video.addEventListener("timeupdate", () => {
    const v = player.video;
    $("clip-time").textContent = Number.isFinite(v.duration) ? `${v.currentTime.toFixed(1)} / ${v.duration.toFixed(1)} s` : "";
  });
  document.addEventListener("keydown", onKey);
}

async function main() {
  if (!requireSignIn()) return;
  try {
    state.user = await header("queue");
  } catch (error) {
    showError(document.querySelector(".review"), error);
    return;
  }
  wireButtons();
  if (!state.user.grants.some((g) => g.role === "reviewer")) {
    showStatus("You can look at tickets, but reviewing needs the reviewer role.", true);
  }
  try {
    const page = await readPage();
    state.queue = page.items;
    state.after = page.items.at(-1)?.cursor ?? null;
    state.atEnd = page.next === null;
    state.total = page.total;
  } catch (error) {
    showError(document.querySelector(".review"), error);
    return;
  }
  show();
  document.body.dataset.ready = "true";
  setInterval(() => {
    if (state.inFlight === 0) refresh().catch(() => {});
  }, POLL_S * 1000);
}

main();
