// One ticket: its evidence (and the evidence of each verification after a
// fix), its whole history, and the actions the user's roles allow here.

import { act, getJson, requireSignIn } from "./api.js";
import { EvidencePlayer, playerMarkup, prepareEvidence, releaseEvidence } from "./player.js";
import { REJECTION_REASONS, areaText, allowedActions, el, header, label, reasonLabel, showError, stateBadge, when } from "./ui.js";

const root = document.getElementById("ticket");
const ticketId = Number(location.pathname.split("/").filter(Boolean).at(-1));
let user = null;
let shown = []; // prepared evidence of the rounds on screen

function status(text, isError = false) {
  const line = document.getElementById("status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function facts(ticket) {
  const rows = [
    ["State", stateBadge(ticket.state)],
    ["Camera", ticket.camera_id],
    ["Area", areaText(ticket.area_path)],
    ["Rule", `${ticket.rule}${ticket.zone ? ` · zone ${ticket.zone}` : ""}`],
    ["Object", `${label(ticket.class_name || "—")}${ticket.score ? ` · ${Math.round(ticket.score * 100)}%` : ""}`],
    ["Started", when(ticket.started_at)],
    ["Detected", when(ticket.detected_at)],
    ["Last seen", when(ticket.last_seen_at)],
    ["Evidence", label(ticket.evidence_state)],
    ["Assignee", ticket.assignee || "—"],
    ["Due", ticket.due_at ? when(ticket.due_at) : "—"],
  ];
  if (ticket.overdue) rows.push(["Deadline", el("span", { class: "badge overdue", text: "Overdue" })]);
  if (ticket.duplicate_count) rows.push(["Repeats", `${ticket.duplicate_count} later event(s) of this place`]);
  return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function history(ticket) {
  const rows = ticket.transitions.map((t) =>
    el(
      "li",
      {},
      el("time", { datetime: t.at, text: when(t.at) }),
      el(
        "div",
        {},
        el("span", { class: "transition" }, t.from_state ? stateBadge(t.from_state) : el("span", { class: "muted", text: "filed" }), " → ", stateBadge(t.to_state)),
        el("span", { class: "actor", text: ` by ${t.actor}` }),
        t.reason ? el("div", { class: "reason", text: `Reason: ${reasonLabel(t.reason)}` }) : null,
        t.note ? el("div", { class: "note", text: t.note }) : null,
      ),
    ),
  );
  return el("section", { class: "card history" }, el("h2", { text: "History" }), el("ol", { class: "timeline", id: "audit-trail" }, rows));
}

function attachments(ticket) {
  if (!ticket.attachments.length) return null;
  return el(
    "section",
    { class: "card" },
    el("h2", { text: `Later events of this place (${ticket.attachments.length})` }),
    el("ul", { class: "plain" }, ticket.attachments.map((a) => el("li", { text: `${when(a.detected_at)} · event ${a.event_id.slice(0, 12)}…` }))),
  );
}

function actionForm(ticket) {
  const actions = allowedActions(user, ticket);
  if (!actions.length) {
    return el("section", { class: "card actions-card" }, el("h2", { text: "Actions" }), el("p", { class: "muted", text: "Your roles allow no action on this ticket in its present state." }));
  }
  const note = el("textarea", { id: "note", rows: 2, placeholder: "Note (optional)", maxlength: 4000 });
  const reason = el(
    "select",
    { id: "reason", "aria-label": "Rejection reason" },
    REJECTION_REASONS.map(([value, text]) => el("option", { value, text })),
  );
  const reassigns = actions.some((a) => a.action === "assign");
  const assignee = el("input", {
    id: "assignee",
    placeholder: reassigns ? "The team to give it to" : "Default: the dispatch rules' team",
    maxlength: 255,
  });
  const needsReason = actions.some((a) => a.decision === "reject");
  const needsAssignee = actions.some((a) => a.action === "dispatch" || a.action === "assign");
  const buttons = actions.map((a) =>
    el("button", {
      type: "button",
      class: a.decision === "reject" ? "danger" : a === actions[0] ? "primary" : "ghost",
      "data-action": a.decision || a.action,
      text: a.text.replace("…", ""),
      onclick: () => run(ticket, a, { note: note.value.trim() || null, reason: reason.value, assignee: assignee.value.trim() || null }),
    }),
  );
  return el(
    "section",
    { class: "card actions-card" },
    el("h2", { text: "Actions" }),
    needsReason ? el("label", {}, "Reason to reject", reason) : null,
    needsAssignee ? el("label", {}, "Team", assignee) : null,
    el("label", {}, "Note", note),
    el("div", { class: "actions" }, buttons),
  );
}

async function run(ticket, action, { note, reason, assignee }) {
  let body = { note };
  if (action.action === "review") {
    body = action.decision === "reject" ? { decision: "reject", reason, note } : { decision: "confirm", note };
  } else if (action.action === "dispatch") {
    body = assignee ? { assignee, note } : { note };
  } else if (action.action === "assign") {
    if (!assignee) {
      status("Name the team to give the ticket to.", true);
      return;
    }
    body = { assignee, note };
  }
  try {
    const { ticket: updated, elapsedMs } = await act(ticket.id, action.action, body);
    status(`${action.text.replace("…", "")}: the ticket is now ${label(updated.state).toLowerCase()}.`);
    document.getElementById("timing").textContent = `round trip ${elapsedMs.toFixed(0)} ms`;
    render(updated);
  } catch (error) {
    status(error.message, true);
  }
}

function evidenceSection(title, ticket, round, filename) {
  const markup = playerMarkup();
  const section = el("section", { class: "card evidence-card", "data-round": round }, el("h2", { text: title }), markup);
  const player = new EvidencePlayer(markup, { filename });
  prepareEvidence(ticket, { round }).then((prepared) => {
    shown.push(prepared);
    player.show(prepared);
  });
  return section;
}

function verificationSections(ticket) {
  return ticket.verifications.map((v) => {
    const outcome = v.outcome ? label(v.outcome) : v.state === "open" ? "waiting for the camera" : "—";
    const title = `Verification ${v.round}: ${outcome}${v.reported_at ? ` · ${when(v.reported_at)}` : ""}`;
    const hasEvidence = ticket.evidence.some((e) => e.round === v.round);
    if (!hasEvidence) {
      return el("section", { class: "card" }, el("h2", { text: title }), el("p", { class: "muted", text: "No evidence yet: the camera has not looked again." }));
    }
    return evidenceSection(title, ticket, v.round, `ticket-${ticket.id}-verification-${v.round}.mp4`);
  });
}

function render(ticket) {
  for (const prepared of shown) releaseEvidence(prepared);
  shown = [];
  document.title = `Ticket ${ticket.id} · ${label(ticket.category)} · citywatch`;
  root.replaceChildren(
    el(
      "div",
      { class: "ticket-head" },
      el("div", {}, el("h1", {}, `${label(ticket.category)} `, el("span", { class: "muted", text: `#${ticket.id}` })), el("p", { class: "muted", text: `${ticket.camera_id} · ${ticket.area_path || "whole city"}` })),
      stateBadge(ticket.state),
    ),
    el(
      "div",
      { class: "ticket-grid" },
      el(
        "div",
        { class: "ticket-main" },
        evidenceSection("Evidence", ticket, 0, `ticket-${ticket.id}-clip.mp4`),
        ...verificationSections(ticket),
        history(ticket),
        attachments(ticket),
      ),
      el("div", { class: "ticket-side" }, actionForm(ticket), el("section", { class: "card details-card" }, el("h2", { text: "Details" }), facts(ticket))),
    ),
  );
  document.body.dataset.state = ticket.state;
  document.body.dataset.ready = "true";
}

async function main() {
  if (!requireSignIn()) return;
  try {
    user = await header(null);
    render(await getJson(`/api/tickets/${ticketId}`));
  } catch (error) {
    if (error.status === 404) {
      root.replaceChildren(el("div", { class: "card" }, el("h1", { text: "No such ticket" }), el("p", { class: "muted", text: "It does not exist, or it lies outside your areas." }), el("a", { href: "/ui/queue", text: "Back to the queue" })));
      document.body.dataset.ready = "notfound";
    } else {
      showError(root, error);
    }
  }
}

main();
