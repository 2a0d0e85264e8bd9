// Open tickets of the user's areas: how many in each category and state,
// the overdue ones first, and each camera's counts. The server counts them
// (GET /api/overview) within the user's areas, so the page shows exactly
// what the user may see without reading every ticket.

import { getJson, requireSignIn } from "./api.js";
import { OPEN_STATES, STATE_LABELS, ago, el, header, label, showError, stateBadge, when } from "./ui.js";

const root = document.getElementById("overview");
const areaSelect = document.getElementById("area");

// The user's grants and every area above a camera's, for the area picker.
function areasOf(user, overview) {
  const areas = new Set(user.grants.map((g) => g.area_path));
  for (const camera of overview.cameras) {
    const parts = camera.area_path.split("/");
    for (let i = 1; i <= parts.length; i++) areas.add(parts.slice(0, i).join("/"));
  }
  return [...areas].sort();
}

function readOverview(area) {
  const query = area === "*" ? "" : `?${new URLSearchParams({ area })}`;
  return getJson(`/api/overview${query}`);
}

function tile(value, text, tone = "") {
  return el("div", { class: `tile ${tone}` }, el("strong", { text: String(value) }), el("span", { text }));
}

function byCategory(categories) {
  // A state no open ticket is in gets a column on wide screens only.
  const column = (s) => (categories.some((c) => c.by_state[s]) ? "num" : "num empty-col");
  const head = el("tr", {}, el("th", { text: "Category" }), OPEN_STATES.map((s) => el("th", { class: column(s), text: STATE_LABELS[s] })), el("th", { class: "num", text: "Overdue" }), el("th", { class: "num", text: "Open" }));
  const rows = categories.map(({ category, by_state: byState, overdue, open }) => {
    const count = (s) => byState[s] || 0;
    return el(
      "tr",
      { "data-category": category },
      el("th", { scope: "row" }, el("span", { class: `dot cat-${category}`, "aria-hidden": "true" }), label(category)),
      OPEN_STATES.map((s) => el("td", { class: `${column(s)}${count(s) ? "" : " zero"}`, text: String(count(s)) })),
      el("td", { class: overdue ? "num overdue" : "num zero", text: String(overdue) }),
      el("td", { class: "num total", text: String(open) }),
    );
  });
  return el(
    "section",
    { class: "card" },
    el("h2", { text: "Open tickets by category and state" }),
    rows.length ? el("div", { class: "table-wrap" }, el("table", { id: "by-category" }, el("thead", {}, head), el("tbody", {}, rows))) : el("p", { class: "muted", text: "No open tickets." }),
  );
}

function openList(attention, open) {
  const rows = attention.map((t) =>
    el(
      "li",
      { class: t.overdue ? "overdue" : null },
      el("a", { href: `/ui/tickets/${t.id}` }, el("strong", { text: `${label(t.category)} #${t.id}` }), el("span", { class: "muted small", text: ` · ${t.camera_id} · ${t.area_path || "whole city"}` })),
      el("span", { class: "row-end" }, t.overdue ? el("span", { class: "badge overdue", title: `due ${when(t.due_at)}`, text: `overdue, due ${ago(t.due_at)}` }) : el("span", { class: "muted small", text: ago(t.created_at) }), stateBadge(t.state)),
    ),
  );
  return el(
    "section",
    { class: "card" },
    el("h2", { text: "Open tickets, overdue first" }),
    rows.length ? el("ol", { class: "ticket-list", id: "open-list" }, rows) : el("p", { class: "muted", text: "Nothing open." }),
    open > attention.length ? el("p", { class: "muted small", text: `and ${open - attention.length} more` }) : null,
  );
}

// Most overdue first, as the server sends them.
function cameras(counts) {
  const rows = counts.map((r) =>
    el(
      "tr",
      { "data-camera": r.camera_id },
      el("th", { scope: "row", text: r.camera_id }),
      el("td", { class: "muted wide-only", text: r.area_path || "whole city" }),
      el("td", { class: "num", text: String(r.waiting_for_review) }),
      el("td", { class: "num", text: String(r.open) }),
      el("td", { class: r.overdue ? "num overdue" : "num zero", text: String(r.overdue) }),
      el("td", { class: "num", text: String(r.tickets) }),
      el("td", { class: "muted wide-only", text: ago(r.last_detected_at) }),
    ),
  );
  const head = el("tr", {}, ["Camera", "Area", "To review", "Open", "Overdue", "All", "Last event"].map((h, i) =>
      el("th", { class: i >= 2 && i <= 5 ? "num" : i ? "wide-only" : null, text: h }),
    ));
  return el(
    "section",
    { class: "card" },
    el("h2", { text: "Cameras" }),
    rows.length ? el("div", { class: "table-wrap" }, el("table", { id: "cameras" }, el("thead", {}, head), el("tbody", {}, rows))) : el("p", { class: "muted", text: "No camera has filed a ticket here." }),
  );
}

function render(overview) {
  const { waiting_for_review: review, overdue, open } = overview;
  document.getElementById("overview-subtitle").textContent =
    `${open} open of ${overview.tickets} tickets · updated ${new Date().toLocaleTimeString()}`;
  root.replaceChildren(
    el(
      "div",
      { class: "tiles" },
      tile(review, "waiting for review", review ? "attention" : ""),
      tile(overdue, "overdue", overdue ? "alarm" : ""),
      tile(open, "open"),
      tile(overview.cameras.length, "cameras"),
    ),
    openList(overview.attention, open),
    byCategory(overview.categories),
    cameras(overview.cameras),
  );
  document.body.dataset.ready = "true";
}

// The area picked last wins, however the answers arrive.
let asked = 0;
async function showArea() {
  const mine = ++asked;
  const overview = await readOverview(areaSelect.value);
  if (mine === asked) render(overview);
}

async function main() {
  if (!requireSignIn()) return;
  try {
    const user = await header("overview");
    const overview = await readOverview("*");
    const areas = areasOf(user, overview);
    areaSelect.replaceChildren(el("option", { value: "*", text: "All my areas" }), ...areas.filter(Boolean).map((a) => el("option", { value: a, text: a })));
    areaSelect.addEventListener("change", () => showArea().catch((error) => showError(root, error)));
    render(overview);
  } catch (error) {
    showError(root, error);
  }
}

main();
