// The missed-detection review queue: frames where the model saw nothing, drawn sparsely; the
// operator either says nothing was missed or marks each missed object with a box.
import { api, errorBox } from "./api.js";
import { BoxStage } from "./image-overlay.js";
import { fmtTime, h, replace } from "./dom.js";
import { bindKeys, keyLegend } from "./hotkeys.js";
import { operatorInput, operatorName, verdictBadges } from "./operator.js";

const DRAW_LIMIT = 20;
// Frames of one camera drawn at least this far apart: a long empty stretch is one look, not twenty.
const MIN_GAP_S = 10;

export async function mount(root) {
  let queue = [];
  let current = -1;
  let detail = null;
  const stage = new BoxStage();
  const modelSelect = h("select", { "aria-label": "model" });
  const classSelect = h("select", { "aria-label": "class of the missed object" });
  const listNode = h("ul", { class: "queue", "aria-label": "frames to review" });
  const view = h("section", { class: "card" });
  const status = h("div", { class: "status-line", role: "status" });
  const pending = h("span", { class: "muted" });

  const keys = {
    m: { label: "mark a missed object (drag its box)", run: () => markMiss() },
    n: { label: "nothing missed", run: () => nothingMissed() },
    j: { label: "next frame", run: () => show(current + 1) },
    k: { label: "previous frame", run: () => show(current - 1) },
    d: { label: "draw more frames", run: () => drawMore() },
    Escape: { label: "cancel drawing", display: "Esc", run: () => stage.cancelDrawing() },
  };

  replace(
    root,
    h("div", { class: "row" }, h("h1", { style: { margin: 0 } }, "Missed detections"), pending, h("span", { class: "spacer" }), operatorInput(), h("label", {}, "model ", modelSelect), h("button", { class: "primary", onclick: () => drawMore() }, h("kbd", {}, "d"), "Draw frames")),
    h("p", { class: "muted" }, "Frames where the model reported nothing, drawn sparsely at random. Mark every object it missed, or say nothing was missed."),
    keyLegend(keys),
    status,
    h("div", { class: "missed" }, listNode, view),
  );

  // A row opens on the press of the button, not on the click: the list refreshes whenever frames
  // are drawn, and a refresh between press and release would swallow the click.
  function renderList() {
    const open = queue.filter((q) => !q.done).length;
    pending.textContent = `${open} to review`;
    replace(
      listNode,
      queue.length
        ? queue.map((q, i) =>
            h("li", { class: `${i === current ? "selected" : ""} ${q.done ? "done" : ""}`, dataset: { eventId: q.id }, onmousedown: (e) => e.button === 0 && show(i) }, h("div", {}, h("strong", {}, q.source), ` #${q.id}`), h("div", { class: "muted" }, fmtTime(q.time), " ", verdictBadges(q.verdicts || []))),
          )
        : h("li", { class: "muted" }, "Nothing waiting. Press d to draw frames."),
    );
  }

  async function show(index) {
    if (index < 0 || index >= queue.length) return;
    current = index;
    renderList();
    const id = queue[index].id;
    try {
      const loaded = await api.get(`/api/events/${id}`);
      if (queue[current]?.id !== id) return;
      detail = loaded;
      renderView();
    } catch (err) {
      replace(view, errorBox(err));
    }
  }

  function renderView() {
    if (!detail) {
      replace(view, h("p", { class: "muted" }, "Pick a frame."));
      return;
    }
    const e = detail;
    stage.show(`/api/events/${e.id}/image`, e.width, e.height);
    stage.setBoxes(e.reports.filter((r) => r.box).map((r) => ({ box: r.box, label: `missed ${r.cls}`, kind: "report" })));
    const previous = classSelect.value;
    replace(classSelect, e.classes.map((c) => h("option", { value: c, selected: c === previous }, c)));
    replace(
      view,
      h("div", { class: "card-head" }, h("span", { class: "title" }, e.source), h("span", { class: "muted" }, `event #${e.id} · ${fmtTime(e.time)} · ${e.model}`), verdictBadges(e.reports.map((r) => r.type))),
      h(
        "div",
        { class: "card-body" },
        stage.root,
        h(
          "div",
          {},
          h("div", { class: "row" }, h("label", {}, "class ", classSelect)),
          h(
            "div",
            { class: "actions" },
            h("button", { class: "primary", onclick: () => markMiss() }, h("kbd", {}, "m"), "Mark a miss…"),
            h("button", { class: "ok", onclick: () => nothingMissed() }, h("kbd", {}, "n"), "Nothing missed"),
          ),
          h("p", { class: "muted" }, `${e.reports.filter((r) => r.type === "missed_detection").length} missed object(s) marked on this frame.`),
        ),
      ),
    );
  }

  async function send(body) {
    const id = detail.id;
    try {
      const record = await api.post(`/api/events/${id}/reports`, { ...body, operator: operatorName() });
      const entry = queue.find((q) => q.id === id);
      if (entry) {
        entry.done = true;
        entry.verdicts = [...(entry.verdicts || []), record.type];
      }
      status.replaceChildren(h("span", { class: "notice" }, record.type === "missed_detection" ? `Marked a missed ${record.box.cls} on event #${id}${record.task_id ? ` → annotation task #${record.task_id}` : ""}.` : `Event #${id}: nothing missed.`));
      detail = await api.get(`/api/events/${id}`);
      renderList();
      renderView();
      return record;
    } catch (err) {
      status.replaceChildren(errorBox(err));
      return null;
    }
  }

  async function markMiss() {
    if (!detail) return;
    const id = detail.id;
    status.replaceChildren(h("span", { class: "notice" }, "Drag a box around the missed object (Esc cancels)."));
    const box = await stage.draw();
    if (!box || !detail || detail.id !== id) {
      status.textContent = "";
      return;
    }
    await send({ type: "missed_detection", box: { cls: classSelect.value, ...box } });
  }

  async function nothingMissed() {
    if (!detail) return;
    if (await send({ type: "confirmed" })) show(current + 1);
  }

  // One draw at a time: "d" pressed while frames are being drawn (or while the page draws on
  // opening) waits for that draw instead of sampling twice.
  let drawing = null;
  function drawMore() {
    if (!modelSelect.value) return Promise.resolve();
    drawing ??= drawFrames().finally(() => {
      drawing = null;
    });
    return drawing;
  }

  async function drawFrames() {
    try {
      const drawn = await api.post("/api/feedback/review-frames/sample", { model: modelSelect.value, limit: DRAW_LIMIT, min_gap_s: MIN_GAP_S });
      await loadQueue();
      status.replaceChildren(h("span", { class: "notice" }, drawn.length ? `Drew ${drawn.length} more frame(s).` : "No more empty frames to draw for this model."));
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  }

  async function loadQueue() {
    const fresh = await api.get("/api/feedback/review-frames", { limit: 500 });
    const known = new Set(queue.map((q) => q.id));
    queue = [...queue, ...fresh.filter((f) => !known.has(f.id))];
    renderList();
    if (current < 0 && queue.length) show(0);
  }

  const unbind = bindKeys(keys);
  try {
    const models = await api.get("/api/feedback/models");
    const names = [...new Set(models.map((m) => m.name))];
    replace(modelSelect, names.map((n) => h("option", { value: n }, n)));
    await loadQueue();
    // Opening an empty queue means "give me frames to look at".
    if (!queue.length && names.length) await drawMore();
  } catch (err) {
    status.replaceChildren(errorBox(err));
  }
  renderView();
  return () => unbind();
}
