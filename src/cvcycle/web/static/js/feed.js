// The operator panel: the live event feed (server-sent events into a virtualised list) and the
// event card, where one key confirms, reports a false detection, or reports an inaccurate one and
// takes the right box by a drag.
import { api, ApiError, errorBox } from "./api.js";
import { BoxStage } from "./image-overlay.js";
import { fmtTime, h, replace } from "./dom.js";
import { bindKeys, keyLegend } from "./hotkeys.js";
import { operatorName, operatorInput, verdictBadges, VERDICT_LABELS } from "./operator.js";

const ROW = 52; // px, the same as --row-height
const OVERSCAN = 6;
const FEED_LIMIT = 10000;
const OLDER_PAGE = 2000;

// What the list shows. An event that gets a verdict stays in a "to review" list until the filter is
// applied again, so rows do not jump away under the operator.
const FILTERS = {
  all: { label: "all events", keep: () => true },
  to_review: { label: "to review", keep: (item) => item.verdicts.length === 0 },
  with_boxes: { label: "with boxes", keep: (item) => item.detections.length > 0 },
  empty: { label: "nothing detected", keep: (item) => item.detections.length === 0 },
};

function detectionLabel(d, i) {
  return `${i + 1}: ${d.cls} ${Math.round(d.score * 100)}%`;
}

export async function mount(root, params) {
  const items = []; // oldest first; the list shows them newest first
  let shown = items; // the items the filter lets through (the same array when it lets all through)
  const byId = new Map();
  let selectedId = params.event ? Number(params.event) : null;
  let detail = null;
  let selectedDetection = 0;
  let unseen = 0;
  let source = null;
  let closed = false;
  const appliedReports = new Set(); // a report reaches us twice when it is ours: as the answer and on the stream

  /** Add a verdict to its row once, whichever way it came; false when already shown. */
  function applyVerdict(eventId, reportId, type) {
    if (appliedReports.has(reportId)) return false;
    appliedReports.add(reportId);
    const item = byId.get(eventId);
    if (!item) return false;
    item.verdicts = [...item.verdicts, type];
    queueRender();
    return true;
  }

  const list = h("div", { class: "feed-list", tabindex: "0", "aria-label": "event feed" });
  const spacer = h("div", { class: "feed-spacer" });
  list.append(spacer);
  const count = h("span", { class: "muted", id: "feed-count" }, "…");
  const live = h("span", { class: "live-dot", title: "live updates" });
  const newPill = h("button", { class: "new-pill", hidden: true, onclick: () => scrollToTop() });
  const uploadInput = h("input", { type: "file", accept: ".jsonl,.ndjson,.json,.txt", hidden: true, onchange: () => upload() });
  const uploadButton = h("button", { onclick: () => uploadInput.click(), title: "push a JSON Lines file of events" }, "Upload events…");
  const card = h("section", { class: "card", "aria-label": "event card" });
  const status = h("div", { class: "status-line", role: "status" });
  const stage = new BoxStage();
  const filterSelect = h(
    "select",
    { "aria-label": "show", onchange: () => applyFilter() },
    Object.entries(FILTERS).map(([value, f]) => h("option", { value }, f.label)),
  );

  const keys = {
    c: { label: "confirm", run: () => report("confirmed") },
    f: { label: "false detection", run: () => report("false_detection") },
    i: { label: "inaccurate: drag the right box", run: () => reportInaccurate() },
    j: { label: "next (older)", run: () => move(1) },
    k: { label: "previous (newer)", run: () => move(-1) },
    ArrowDown: { label: "", hidden: true, run: () => move(1) },
    ArrowUp: { label: "", hidden: true, run: () => move(-1) },
    g: { label: "newest", run: () => scrollToTop(true) },
    u: { label: "only events to review", run: () => toggleToReview() },
    "1": { label: "pick box 1–9", display: "1–9", run: () => pickDetection(0) },
    Escape: { label: "cancel drawing", display: "Esc", run: () => stage.cancelDrawing() },
  };
  for (let n = 2; n <= 9; n += 1) keys[String(n)] = { label: "", hidden: true, run: () => pickDetection(n - 1) };

  replace(
    root,
    h(
      "div",
      { class: "operator" },
      h(
        "div",
        { class: "feed-side" },
        h("div", { class: "feed-head" }, h("h1", { style: { margin: 0 } }, "Events"), live, count, h("span", { class: "spacer" }), newPill),
        h("div", { class: "feed-head" }, h("label", { class: "muted" }, "show ", filterSelect), h("span", { class: "spacer" }), uploadButton, uploadInput),
        list,
      ),
      h("div", { style: { display: "flex", flexDirection: "column", minHeight: 0, gap: "6px" } }, h("div", { class: "row" }, operatorInput(), h("span", { class: "spacer" })), keyLegend(keys), status, card),
    ),
  );

  // -- the virtualised list -------------------------------------------------------------------------
  let renderQueued = false;
  function renderList() {
    renderQueued = false;
    const total = shown.length;
    spacer.style.height = `${total * ROW}px`;
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(total, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(row(shown[total - 1 - i], i));
    spacer.replaceChildren(...rows);
    const all = `${items.length.toLocaleString("en")}${moreOlder ? "+" : ""}`;
    count.textContent = shown === items ? `${all} events` : `${total.toLocaleString("en")} of ${all} events`;
    if (moreOlder && last >= total - OVERSCAN) loadOlder();
  }

  // The list starts with the newest FEED_LIMIT events; scrolling to its end fetches older ones.
  let moreOlder = false;
  let loadingOlder = false;
  async function loadOlder() {
    if (loadingOlder || !items.length) return;
    loadingOlder = true;
    try {
      const older = await api.get("/api/events", { limit: OLDER_PAGE, before_id: items[0].id });
      moreOlder = older.length === OLDER_PAGE;
      const fresh = older.filter((item) => !byId.has(item.id)).reverse();
      for (const item of fresh) byId.set(item.id, item);
      items.unshift(...fresh);
      if (shown !== items) shown.unshift(...fresh.filter(FILTERS[filterSelect.value].keep));
      queueRender();
    } catch (err) {
      status.replaceChildren(errorBox(err));
    } finally {
      loadingOlder = false;
    }
  }
  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(renderList);
    }
  }
  function row(item, index) {
    const boxes = item.detections.length;
    return h(
      "div",
      {
        class: `feed-row${item.id === selectedId ? " selected" : ""}`,
        style: { top: `${index * ROW}px` },
        dataset: { eventId: item.id },
        // On the press, not the click: events arriving live re-render and shift the rows, and a
        // re-render between press and release would swallow the click.
        onmousedown: (e) => e.button === 0 && select(item.id),
      },
      h("div", { class: "line1" }, h("span", { class: "source" }, item.source), h("span", { class: "muted" }, `#${item.id}`), h("span", { class: "spacer" }), verdictBadges(item.verdicts)),
      h("div", { class: "line2" }, `${fmtTime(item.time)} · ${item.model} · ${boxes ? `${boxes} box${boxes > 1 ? "es" : ""}: ${[...new Set(item.detections.map((d) => d.cls))].join(", ")}` : "nothing detected"}`),
    );
  }
  list.addEventListener("scroll", () => {
    if (list.scrollTop < ROW) {
      unseen = 0;
      newPill.hidden = true;
    }
    queueRender();
  });
  window.addEventListener("resize", queueRender);

  function scrollToTop(selectNewest = false) {
    list.scrollTop = 0;
    unseen = 0;
    newPill.hidden = true;
    if (selectNewest && shown.length) select(shown[shown.length - 1].id);
    renderList();
  }

  function applyFilter() {
    const keep = FILTERS[filterSelect.value].keep;
    shown = filterSelect.value === "all" ? items : items.filter(keep);
    scrollToTop();
  }
  function toggleToReview() {
    filterSelect.value = filterSelect.value === "to_review" ? "all" : "to_review";
    applyFilter();
  }

  function add(item) {
    if (byId.has(item.id)) return;
    byId.set(item.id, item);
    items.push(item);
    if (shown !== items) {
      if (!FILTERS[filterSelect.value].keep(item)) return;
      shown.push(item);
    }
    if (list.scrollTop > 0) {
      // Keep what the operator is looking at in place; tell them new events came in above.
      list.scrollTop += ROW;
      unseen += 1;
      newPill.textContent = `${unseen} new ↑`;
      newPill.hidden = false;
    }
  }

  // -- selection and the card -----------------------------------------------------------------------
  function displayIndex(id) {
    const item = byId.get(id);
    const at = item ? shown.lastIndexOf(item) : -1;
    return at < 0 ? -1 : shown.length - 1 - at;
  }
  function move(step) {
    if (!shown.length) return;
    const current = selectedId === null ? -1 : displayIndex(selectedId);
    const next = Math.min(shown.length - 1, Math.max(0, current + step));
    select(shown[shown.length - 1 - next].id);
    const top = next * ROW;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + ROW > list.scrollTop + list.clientHeight) list.scrollTop = top + ROW - list.clientHeight;
  }
  async function select(id) {
    selectedId = id;
    selectedDetection = 0;
    if (location.pathname !== `/feed/${id}`) history.replaceState(null, "", `/feed/${id}`);
    queueRender();
    status.textContent = "";
    try {
      const loaded = await api.get(`/api/events/${id}`);
      if (selectedId !== id) return;
      detail = loaded;
      renderCard();
    } catch (err) {
      replace(card, errorBox(err));
    }
  }
  /** Reload the open card (new verdicts on it), keeping the operator's choice of box. */
  async function refreshCard(id) {
    try {
      const loaded = await api.get(`/api/events/${id}`);
      if (selectedId !== id || stage.drawing) return;
      detail = loaded;
      renderCard();
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  }
  function pickDetection(index) {
    if (!detail || index >= detail.detections.length) return;
    selectedDetection = index;
    renderCard();
  }

  const classSelect = h("select", { "aria-label": "class of the corrected box" });
  const comment = h("input", { type: "text", placeholder: "comment (optional)", "aria-label": "comment", size: 30 });

  function renderCard() {
    if (!detail) {
      replace(card, h("p", { class: "muted" }, items.length ? "Pick an event on the left (or press j)." : "No events yet. They appear here as they arrive."));
      return;
    }
    const e = detail;
    stage.show(`/api/events/${e.id}/image`, e.width, e.height);
    const falseOnes = new Set(e.reports.filter((r) => r.type === "false_detection").map((r) => r.detection));
    stage.setBoxes([
      ...e.detections.map((d, i) => ({
        box: d.box,
        label: detectionLabel(d, i),
        kind: falseOnes.has(i) ? "false" : i === selectedDetection ? "selected" : "model",
        onclick: () => pickDetection(i),
      })),
      ...e.reports.filter((r) => r.box).map((r) => ({ box: r.box, label: `${r.cls} (${VERDICT_LABELS[r.type]})`, kind: "report" })),
    ]);
    const selectedCls = e.detections[selectedDetection]?.cls;
    replace(classSelect, e.classes.map((c) => h("option", { value: c, selected: c === selectedCls }, c)));
    const has = e.detections.length > 0;
    replace(
      card,
      h("div", { class: "card-head" }, h("span", { class: "title" }, e.source), h("span", { class: "muted" }, `event #${e.id} · ${fmtTime(e.time)} · ${e.model} · ${e.width}×${e.height}`), verdictBadges(e.reports.map((r) => r.type))),
      h(
        "div",
        { class: "card-body" },
        h("div", {}, stage.root),
        h(
          "div",
          {},
          h("h3", {}, has ? "Model's boxes" : "The model saw nothing here"),
          h(
            "ul",
            { class: "detections" },
            e.detections.map((d, i) => h("li", { class: i === selectedDetection ? "selected" : "", onclick: () => pickDetection(i) }, h("kbd", {}, String(i + 1)), detectionLabel(d, i).slice(3), h("span", { class: "muted mono" }, d.box.map((v) => Math.round(v)).join(", ")))),
          ),
          h(
            "div",
            { class: "actions" },
            h("button", { class: "ok", onclick: () => report("confirmed") }, h("kbd", {}, "c"), "Confirm"),
            h("button", { class: "danger", disabled: !has, onclick: () => report("false_detection") }, h("kbd", {}, "f"), "False detection"),
            h("button", { class: "warn", disabled: !has, onclick: () => reportInaccurate() }, h("kbd", {}, "i"), "Inaccurate…"),
          ),
          h("div", { class: "row" }, h("label", {}, "class ", classSelect)),
          h("div", { class: "row", style: { marginTop: "6px" } }, comment),
          h("h3", {}, "Verdicts"),
          e.reports.length
            ? h("ul", { class: "reports" }, e.reports.map((r) => h("li", {}, verdictBadges([r.type]), r.detection !== null ? `box ${r.detection + 1} ` : "", r.operator ? `by ${r.operator} ` : "", r.task_id ? h("span", { class: "muted" }, `task #${r.task_id} `) : null, r.comment ? h("div", { class: "comment" }, r.comment) : null)))
            : h("p", { class: "muted" }, "None yet."),
        ),
      ),
    );
  }

  async function send(body) {
    const id = detail.id;
    try {
      const record = await api.post(`/api/events/${id}/reports`, { ...body, operator: operatorName(), comment: comment.value });
      comment.value = "";
      applyVerdict(id, record.id, record.type);
      status.replaceChildren(h("span", { class: "notice" }, `Reported ${VERDICT_LABELS[record.type]} on event #${id}${record.task_id ? ` → annotation task #${record.task_id}` : ""}.`));
      queueRender();
      if (selectedId === id) await refreshCard(id);
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  }

  function report(type) {
    if (!detail) return;
    if (type === "confirmed") {
      send({ type, detection: detail.detections.length === 1 ? 0 : null });
      return;
    }
    if (!detail.detections.length) return;
    send({ type, detection: selectedDetection });
  }

  async function reportInaccurate() {
    if (!detail || !detail.detections.length) return;
    const id = detail.id;
    status.replaceChildren(h("span", { class: "notice" }, "Drag the right box over the image (Esc cancels)."));
    const box = await stage.draw();
    if (!box || !detail || detail.id !== id) {
      status.textContent = "";
      return;
    }
    await send({ type: "inaccurate_detection", detection: selectedDetection, box: { cls: classSelect.value, ...box } });
  }

  async function upload() {
    const file = uploadInput.files[0];
    uploadInput.value = "";
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    try {
      const response = await fetch("/api/events", { method: "POST", body: form });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new ApiError(response.status, data.error || response.statusText, data.hint);
      status.replaceChildren(h("span", { class: "notice" }, `Uploaded ${file.name}: ${data.kept} kept, ${data.duplicates} already known, ${data.bad} bad lines.`));
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  }

  // -- loading and following ------------------------------------------------------------------------
  const unbind = bindKeys(keys);
  try {
    const newest = await api.get("/api/events", { limit: FEED_LIMIT });
    for (let i = newest.length - 1; i >= 0; i -= 1) add(newest[i]);
    moreOlder = newest.length === FEED_LIMIT;
  } catch (err) {
    replace(card, errorBox(err));
  }
  renderList();
  if (selectedId !== null) select(selectedId);
  else renderCard();

  // Following the stream. On an error the stream is reopened from the newest event and verdict
  // this page has (a plain EventSource retry would ask for verdicts "from now" and miss some).
  let lastReportId = null;
  let retry = null;
  function follow() {
    const query = new URLSearchParams({ after_id: items.length ? items[items.length - 1].id : 0 });
    if (lastReportId !== null) query.set("after_report_id", lastReportId);
    source = new EventSource(`/api/events/stream?${query}`);
    source.addEventListener("open", () => live.classList.add("on"));
    source.addEventListener("hello", (message) => {
      if (lastReportId === null) lastReportId = JSON.parse(message.data).after_report_id;
    });
    source.addEventListener("error", () => {
      live.classList.remove("on");
      source.close();
      if (!closed) retry = setTimeout(follow, 1000);
    });
    source.addEventListener("event", (message) => {
      add(JSON.parse(message.data));
      renderList();
    });
    // Another operator's verdict (ours are already shown): update the row, and the card if open.
    source.addEventListener("verdict", (message) => {
      const verdict = JSON.parse(message.data);
      lastReportId = Math.max(lastReportId ?? 0, verdict.report_id);
      if (!applyVerdict(verdict.event_id, verdict.report_id, verdict.type)) return;
      if (selectedId === verdict.event_id && !stage.drawing) refreshCard(verdict.event_id);
    });
  }
  if (!closed) follow();
  return () => {
    closed = true;
    unbind();
    if (source) source.close();
    clearTimeout(retry);
    window.removeEventListener("resize", queueRender);
  };
}
