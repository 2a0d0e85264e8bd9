// What every page shares: the header, words for states and categories, the
// fixed list of rejection reasons, and which actions a user's grants allow.

import { me, signOut } from "./api.js";

export const REJECTION_REASONS = [
  ["false_detection", "False detection"],
  ["duplicate", "Duplicate"],
  ["not_a_violation", "Not a violation"],
  ["out_of_scope", "Out of scope"],
  ["poor_evidence", "Poor evidence"],
  ["other", "Other"],
];

export const STATE_LABELS = {
  pending_review: "Pending review",
  confirmed: "Confirmed",
  rejected: "Rejected",
  dispatched: "Dispatched",
  resolved: "Resolved",
  verified: "Verified",
  closed: "Closed",
  reopened: "Reopened",
};

// Order of the overview's state columns: work still owed first.
export const OPEN_STATES = ["pending_review", "reopened", "confirmed", "dispatched", "resolved"];

export function label(word) {
  const text = String(word ?? "").replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// An area path that wraps at its slashes, never inside a name.
export function areaText(areaPath) {
  return areaPath ? areaPath.replaceAll("/", "/\u200b") : "whole city";
}

export function reasonLabel(reason) {
  const found = REJECTION_REASONS.find(([value]) => value === reason);
  return found ? found[1] : label(reason);
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function stateBadge(state) {
  return el("span", { class: `badge state-${state}`, text: STATE_LABELS[state] || label(state) });
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

export function ago(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

// --- grants -----------------------------------------------------------------

function covers(granted, areaPath) {
  return granted === "" || areaPath === granted || areaPath.startsWith(`${granted}/`);
}

export function hasRole(user, role, areaPath) {
  return user.grants.some((g) => g.role === role && covers(g.area_path, areaPath));
}

// Which roles each action needs, and in which states the workflow allows it;
// the API decides in the end, this only hides buttons that would be refused.
const ACTIONS = [
  { action: "review", decision: "confirm", text: "Confirm", role: "reviewer", states: ["pending_review", "reopened"] },
  { action: "review", decision: "reject", text: "Reject…", role: "reviewer", states: ["pending_review", "reopened"] },
  { action: "dispatch", text: "Dispatch", role: "dispatcher", states: ["confirmed", "reopened"] },
  { action: "assign", text: "Reassign…", role: "dispatcher", states: ["dispatched"] },
  { action: "resolve", text: "Mark resolved", role: "grid_worker", states: ["dispatched"] },
  { action: "close", text: "Close", role: "dispatcher", states: ["confirmed", "rejected", "verified"] },
  { action: "reopen", text: "Reopen", role: ["dispatcher", "reviewer"], states: ["rejected", "resolved", "closed"] },
];

export function allowedActions(user, ticket) {
  return ACTIONS.filter((a) => {
    const roles = Array.isArray(a.role) ? a.role : [a.role];
    return a.states.includes(ticket.state) && roles.some((r) => hasRole(user, r, ticket.area_path));
  });
}

// --- page frame --------------------------------------------------------------

export async function header(active) {
  const nav = document.querySelector("header.top");
  const links = [
    ["queue", "/ui/queue", "Review queue"],
    ["overview", "/ui/overview", "Area overview"],
  ];
  const user = await me();
  nav.replaceChildren(
    el("a", { class: "brand", href: "/ui/queue" }, el("span", { class: "logo", "aria-hidden": "true" }), "citywatch"),
    el(
      "nav",
      {},
      links.map(([key, href, text]) =>
        el("a", { href, class: key === active ? "active" : null, "aria-current": key === active ? "page" : null, text }),
      ),
    ),
    el(
      "div",
      { class: "who" },
      el("span", { class: "user", title: grantsText(user), text: user.username }),
      el("button", { type: "button", class: "link", onclick: signOut, text: "Sign out" }),
    ),
  );
  return user;
}

export function grantsText(user) {
  return user.grants.map((g) => `${label(g.role)} · ${g.area_path || "whole city"}`).join("\n");
}

export function showError(where, error) {
  where.replaceChildren(el("p", { class: "error", role: "alert", text: error.message || String(error) }));
}
