// The annotation screen: /annotate/<task id>[?assignment=<id>][&review=1][&as=<name>].
//
// Image mode edits the boxes of one frame; video mode edits the action segments and tracks of a
// whole video on a frame timeline. The draft is saved with the revision it was made on: when
// someone else saved in between, the server answers 409 and this screen shows both versions side
// by side (theirs also drawn on the image) and lets the person choose; it never overwrites.
// With ?review=1 the draft is read-only and the reviewer accepts it or rejects it with a comment.

import { ApiError, api } from "./api.js";
import { BoxEditor, PALETTE } from "./box-editor.js";
import { annotatorName, rememberAnnotator, useStylesheet } from "./annotator.js";
import { h } from "./dom.js";
import { FrameSource } from "./frame-cache.js";
import { FrameTimeline } from "./frame-timeline.js";
import { interpolate, keyframeAt, removeKeyframe, setKeyframe } from "./track-interpolation.js";

const HELP_IMAGE = [
  ["N", "draw a box"], ["1–9", "class of the selected / next box"], ["Del", "delete box"],
  ["Tab", "next box"], ["← → ↑ ↓", "nudge (Shift: 10 px)"], ["wheel / drag", "zoom / pan"],
  ["F", "fit"], ["G", "grid"], ["Ctrl+Z / Ctrl+Y", "undo / redo"], ["Ctrl+S", "save"],
];
const HELP_VIDEO = [
  ["← →", "previous / next frame (Shift: 10)"], ["Space", "play / pause"], ["[ ]", "start / end an action here"],
  ["N", "draw a new track box"], ["K", "keyframe the selected track here"], ["Del", "delete segment / keyframe"],
  ["Shift+Del", "delete the whole track"], ["1–9", "class"], ["wheel on timeline", "zoom the timeline"],
  ["G", "grid"], ["Ctrl+Z / Ctrl+Y", "undo / redo"], ["Ctrl+S", "save"],
];

let counter = 0;
const newId = (prefix) => `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}`;
const clone = (value) => JSON.parse(JSON.stringify(value));
const rounded = (v) => Math.round(v * 10) / 10;

/** An API call that answers {ok, status, body} instead of throwing, so 409 and 422 can be handled. */
async function call(method, path, body) {
  try {
    return { ok: true, status: 200, body: await api[method](path, body) };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { ok: false, status: err.status, body: { error: err.message, hint: err.hint } };
  }
}

export async function mount(root, params = {}, query = new URLSearchParams(location.search)) {
  useStylesheet("/static/css/annotate.css");
  const taskId = Number(params.task);
  const screen = new AnnotateScreen(root, taskId, {
    assignmentId: query.get("assignment") ? Number(query.get("assignment")) : null,
    review: query.get("review") === "1",
    user: annotatorName(query),
  });
  window.cvcycleAnnotate = screen; // for the browser tests and bench/ui.py
  await screen.load();
  return () => screen.destroy();
}

class AnnotateScreen {
  constructor(root, taskId, { assignmentId, review, user }) {
    this.root = root;
    this.taskId = taskId;
    this.assignmentId = assignmentId;
    this.review = review;
    this.user = user;
    this.undoStack = [];
    this.redoStack = [];
    this.selectedBox = null;
    this.selectedSegment = null;
    this.selectedTrack = null;
    this.markStart = null;
    this.frame = 0;
    this.shownFrame = null;
    this.paints = []; // {frame, at}: when each frame reached the screen (bench/ui.py reads it)
    this.playing = false;
    this.keyHandler = (e) => this.onKey(e);
  }

  // -- loading ---------------------------------------------------------------------------------

  async load() {
    this.root.replaceChildren(h("p", { class: "ann-loading" }, `Loading task ${this.taskId}…`));
    const task = await call("get", `/api/tasks/${this.taskId}`);
    if (!task.ok) return this.fail(task.body);
    this.task = task.body;
    this.item = task.body.item;
    const assignment = this.assignmentId
      ? await call("get", `/api/assignments/${this.assignmentId}`)
      : await call("post", `/api/tasks/${this.taskId}/assignments`, { annotator: this.user });
    if (!assignment.ok) return this.fail(assignment.body);
    this.adopt(assignment.body);
    if (this.review && this.item.mode === "image") await this.loadOthers();
    if (this.review && this.task.overlap > 1) {
      const agreement = await call("get", `/api/tasks/${this.taskId}/agreement`);
      this.agreement = agreement.ok ? agreement.body : null;
    }
    this.boxClass = this.draft.boxes[0]?.cls ?? this.draft.tracks[0]?.cls ?? this.task.classes.boxes[0];
    this.actionClass = this.task.classes.actions[0];
    this.frame = this.item.mode === "image" ? this.item.frame_index : 0;
    this.build();
    document.addEventListener("keydown", this.keyHandler);
    this.showFrame(this.frame);
  }

  /** A reviewer of an overlap task sees the other annotators' boxes too (dashed orange, named). */
  async loadOthers() {
    const others = this.task.assignments.filter((a) => a.id !== this.assignment.id && ["submitted", "accepted"].includes(a.status));
    const drafts = await Promise.all(others.map((a) => call("get", `/api/assignments/${a.id}`)));
    this.theirsOverlay = drafts.filter((r) => r.ok).flatMap((r) =>
      r.body.draft.boxes.map((b) => ({ id: `other-${r.body.id}-${b.id}`, cls: b.cls, box: b.box, label: `${r.body.annotator}: ${b.cls}` })));
  }

  fail(body) {
    this.root.replaceChildren(
      h("section", { class: "ann-error" },
        h("h2", {}, "Cannot open this task"),
        h("p", { class: "error" }, body?.error || "the server did not answer"),
        body?.hint ? h("p", { class: "hint" }, body.hint) : null,
        h("a", { href: "/tasks" }, "← back to the tasks")),
    );
  }

  adopt(assignment) {
    this.assignment = assignment;
    this.draft = clone(assignment.draft);
    this.savedJson = JSON.stringify(this.draft);
  }

  get readOnly() {
    return this.review || ["submitted", "accepted"].includes(this.assignment.status);
  }

  get dirty() {
    return JSON.stringify(this.draft) !== this.savedJson;
  }

  destroy() {
    document.removeEventListener("keydown", this.keyHandler);
    this.playing = false;
    this.canvas?.destroy();
    this.timeline?.destroy();
    this.frames?.clear();
    if (window.cvcycleAnnotate === this) delete window.cvcycleAnnotate;
  }

  colorOf(cls) {
    const all = [...this.task.classes.boxes, ...this.task.classes.actions];
    let i = all.indexOf(cls);
    if (i < 0) i = [...cls].reduce((a, c) => a + c.charCodeAt(0), 0);
    return PALETTE[i % PALETTE.length];
  }

  // -- layout ----------------------------------------------------------------------------------

  build() {
    const item = this.item;
    const video = item.mode === "video";
    this.statusEl = h("span", { class: "ann-status", role: "status" });
    this.messageEl = h("div", { class: "ann-message", role: "alert", hidden: true });
    this.saveButton = h("button", { class: "primary", onclick: () => this.save(), title: "Ctrl+S" }, "Save");
    this.submitButton = h("button", { onclick: () => this.submit() }, "Submit");
    this.drawButton = h("button", { class: "tool", onclick: () => this.setTool(this.canvas.tool === "draw" ? "select" : "draw"), title: "N" }, "Draw box");
    this.gridButton = h("button", { class: "tool", onclick: () => this.toggleGrid(), title: "G" }, "Grid");
    const userInput = h("input", {
      class: "ann-user", value: this.user, "aria-label": "working as", size: 10,
      onchange: (e) => { this.user = e.target.value.trim() || this.user; rememberAnnotator(this.user); },
    });
    const header = h("header", { class: "ann-bar" },
      h("a", { href: "/tasks", class: "ann-back" }, "← Tasks"),
      h("strong", {}, `Task ${this.task.id}`),
      h("span", { class: "badge" }, video ? "video" : "image"),
      h("span", { class: "muted" }, `${this.task.dataset} · ${item.file_name}${video ? ` · ${item.frame_count} frames` : ` · frame ${item.frame_index}`}`),
      h("span", { class: "spacer" }),
      this.readOnly ? null : this.drawButton,
      this.gridButton,
      this.readOnly ? null : h("button", { class: "tool", onclick: () => this.undo(), title: "Ctrl+Z" }, "Undo"),
      this.readOnly ? null : h("button", { class: "tool", onclick: () => this.redo(), title: "Ctrl+Y" }, "Redo"),
      h("button", { class: "tool", onclick: () => this.canvas.fit(), title: "F" }, "Fit"),
      h("label", { class: "muted" }, "as ", userInput),
      this.statusEl,
      this.review ? null : this.saveButton,
      this.review ? null : this.submitButton,
    );
    const canvasEl = h("canvas", { class: "ann-canvas", tabindex: 0, "aria-label": "image with boxes" });
    const stage = h("div", { class: "ann-stage" }, canvasEl);
    this.side = h("aside", { class: "ann-side" });
    const main = h("div", { class: "ann-main" }, stage, this.side);
    this.dialog = h("div", { class: "ann-dialog", hidden: true });
    const parts = [header, this.messageEl, main];
    if (video) {
      this.frameLabel = h("span", { class: "ann-frame" });
      this.playButton = h("button", { onclick: () => this.togglePlay(), title: "Space" }, "Play");
      const timelineCanvas = h("canvas", { class: "ann-timeline-canvas", "aria-label": "timeline" });
      parts.push(h("section", { class: "ann-timeline" },
        h("div", { class: "ann-timeline-bar" },
          h("button", { onclick: () => this.step(-1), title: "←" }, "◀"),
          this.playButton,
          h("button", { onclick: () => this.step(1), title: "→" }, "▶"),
          this.frameLabel,
          h("span", { class: "muted" }, "[ start an action · ] end it · wheel zooms the timeline")),
        h("div", { class: "ann-timeline-wrap" }, timelineCanvas)));
      this.timelineCanvas = timelineCanvas;
    }
    parts.push(this.dialog);
    this.root.replaceChildren(h("section", { class: `annotate mode-${item.mode}` }, ...parts));

    this.canvas = new BoxEditor(canvasEl, {
      onChange: (change) => this.onCanvasChange(change),
      onSelect: (id) => this.onCanvasSelect(id),
      colorOf: (cls) => this.colorOf(cls.split(" ")[0]),
    });
    this.canvas.readOnly = this.readOnly;
    this.canvas.afterDraw = () => {
      if (this.canvas.image && this.pendingPaint !== undefined) {
        this.paints.push({ frame: this.pendingPaint, at: performance.now() });
        if (this.paints.length > 5000) this.paints.splice(0, 1000);
        this.pendingPaint = undefined;
      }
    };
    const url = (i) => item.frame_url.replace("{index}", String(i));
    // Decoded frames cost width x height x 4 bytes each: keep about 300 MB of them.
    const keep = Math.max(16, Math.min(512, Math.floor(300e6 / (item.width * item.height * 4))));
    this.frames = new FrameSource(url, { ahead: video ? 10 : 0, keep });
    if (video) {
      this.timeline = new FrameTimeline(this.timelineCanvas, {
        frameCount: item.frame_count,
        onSeek: (f) => this.seek(f),
        onScrubEnd: (f) => this.showFrame(f),
        onSelectSegment: (id) => { this.selectedSegment = id; this.refresh(); },
        onSelectTrack: (id) => { this.selectedTrack = id; this.refresh(); },
        colorOf: (cls) => this.colorOf(cls),
      });
    }
    this.refresh();
  }

  // -- frames ----------------------------------------------------------------------------------

  showFrame(frame) {
    this.frame = frame;
    // While the timeline is dragged a keyframe near the pointer will do: one decode, not a GOP.
    // The exact frame follows when the drag stops (onScrubEnd).
    const scrubbing = this.item.mode === "video" && this.timeline.scrubbing;
    this.frames.show(frame, (index, bitmap) => {
      this.shownFrame = index;
      this.pendingPaint = index;
      this.canvas.setImage(bitmap, this.item.width, this.item.height);
      this.refreshBoxes();
      if (this.frameLabel) this.updateFrameLabel();
    }, { near: scrubbing });
    if (this.item.mode === "video") {
      // Prefetch serves stepping and playback; while scrubbing it would only load the server.
      if (!scrubbing) this.frames.prefetch(frame, this.item.frame_count - 1);
      this.updateFrameLabel();
      this.timeline.setFrame(frame);
    }
  }

  updateFrameLabel() {
    const frame = this.frame;
    const actions = [...new Set(this.draft.segments.filter((x) => x.start <= frame && frame <= x.end).map((x) => x.cls))];
    const approximate = this.shownFrame !== null && this.shownFrame !== frame ? ` (showing keyframe ${this.shownFrame})` : "";
    this.frameLabel.textContent = `frame ${frame} / ${this.item.frame_count - 1}${approximate}${actions.length ? ` · ${actions.join(", ")}` : ""}`;
  }

  seek(frame) {
    const f = Math.max(0, Math.min(this.item.frame_count - 1, frame));
    if (f !== this.frame || this.shownFrame !== f) this.showFrame(f);
    this.refreshSide();
  }

  step(delta) {
    if (this.item.mode === "video") this.seek(this.frame + delta);
  }

  togglePlay() {
    this.playing = !this.playing;
    this.playButton.textContent = this.playing ? "Pause" : "Play";
    if (!this.playing) return;
    const period = 1000 / (this.item.fps || 10);
    let last = performance.now();
    const tick = (now) => {
      if (!this.playing) return;
      if (this.frame + 1 >= this.item.frame_count) return this.togglePlay();
      if (now - last >= period && this.frames.has(this.frame + 1)) {
        last = now;
        this.seek(this.frame + 1);
      } else if (!this.frames.has(this.frame + 1)) this.frames.prefetch(this.frame, this.item.frame_count - 1);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  // -- the draft as the canvas and the timeline see it ----------------------------------------

  canvasBoxes() {
    if (this.item.mode === "image") {
      return this.draft.boxes.map((b) => ({
        id: b.id, cls: b.cls, box: b.box, source: b.source,
        label: b.source === "pseudo" ? `${b.cls} · pseudo ${b.score != null ? b.score.toFixed(2) : ""}` : b.cls,
      }));
    }
    const frame = this.shownFrame ?? this.frame;
    const out = [];
    this.draft.tracks.forEach((t, i) => {
      const box = interpolate(t, frame);
      if (!box) return;
      const key = keyframeAt(t, frame);
      out.push({ id: t.id, cls: t.cls, box, dashed: !key, label: `${t.cls} #${i + 1}${key ? " ◆" : ""}` });
    });
    return out;
  }

  refresh() {
    this.refreshBoxes();
    this.refreshSide();
    this.refreshStatus();
    this.timeline?.setData({
      segments: this.draft.segments,
      tracks: this.draft.tracks,
      selectedSegment: this.selectedSegment,
      selectedTrack: this.selectedTrack,
      markStart: this.markStart,
    });
  }

  refreshBoxes() {
    this.canvas.readOnly = this.readOnly;
    this.canvas.setBoxes(this.canvasBoxes(), this.theirsOverlay || []);
    const sel = this.item.mode === "image" ? this.selectedBox : this.selectedTrack;
    if (this.canvas.selected !== sel) {
      this.canvas.selected = sel;
      this.canvas.render();
    }
  }

  refreshStatus() {
    const a = this.assignment;
    const state = this.dirty ? "unsaved changes" : "saved";
    this.statusEl.textContent = `${a.status} · rev ${a.rev} · ${state}`;
    this.statusEl.dataset.dirty = String(this.dirty);
    this.saveButton.disabled = this.readOnly || !this.dirty;
    this.submitButton.disabled = this.readOnly;
    this.drawButton.classList.toggle("active", this.canvas?.tool === "draw");
    this.gridButton.classList.toggle("active", !!this.canvas?.grid);
  }

  message(text, kind = "error") {
    this.messageEl.hidden = !text;
    this.messageEl.className = `ann-message ${kind}`;
    this.messageEl.textContent = text || "";
  }

  // -- the side panel --------------------------------------------------------------------------

  refreshSide() {
    const video = this.item.mode === "video";
    const parts = [];
    parts.push(this.classPicker(video ? "Track class" : "Box class", this.task.classes.boxes, this.boxClass, (cls) => this.pickBoxClass(cls)));
    if (video) {
      parts.push(this.classPicker("Action class", this.task.classes.actions, this.actionClass, (cls) => { this.actionClass = cls; this.refreshSide(); }, true));
      parts.push(this.segmentList(), this.trackList());
    } else {
      parts.push(this.boxList());
    }
    if (this.review) parts.push(this.reviewPanel());
    parts.push(this.reviewHistory(), this.help(video ? HELP_VIDEO : HELP_IMAGE));
    this.side.replaceChildren(...parts.filter(Boolean));
  }

  classPicker(title, classes, current, pick, noKeys = false) {
    const input = h("input", { placeholder: "new class…", size: 12, "aria-label": `new ${title.toLowerCase()}` });
    const add = () => {
      const name = input.value.trim();
      if (!name) return;
      classes.includes(name) || classes.push(name);
      pick(name);
    };
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") add(); });
    return h("section", { class: "ann-panel" },
      h("h3", {}, title),
      h("div", { class: "ann-classes" },
        classes.map((cls, i) => h("button", {
          class: `ann-class${cls === current ? " active" : ""}`,
          style: { borderLeftColor: this.colorOf(cls) },
          onclick: () => pick(cls),
          dataset: { cls },
        }, noKeys || i > 8 ? cls : `${i + 1} ${cls}`))),
      this.readOnly ? null : h("div", { class: "ann-row" }, input, h("button", { onclick: add }, "Add")));
  }

  boxList() {
    const rows = this.draft.boxes.map((b) => h("li", {
      class: b.id === this.selectedBox ? "selected" : "",
      onclick: () => { this.selectedBox = b.id; this.refresh(); },
      dataset: { id: b.id, source: b.source },
    },
    h("span", { class: "swatch", style: { background: this.colorOf(b.cls) } }),
    h("span", { class: "cls" }, b.cls),
    h("span", { class: `badge source-${b.source}` }, b.source),
    h("span", { class: "muted coords" }, `${rounded(b.box.x)}, ${rounded(b.box.y)} · ${rounded(b.box.w)}×${rounded(b.box.h)}`),
    this.readOnly ? null : h("button", { class: "link", title: "Delete", onclick: (e) => { e.stopPropagation(); this.deleteBox(b.id); } }, "✕")));
    return h("section", { class: "ann-panel" },
      h("h3", {}, `Boxes (${this.draft.boxes.length})`),
      rows.length ? h("ul", { class: "ann-list ann-boxes" }, rows) : h("p", { class: "muted" }, "No boxes: press N and drag on the image."));
  }

  segmentList() {
    const rows = this.draft.segments.map((s) => {
      const field = (name) => h("input", {
        type: "number", min: 0, max: this.item.frame_count - 1, value: s[name], class: "num", disabled: this.readOnly,
        "aria-label": `${name} frame`,
        onchange: (e) => this.editSegment(s.id, { [name]: Number(e.target.value) }),
      });
      return h("li", {
        class: s.id === this.selectedSegment ? "selected" : "",
        onclick: () => { this.selectedSegment = s.id; this.refresh(); },
        dataset: { id: s.id },
      },
      h("span", { class: "swatch", style: { background: this.colorOf(s.cls) } }),
      h("span", { class: "cls" }, s.cls),
      field("start"), h("span", { class: "muted" }, "–"), field("end"),
      h("button", { class: "link", title: "go to start", onclick: (e) => { e.stopPropagation(); this.seek(s.start); } }, "⇤"),
      this.readOnly ? null : h("button", { class: "link", title: "Delete", onclick: (e) => { e.stopPropagation(); this.deleteSegment(s.id); } }, "✕"));
    });
    const pending = this.markStart !== null ? h("p", { class: "hint" }, `Action starts at frame ${this.markStart}: go to its last frame and press ].`) : null;
    return h("section", { class: "ann-panel" },
      h("h3", {}, `Actions (${this.draft.segments.length})`),
      pending,
      rows.length ? h("ul", { class: "ann-list ann-segments" }, rows) : h("p", { class: "muted" }, "No actions: press [ on the first frame and ] on the last."));
  }

  trackList() {
    const rows = this.draft.tracks.map((t, i) => h("li", {
      class: t.id === this.selectedTrack ? "selected" : "",
      onclick: () => { this.selectedTrack = t.id; this.refresh(); },
      dataset: { id: t.id },
    },
    h("span", { class: "swatch", style: { background: this.colorOf(t.cls) } }),
    h("span", { class: "cls" }, `${t.cls} #${i + 1}`),
    h("span", { class: "muted" }, `${t.keyframes.length} keyframes · ${t.keyframes[0]?.frame}–${t.keyframes[t.keyframes.length - 1]?.frame}`),
    this.readOnly ? null : h("button", { class: "link", title: "Delete track", onclick: (e) => { e.stopPropagation(); this.deleteTrack(t.id); } }, "✕")));
    return h("section", { class: "ann-panel" },
      h("h3", {}, `Tracks (${this.draft.tracks.length})`),
      rows.length ? h("ul", { class: "ann-list ann-tracks" }, rows) : h("p", { class: "muted" }, "No tracks: press N and draw a box; move it on later frames to add keyframes."));
  }

  reviewPanel() {
    const a = this.assignment;
    const comment = h("textarea", { class: "ann-comment", rows: 3, placeholder: "What should the annotator fix?", "aria-label": "review comment" });
    const decided = a.status !== "submitted";
    return h("section", { class: "ann-panel ann-review" },
      h("h3", {}, "Review"),
      h("p", {}, `Work of ${a.annotator}, ${a.status}${a.review_reason ? ` (${a.review_reason.replace("_", " ")})` : ""}.`),
      this.agreement ? h("p", { class: "ann-agreement" },
        `Agreement of ${this.agreement.annotators.join(", ")}: boxes F1 ${percent(this.agreement.boxes_f1)}, `
        + `actions temporal IoU ${percent(this.agreement.segments_tiou)}`,
        this.item.mode === "image" ? " (the others' boxes are dashed orange)" : "") : null,
      decided ? h("p", { class: "muted" }, a.status === "open"
        ? "Not submitted yet: only submitted work is reviewed."
        : `Decided: ${a.status}.`) : [
        comment,
        h("div", { class: "ann-row" },
          h("button", { class: "primary", onclick: () => this.decide("accept", comment.value) }, "Accept"),
          h("button", { class: "danger", onclick: () => this.decide("reject", comment.value) }, "Reject")),
      ]);
  }

  reviewHistory() {
    const reviews = this.assignment.reviews || [];
    if (!reviews.length) return null;
    return h("section", { class: "ann-panel" },
      h("h3", {}, "Reviews"),
      h("ul", { class: "ann-list ann-reviews" }, reviews.map((r) => h("li", { class: `verdict-${r.verdict}` },
        h("div", {}, h("strong", {}, r.verdict === "reject" ? "Rejected" : "Accepted"), ` by ${r.reviewer}`),
        // The comment is text: whatever it contains is shown, never interpreted.
        r.comment ? h("p", { class: "ann-comment-text" }, r.comment) : null))));
  }

  help(rows) {
    return h("details", { class: "ann-panel ann-help" },
      h("summary", {}, "Keys"),
      h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }

  // -- editing ---------------------------------------------------------------------------------

  edit(change) {
    if (this.readOnly) return;
    this.undoStack.push(JSON.stringify(this.draft));
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
    change(this.draft);
    this.refresh();
  }

  undo() {
    if (!this.undoStack.length || this.readOnly) return;
    this.redoStack.push(JSON.stringify(this.draft));
    this.draft = JSON.parse(this.undoStack.pop());
    this.refresh();
  }

  redo() {
    if (!this.redoStack.length || this.readOnly) return;
    this.undoStack.push(JSON.stringify(this.draft));
    this.draft = JSON.parse(this.redoStack.pop());
    this.refresh();
  }

  setTool(tool) {
    this.canvas.tool = tool;
    this.canvas.canvas.style.cursor = tool === "draw" ? "crosshair" : "default";
    this.refreshStatus();
  }

  toggleGrid() {
    this.canvas.grid = !this.canvas.grid;
    this.canvas.render();
    this.refreshStatus();
  }

  pickBoxClass(cls) {
    this.boxClass = cls;
    if (this.item.mode === "image" && this.selectedBox) {
      this.edit((d) => {
        const b = d.boxes.find((x) => x.id === this.selectedBox);
        if (b && b.cls !== cls) Object.assign(b, { cls, source: "human" });
      });
    } else if (this.item.mode === "video" && this.selectedTrack) {
      this.edit((d) => {
        const t = d.tracks.find((x) => x.id === this.selectedTrack);
        if (t) t.cls = cls;
      });
    } else this.refreshSide();
  }

  onCanvasSelect(id) {
    if (this.item.mode === "image") this.selectedBox = id;
    else this.selectedTrack = id;
    this.refreshSide();
    this.timeline?.setData({ segments: this.draft.segments, tracks: this.draft.tracks, selectedSegment: this.selectedSegment, selectedTrack: this.selectedTrack, markStart: this.markStart });
  }

  onCanvasChange({ kind, id, box }) {
    if (this.item.mode === "image") {
      if (kind === "create") {
        const fresh = { id: newId("b"), cls: this.boxClass, box, source: "human", score: null };
        this.edit((d) => d.boxes.push(fresh));
        this.selectedBox = fresh.id;
        this.setTool("select");
      } else {
        // Touching a pseudo-label makes it the annotator's own.
        this.edit((d) => {
          const b = d.boxes.find((x) => x.id === id);
          if (b) Object.assign(b, { box, source: "human" });
        });
      }
    } else {
      const frame = this.shownFrame ?? this.frame;
      if (kind === "create") {
        const fresh = { id: newId("t"), cls: this.boxClass, keyframes: [{ frame, box }] };
        this.edit((d) => d.tracks.push(fresh));
        this.selectedTrack = fresh.id;
        this.setTool("select");
      } else {
        this.edit((d) => {
          const t = d.tracks.find((x) => x.id === id);
          if (t) setKeyframe(t, frame, box);
        });
      }
    }
    this.refresh();
  }

  deleteBox(id) {
    this.edit((d) => { d.boxes = d.boxes.filter((b) => b.id !== id); });
    if (this.selectedBox === id) this.selectedBox = null;
    this.refresh();
  }

  deleteSegment(id) {
    this.edit((d) => { d.segments = d.segments.filter((s) => s.id !== id); });
    if (this.selectedSegment === id) this.selectedSegment = null;
    this.refresh();
  }

  deleteTrack(id) {
    this.edit((d) => { d.tracks = d.tracks.filter((t) => t.id !== id); });
    if (this.selectedTrack === id) this.selectedTrack = null;
    this.refresh();
  }

  editSegment(id, changes) {
    this.edit((d) => {
      const s = d.segments.find((x) => x.id === id);
      if (!s) return;
      Object.assign(s, changes, { source: "human" });
      if (s.end < s.start) [s.start, s.end] = [s.end, s.start];
    });
  }

  markSegment(edge) {
    const frame = this.frame;
    if (this.selectedSegment) {
      this.editSegment(this.selectedSegment, { [edge]: frame });
      return;
    }
    if (edge === "start") {
      this.markStart = frame;
      this.refresh();
      return;
    }
    const start = this.markStart ?? frame;
    const fresh = { id: newId("s"), cls: this.actionClass, start: Math.min(start, frame), end: Math.max(start, frame), source: "human" };
    this.markStart = null;
    this.edit((d) => d.segments.push(fresh));
    this.selectedSegment = fresh.id;
    this.refresh();
  }

  keyframeSelectedTrack() {
    const t = this.draft.tracks.find((x) => x.id === this.selectedTrack);
    if (!t) return;
    const box = interpolate(t, this.frame) || t.keyframes.reduce((best, k) => (Math.abs(k.frame - this.frame) < Math.abs(best.frame - this.frame) ? k : best)).box;
    this.edit(() => setKeyframe(t, this.frame, box));
  }

  deleteSelection(whole) {
    if (this.item.mode === "image") {
      if (this.selectedBox) this.deleteBox(this.selectedBox);
      return;
    }
    if (this.selectedSegment) return this.deleteSegment(this.selectedSegment);
    const t = this.draft.tracks.find((x) => x.id === this.selectedTrack);
    if (!t) return;
    if (whole || (t.keyframes.length === 1 && keyframeAt(t, this.frame))) return this.deleteTrack(t.id);
    if (keyframeAt(t, this.frame)) this.edit(() => removeKeyframe(t, this.frame));
  }

  nudge(dx, dy) {
    const id = this.selectedBox;
    if (!id) return;
    this.edit((d) => {
      const b = d.boxes.find((x) => x.id === id);
      if (!b) return;
      b.box = { ...b.box, x: Math.max(0, Math.min(this.item.width - b.box.w, b.box.x + dx)), y: Math.max(0, Math.min(this.item.height - b.box.h, b.box.y + dy)) };
      b.source = "human";
    });
  }

  cycleSelection() {
    const list = this.item.mode === "image" ? this.draft.boxes : this.draft.tracks;
    if (!list.length) return;
    const current = this.item.mode === "image" ? this.selectedBox : this.selectedTrack;
    const next = list[(list.findIndex((x) => x.id === current) + 1) % list.length].id;
    if (this.item.mode === "image") this.selectedBox = next;
    else this.selectedTrack = next;
    this.refresh();
  }

  onKey(e) {
    const tag = e.target?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key;
    const video = this.item.mode === "video";
    let handled = true;
    if (ctrl && key.toLowerCase() === "s") this.save();
    else if (ctrl && key.toLowerCase() === "z" && e.shiftKey) this.redo();
    else if (ctrl && key.toLowerCase() === "z") this.undo();
    else if (ctrl && key.toLowerCase() === "y") this.redo();
    else if (ctrl) handled = false;
    else if (key === "n" || key === "N") this.setTool(this.canvas.tool === "draw" ? "select" : "draw");
    else if (key === "Escape") { this.setTool("select"); this.markStart = null; this.selectedSegment = null; this.refresh(); }
    else if (key === "Delete" || key === "Backspace") this.deleteSelection(e.shiftKey);
    else if (key === "g" || key === "G") this.toggleGrid();
    else if (key === "f" || key === "F" || key === "0") this.canvas.fit();
    else if (key === "+" || key === "=") this.canvas.zoomAt(1.25, ...this.canvas.cssSize().map((v) => v / 2));
    else if (key === "-") this.canvas.zoomAt(0.8, ...this.canvas.cssSize().map((v) => v / 2));
    else if (key === "Tab") this.cycleSelection();
    else if (/^[1-9]$/.test(key) && this.task.classes.boxes[Number(key) - 1]) this.pickBoxClass(this.task.classes.boxes[Number(key) - 1]);
    else if (video && key === "ArrowRight") this.step(e.shiftKey ? 10 : 1);
    else if (video && key === "ArrowLeft") this.step(e.shiftKey ? -10 : -1);
    else if (video && key === "Home") this.seek(0);
    else if (video && key === "End") this.seek(this.item.frame_count - 1);
    else if (video && key === " ") this.togglePlay();
    else if (video && key === "[") this.markSegment("start");
    else if (video && key === "]") this.markSegment("end");
    else if (video && (key === "k" || key === "K")) this.keyframeSelectedTrack();
    else if (!video && key.startsWith("Arrow")) {
      const step = e.shiftKey ? 10 : 1;
      this.nudge(key === "ArrowLeft" ? -step : key === "ArrowRight" ? step : 0, key === "ArrowUp" ? -step : key === "ArrowDown" ? step : 0);
    } else handled = false;
    if (handled) e.preventDefault();
  }

  // -- saving, conflicts, submitting, review ----------------------------------------------------

  async save({ rev = this.assignment.rev, quiet = false } = {}) {
    if (this.readOnly) return false;
    const sent = JSON.stringify(this.draft);
    const started = performance.now();
    const r = await call("put", `/api/assignments/${this.assignment.id}/draft`, { rev, author: this.user, draft: this.draft });
    this.lastSaveMs = performance.now() - started;
    if (r.ok) {
      const current = this.draft;
      this.assignment = r.body;
      this.savedJson = JSON.stringify(r.body.draft);
      // Keep edits made while the request was in flight.
      this.draft = JSON.stringify(current) === sent ? clone(r.body.draft) : current;
      this.theirsOverlay = null;
      if (!quiet) this.message(`Saved revision ${r.body.rev}.`, "ok");
      this.refresh();
      return true;
    }
    if (r.status === 409) {
      await this.showConflict(r.body);
      return false;
    }
    this.message(r.body?.error || `save failed (HTTP ${r.status})`);
    return false;
  }

  async showConflict(error) {
    const theirs = await call("get", `/api/assignments/${this.assignment.id}`);
    if (!theirs.ok) return this.message(error?.error || "conflict");
    const them = theirs.body;
    this.theirsOverlay = this.item.mode === "image" ? them.draft.boxes.map((b) => ({ id: `theirs-${b.id}`, cls: b.cls, box: b.box })) : [];
    this.refreshBoxes();
    const column = (title, draft, note) => h("div", { class: "ann-version" },
      h("h4", {}, title), h("p", { class: "muted" }, note), describeDraft(draft, this.item.mode));
    this.dialog.replaceChildren(h("div", { class: "ann-dialog-box", role: "dialog", "aria-label": "conflict" },
      h("h3", {}, "Someone saved this task while you were working"),
      h("p", { class: "error" }, error?.error || ""),
      h("div", { class: "ann-versions" },
        column("Yours (not saved)", this.draft, `made on revision ${this.assignment.rev}`),
        column(`Theirs (revision ${them.rev})`, them.draft, `saved by ${them.updated_by || them.annotator}${this.item.mode === "image" ? " · drawn dashed orange on the image" : ""}`)),
      h("div", { class: "ann-row" },
        h("button", { class: "primary", onclick: () => this.resolve("mine", them) }, "Keep mine (save over theirs)"),
        h("button", { onclick: () => this.resolve("theirs", them) }, "Take theirs"),
        h("button", { class: "link", onclick: () => this.resolve("later", them) }, "Decide later"))));
    this.dialog.hidden = false;
    this.message(`Not saved: revision ${them.rev} by ${them.updated_by || them.annotator} is newer than yours (${this.assignment.rev}).`);
  }

  async resolve(choice, them) {
    this.dialog.hidden = true;
    if (choice === "theirs") {
      this.undoStack.push(JSON.stringify(this.draft));
      this.assignment = them;
      this.draft = clone(them.draft);
      this.savedJson = JSON.stringify(them.draft);
      this.theirsOverlay = null;
      this.message(`Took revision ${them.rev}.`, "ok");
      this.refresh();
    } else if (choice === "mine") {
      this.assignment = { ...this.assignment, rev: them.rev };
      await this.save({ rev: them.rev });
    }
  }

  async submit() {
    if (this.dirty && !(await this.save({ quiet: true }))) return;
    const r = await call("post", `/api/assignments/${this.assignment.id}/submit`, { rev: this.assignment.rev, author: this.user });
    if (!r.ok) {
      if (r.status === 409 && /is at revision/.test(r.body?.error || "")) return this.showConflict(r.body);
      return this.message(problem(r.body) || `submit failed (HTTP ${r.status})`);
    }
    this.adopt(r.body);
    const where = r.body.status === "accepted" ? "accepted into the dataset" : `waiting for review (${(r.body.review_reason || "").replace("_", " ")})`;
    this.message(`Submitted: ${where}.`, "ok");
    this.refresh();
  }

  async decide(verdict, comment) {
    const r = await call("post", `/api/assignments/${this.assignment.id}/review`, { verdict, reviewer: this.user, comment });
    if (!r.ok) return this.message(problem(r.body) || `review failed (HTTP ${r.status})`);
    this.adopt(r.body);
    this.message(verdict === "accept" ? "Accepted: the work is in the dataset." : "Rejected: the annotator sees your comment.", "ok");
    this.refresh();
  }
}

/** An error answer as one line: what went wrong, then what to do about it. */
function problem(body) {
  return [body?.error, body?.hint].filter(Boolean).join(" — ");
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function describeDraft(draft, mode) {
  if (mode === "image") {
    return h("ul", { class: "ann-list" }, draft.boxes.length
      ? draft.boxes.map((b) => h("li", {}, `${b.cls} (${b.source}) at ${rounded(b.box.x)}, ${rounded(b.box.y)} · ${rounded(b.box.w)}×${rounded(b.box.h)}`))
      : h("li", { class: "muted" }, "no boxes"));
  }
  return h("ul", { class: "ann-list" },
    draft.segments.map((s) => h("li", {}, `action ${s.cls}: frames ${s.start}–${s.end}`)),
    draft.tracks.map((t) => h("li", {}, `track ${t.cls}: ${t.keyframes.length} keyframes, frames ${t.keyframes[0].frame}–${t.keyframes[t.keyframes.length - 1].frame}`)),
    !draft.segments.length && !draft.tracks.length ? h("li", { class: "muted" }, "nothing") : null);
}
