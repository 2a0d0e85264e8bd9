// Open tickets of the user's areas: how many in each category and state,
// the overdue ones first, and each camera's counts. Computed here from the
// paginated ticket list, so it shows exactly what the user may see.

import { listAll, requireSignIn } from "./api.js";
import { OPEN_STATES, STATE_LABELS, ago, el, header, label, showError, stateBadge, when } from "./ui.js";

const root = document.getElementById("overview");
const areaSelect = document.getElementById("area");
let all = [];

function covers(granted, areaPath) {
  return granted === "" || areaPath === granted || areaPath.startsWith(`${granted}/`);
}

function areasOf(user, tickets) {
  const areas = new Set(user.grants.map((g) => g.area_path));
  for (const t of tickets) {
    const parts = t.area_path.split("/");
    for (let i = 1; i <= parts.length; i++) areas.add(parts.slice(0, i).join("/"));
  }
  return [...areas].sort();
}

function openFirst(a, b) {
  return Number(b.overdue) - Number(a.overdue) || (a.due_at || a.created_at).localeCompare(b.due_at || b.created_at);
}

function tile(value, text, tone = "") {
  return el("div", { class: `tile ${tone}` }, el("strong", { text: String(value) }), el("span", { text }));
}

function byCategory(open) {
  const categories = [...new Set(open.map((t) => t.category))].sort();
  // A state no open ticket is in gets a column on wide screens only.
  const column = (s) => (open.some((t) => t.state === s) ? "num" : "num empty-col");
  const head = el("tr", {}, el("th", { text: "Category" }), OPEN_STATES.map((s) => el("th", { class: column(s), text: STATE_LABELS[s] })), el("th", { class: "num", text: "Overdue" }), el("th", { class: "num", text: "Open" }));
  const rows = categories.map((category) => {
    const mine = open.filter((t) => t.category === category);
    const count = (s) => mine.filter((t) => t.state === s).length;
    const overdue = mine.filter((t) => t.overdue).length;
    return el(
      "tr",
      { "data-category": category },
      el("th", { scope: "row" }, el("span", { class: `dot cat-${category}`, "aria-hidden": "true" }), label(category)),
      OPEN_STATES.map((s) => el("td", { class: `${column(s)}${count(s) ? "" : " zero"}`, text: String(count(s)) })),
      el("td", { class: overdue ? "num overdue" : "num zero", text: String(overdue) }),
      el("td", { class: "num total", text: String(mine.length) }),
    );
  });
  return el(
    "section",
    { class: "card" },
    el("h2", { text: "Open tickets by category and state" }),
    rows.length ? el("div", { class: "table-wrap" }, el("table", { id: "by-category" }, el("thead", {}, head), el("tbody", {}, rows))) : el("p", { class: "muted", text: "No open tickets." }),
  );
}

function openList(open) {
  const shown = 20;
  const sorted = [...open].sort(openFirst).slice(0, shown);
  const rows = sorted.map((t) =>
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
    open.length > shown ? el("p", { class: "muted small", text: `and ${open.length - shown} more` }) : null,
  );
}

function cameras(tickets) {
  const byCamera = new Map();
  for (const t of tickets) {
    const row = byCamera.get(t.camera_id) || { camera: t.camera_id, area: t.area_path, open: 0, review: 0, overdue: 0, total: 0, last: t.detected_at };
    row.total += 1;
    if (OPEN_STATES.includes(t.state)) row.open += 1;
    if (t.state === "pending_review") row.review += 1;
    if (t.overdue) row.overdue += 1;
    if (t.detected_at > row.last) row.last = t.detected_at;
    byCamera.set(t.camera_id, row);
  }
  const rows = [...byCamera.values()]
    .sort((a, b) => b.overdue - a.overdue || b.open - a.open || a.camera.localeCompare(b.camera))
    .map((r) =>
      el(
        "tr",
        { "data-camera": r.camera },
        el("th", { scope: "row", text: r.camera }),
        el("td", { class: "muted wide-only", text: r.area || "whole city" }),
        el("td", { class: "num", text: String(r.review) }),
        el("td", { class: "num", text: String(r.open) }),
        el("td", { class: r.overdue ? "num overdue" : "num zero", text: String(r.overdue) }),
        el("td", { class: "num", text: String(r.total) }),
        el("td", { class: "muted wide-only", text: ago(r.last) }),
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

function render() {
  const area = areaSelect.value;
  const tickets = all.filter((t) => area === "*" || covers(area, t.area_path));
  const open = tickets.filter((t) => OPEN_STATES.includes(t.state));
  const overdue = open.filter((t) => t.overdue).length;
  const review = open.filter((t) => t.state === "pending_review").length;
  document.getElementById("overview-subtitle").textContent =
    `${open.length} open of ${tickets.length} tickets · updated ${new Date().toLocaleTimeString()}`;
  root.replaceChildren(
    el(
      "div",
      { class: "tiles" },
      tile(review, "waiting for review", review ? "attention" : ""),
      tile(overdue, "overdue", overdue ? "alarm" : ""),
      tile(open.length, "open"),
      tile(new Set(tickets.map((t) => t.camera_id)).size, "cameras"),
    ),
    openList(open),
    byCategory(open),
    cameras(tickets),
  );
  document.body.dataset.ready = "true";
}

async function main() {
  if (!requireSignIn()) return;
  try {
    const user = await header("overview");
    all = await listAll({});
    const areas = areasOf(user, all);
    areaSelect.replaceChildren(el("option", { value: "*", text: "All my areas" }), areas.filter(Boolean).map((a) => el("option", { value: a, text: a })));
    areaSelect.addEventListener("change", render);
    render();
  } catch (error) {
    showError(root, error);
  }
}

main();
