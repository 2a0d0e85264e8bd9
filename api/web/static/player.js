// Evidence in front of the reviewer: the clip plays from the moment of the
// finding, with the outline or trajectory drawn over it on a canvas from the
// evidence metadata (the clip itself stays exactly as recorded), and the
// snapshot and trajectory image beside it. When the clip cannot be played
// the player says why and offers the file for download.

import { evidenceBlobUrl, evidenceJson } from "./api.js";
import { el } from "./ui.js";

// Boxes are sampled a few times a second; between two samples further apart
// than this the object was not seen, and nothing is drawn.
const MAX_BOX_GAP_S = 1.0;

function evidenceOf(ticket, kind, round = 0) {
  return ticket.evidence.find((e) => e.kind === kind && e.round === round) || null;
}

function unavailable(kind, item) {
  if (!item) return `No ${kind} was filed with this ticket.`;
  if (item.state === "pending") {
    return `The ${kind} is pending: it is spooled on the camera's machine and its upload is being retried.`;
  }
  if (item.state === "missing") {
    return `The ${kind} is missing: it could not be kept${item.reason ? ` (${item.reason})` : ""}.`;
  }
  return null;
}

// Everything the player needs for one ticket and one round of evidence,
// fetched with the user's token. Never throws: problems are described.
export async function prepareEvidence(ticket, { round = 0, signal, priority = "auto" } = {}) {
  const prepared = { ticketId: ticket.id, round, urls: [], problems: {} };
  const load = async (kind, reader) => {
    const item = evidenceOf(ticket, kind, round);
    const why = unavailable(kind, item);
    if (why) {
      prepared.problems[kind] = why;
      return null;
    }
    try {
      return await reader(item.url, signal, priority);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      prepared.problems[kind] = `The ${kind} could not be downloaded: ${error.message}.`;
      return null;
    }
  };
  const [metadata, clipUrl, snapshotUrl, trajectoryUrl] = await Promise.all([
    load("metadata", evidenceJson),
    load("clip", evidenceBlobUrl),
    load("snapshot", evidenceBlobUrl),
    evidenceOf(ticket, "trajectory", round) ? load("trajectory", evidenceBlobUrl) : null,
  ]);
  Object.assign(prepared, { metadata, clipUrl, snapshotUrl, trajectoryUrl });
  prepared.urls = [clipUrl, snapshotUrl, trajectoryUrl].filter(Boolean);
  return prepared;
}

export function releaseEvidence(prepared) {
  for (const url of prepared?.urls || []) URL.revokeObjectURL(url);
}

const MEDIA_ERRORS = {
  1: "playback was aborted",
  2: "a network error interrupted the download",
  3: "the browser could not decode the clip",
  4: "the browser does not support the clip's format",
};

export class EvidencePlayer {
  // `root` holds .stage (video + canvas), .evidence-message, .stills.
  constructor(root, { filename = "clip.mp4" } = {}) {
    this.root = root;
    this.filename = filename;
    this.video = root.querySelector("video");
    this.canvas = root.querySelector("canvas");
    this.stage = root.querySelector(".stage");
    this.message = root.querySelector(".evidence-message");
    this.stills = root.querySelector(".stills");
    this.prepared = null;
    this.video.muted = true; // autoplay is allowed for muted video only
    this.video.addEventListener("loadedmetadata", () => this.#onMetadata());
    this.video.addEventListener("playing", () => {
      // A late event of the clip shown before is not this clip playing.
      if (this.prepared?.clipUrl && this.video.currentSrc === this.prepared.clipUrl) {
        this.#setState("playing");
      }
    });
    this.video.addEventListener("error", () => this.#onError());
    this.video.addEventListener("ended", () => this.#replay());
    for (const name of ["seeked", "timeupdate", "pause"]) {
      this.video.addEventListener(name, () => this.draw());
    }
    new ResizeObserver(() => this.draw()).observe(this.stage);
    this.#drawLoop();
  }

  show(prepared) {
    this.prepared = prepared;
    this.root.dataset.ticket = String(prepared.ticketId ?? "");
    this.message.replaceChildren();
    this.message.hidden = true;
    this.#clearCanvas();
    this.#showStills(prepared);
    const { clipUrl, problems } = prepared;
    if (!clipUrl) {
      this.video.removeAttribute("src");
      this.video.load();
      this.stage.classList.add("no-clip");
      this.#say(problems.clip || problems.metadata || "No clip.", null);
      this.#setState("unavailable");
      return;
    }
    this.stage.classList.remove("no-clip");
    this.#setState("loading");
    this.video.src = clipUrl;
    this.video.play().catch(() => {}); // autoplay; the error event explains failures
  }

  togglePlay() {
    if (!this.video.src) return;
    if (this.video.paused) this.video.play().catch(() => {});
    else this.video.pause();
  }

  replayEvent() {
    if (!this.video.src) return;
    this.video.currentTime = this.#eventOffset();
    this.video.play().catch(() => {});
  }

  #eventOffset() {
    return this.prepared?.metadata?.clip?.event_offset_s || 0;
  }

  #setState(state) {
    this.root.dataset.playback = state;
  }

  #onMetadata() {
    const { videoWidth, videoHeight } = this.video;
    if (videoWidth && videoHeight) {
      this.stage.style.aspectRatio = `${videoWidth} / ${videoHeight}`;
      this.root.style.setProperty("--aspect", String(videoWidth / videoHeight));
    }
    this.video.currentTime = Math.min(this.#eventOffset(), this.video.duration || 0);
    this.draw();
  }

  #replay() {
    this.video.currentTime = this.#eventOffset();
    this.video.play().catch(() => {});
  }

  #onError() {
    if (!this.video.getAttribute("src")) return;
    const code = this.video.error?.code;
    const why = MEDIA_ERRORS[code] || "the clip could not be played";
    this.#setState("error");
    this.stage.classList.add("no-clip");
    this.#say(`The clip cannot be played: ${why}.`, this.prepared?.clipUrl);
  }

  #say(text, downloadUrl) {
    const parts = [el("p", { text })];
    if (downloadUrl) {
      parts.push(el("a", { class: "button", href: downloadUrl, download: this.filename, text: "Download the clip" }));
    }
    this.message.replaceChildren(...parts);
    this.message.hidden = false;
  }

  #showStills(prepared) {
    const { snapshotUrl, trajectoryUrl, problems } = prepared;
    const figure = (url, caption, problem) =>
      el(
        "figure",
        { class: url ? "still" : "still unavailable" },
        url ? el("img", { src: url, alt: caption }) : el("div", { class: "still-missing", text: problem }),
        el("figcaption", { text: caption }),
      );
    const figures = [figure(snapshotUrl, "Snapshot", problems.snapshot)];
    if (trajectoryUrl || problems.trajectory) {
      figures.push(figure(trajectoryUrl, "Trajectory", problems.trajectory));
    }
    this.stills.replaceChildren(...figures);
  }

  // --- the overlay ---------------------------------------------------------

  #drawLoop() {
    const step = () => {
      if (!this.video.paused) this.draw();
      if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(step);
      else requestAnimationFrame(step);
    };
    if (this.video.requestVideoFrameCallback) {
      // A callback registered before a source exists still fires per frame.
      this.video.requestVideoFrameCallback(step);
      this.video.addEventListener("play", () => this.draw());
    } else {
      requestAnimationFrame(step);
    }
  }

  #clearCanvas() {
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  draw() {
    const metadata = this.prepared?.metadata;
    const { videoWidth, videoHeight } = this.video;
    const rect = this.stage.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(rect.width * ratio);
    const height = Math.round(rect.height * ratio);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.#clearCanvas();
    if (!metadata || !videoWidth || this.stage.classList.contains("no-clip")) return;
    const ctx = this.canvas.getContext("2d");
    // Clip pixels are the camera's pixels: one scale maps both to the screen.
    ctx.setTransform(width / videoWidth, 0, 0, height / videoHeight, 0, 0);
    const px = videoWidth / width; // one screen pixel in clip pixels
    const t = this.video.currentTime;
    drawZone(ctx, metadata.zone_polygon_xy, px);
    drawTrajectory(ctx, metadata.trajectory, t, px);
    drawBox(ctx, boxAt(metadata.boxes, t), metadata, px);
    drawOrigin(ctx, metadata.origin, px);
  }
}

// The outline at clip time ``t``: interpolated between two samples close in
// time; between samples far apart (the finding kept only a few), the last
// one is held and marked as held, since the object was not seen moving.
export function boxAt(boxes, t) {
  if (!boxes?.length) return null;
  let after = boxes.findIndex((b) => b.t_s > t);
  if (after === -1) after = boxes.length;
  const before = boxes[after - 1];
  const next = boxes[after];
  if (!before) return next.t_s - t <= MAX_BOX_GAP_S / 2 ? { bbox: next.bbox_xyxy, held: false } : null;
  if (!next) return t - before.t_s <= MAX_BOX_GAP_S ? { bbox: before.bbox_xyxy, held: t - before.t_s > 0.25 } : null;
  const gap = next.t_s - before.t_s;
  if (gap > MAX_BOX_GAP_S) return { bbox: before.bbox_xyxy, held: t - before.t_s > 0.25 };
  const k = gap > 0 ? (t - before.t_s) / gap : 0;
  return { bbox: before.bbox_xyxy.map((v, i) => v + (next.bbox_xyxy[i] - v) * k), held: false };
}

function drawZone(ctx, polygon, px) {
  if (!polygon?.length) return;
  ctx.beginPath();
  polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
  ctx.fillStyle = "rgba(255, 196, 0, 0.12)";
  ctx.fill();
  ctx.setLineDash([6 * px, 4 * px]);
  ctx.lineWidth = 1.5 * px;
  ctx.strokeStyle = "rgba(255, 196, 0, 0.9)";
  ctx.stroke();
  ctx.setLineDash([]);
}

function drawBox(ctx, found, metadata, px) {
  if (!found) return;
  const [x1, y1, x2, y2] = found.bbox;
  ctx.lineWidth = 2.5 * px;
  ctx.strokeStyle = "#ff3b5c";
  if (found.held) ctx.setLineDash([5 * px, 4 * px]);
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  ctx.setLineDash([]);
  const text = [metadata.class_name, metadata.score ? `${Math.round(metadata.score * 100)}%` : ""]
    .filter(Boolean)
    .join(" ");
  if (!text) return;
  ctx.font = `${600} ${12 * px}px system-ui, sans-serif`;
  const padding = 3 * px;
  const textWidth = ctx.measureText(text).width + 2 * padding;
  const textHeight = 16 * px;
  const top = y1 - textHeight >= 0 ? y1 - textHeight : y2;
  ctx.fillStyle = "#ff3b5c";
  ctx.fillRect(x1, top, textWidth, textHeight);
  ctx.fillStyle = "#fff";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x1 + padding, top + textHeight / 2);
}

function drawTrajectory(ctx, points, t, px) {
  const seen = (points || []).filter((p) => p.t_s <= t + 1e-3);
  if (seen.length === 0) return;
  ctx.lineWidth = 2.5 * px;
  ctx.strokeStyle = "#00d1ff";
  ctx.beginPath();
  seen.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
  ctx.stroke();
  const head = seen[seen.length - 1];
  ctx.fillStyle = "#00d1ff";
  ctx.beginPath();
  ctx.arc(head.x, head.y, 4 * px, 0, 2 * Math.PI);
  ctx.fill();
}

function drawOrigin(ctx, origin, px) {
  if (!origin) return;
  ctx.lineWidth = 2 * px;
  ctx.strokeStyle = "#ffffff";
  ctx.beginPath();
  ctx.arc(origin.x, origin.y, 9 * px, 0, 2 * Math.PI);
  ctx.stroke();
  const where = [origin.floor != null ? `floor ${origin.floor}` : "", origin.window != null ? `window ${origin.window}` : ""]
    .filter(Boolean)
    .join(", ");
  if (!where) return;
  ctx.font = `600 ${12 * px}px system-ui, sans-serif`;
  ctx.fillStyle = "#ffffff";
  ctx.textBaseline = "bottom";
  ctx.fillText(where, origin.x + 12 * px, origin.y - 4 * px);
}

// The player's markup, for pages that build it in script.
export function playerMarkup() {
  return el(
    "section",
    { class: "evidence", "aria-label": "Evidence" },
    el(
      "div",
      { class: "clip" },
      el(
        "div",
        { class: "stage" },
        el("video", { muted: true, autoplay: true, playsinline: true, preload: "auto" }),
        el("canvas", { class: "overlay", "aria-hidden": "true" }),
        el("div", { class: "evidence-message", role: "status", hidden: true }),
      ),
    ),
    el("div", { class: "stills" }),
  );
}
