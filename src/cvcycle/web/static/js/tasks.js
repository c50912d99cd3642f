// Annotation tasks: /tasks (mine or all, with a form to open a new one) and /review (the queue of
// submitted work waiting for a reviewer, with the annotators' agreement on overlap tasks).

import { api, errorBox } from "./api.js";
import { annotatorName, rememberAnnotator, useStylesheet } from "./annotator.js";
import { fmtTime, h, replace } from "./dom.js";

const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);

export async function mount(root, params = {}, query = new URLSearchParams(location.search)) {
  useStylesheet("/static/css/annotate.css");
  const user = annotatorName(query);
  const view = location.pathname.startsWith("/review") ? "review" : query.get("view") === "all" ? "all" : "mine";
  const body = h("div", { class: "tasks-body" }, h("p", { class: "muted" }, "Loading…"));
  const nameInput = h("input", { value: user, size: 12, "aria-label": "annotator name" });
  nameInput.addEventListener("change", () => {
    rememberAnnotator(nameInput.value.trim() || user);
    load();
  });
  const tab = (key, label, href) => h("a", { href, class: `tab${view === key ? " active" : ""}` }, label);
  replace(root, h("section", { class: "tasks" },
    h("header", { class: "tasks-head" },
      h("h1", {}, view === "review" ? "Review" : "Annotation tasks"),
      h("nav", { class: "tabs" },
        tab("mine", "My tasks", "/tasks"), tab("all", "All tasks", "/tasks?view=all"), tab("review", "Review queue", "/review")),
      h("span", { class: "spacer" }),
      h("label", { class: "muted" }, "as ", nameInput)),
    body));

  async function load() {
    const me = nameInput.value.trim() || user;
    try {
      if (view === "review") {
        const data = await api.get("/api/reviews");
        replace(body, reviewTable(data.items));
      } else {
        const data = await api.get("/api/tasks", view === "mine" ? { annotator: me } : {});
        replace(body, view === "all" ? newTaskForm(load) : null, taskTable(data.tasks, me, view));
      }
    } catch (err) {
      replace(body, errorBox(err));
    }
  }
  await load();
}

function item(task) {
  return task.mode === "video" ? `video · medium ${task.media_id}` : `frame ${task.frame_id}`;
}

function people(task) {
  if (!task.assignments.length) return h("span", { class: "muted" }, task.assignee || "unassigned");
  return task.assignments.map((a) => h("span", { class: `badge status-${a.status}` }, `${a.annotator}: ${a.status}`));
}

function taskTable(tasks, me, view) {
  if (!tasks.length) {
    return h("p", { class: "muted empty" }, view === "mine"
      ? `No tasks for ${me}. Open one from All tasks, or ask for one to be assigned.`
      : "No annotation tasks yet: operators' reports open them.");
  }
  return h("table", { class: "grid tasks-table" },
    h("thead", {}, h("tr", {}, ["Task", "Item", "Dataset", "Status", "Annotators", "Reports", "Created", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, tasks.map((t) => h("tr", { dataset: { task: t.id } },
      h("td", {}, h("a", { href: `/annotate/${t.id}` }, `#${t.id}`)),
      h("td", {}, h("span", { class: "badge" }, t.mode), " ", item(t)),
      h("td", {}, t.dataset),
      h("td", {}, h("span", { class: `badge status-${t.status}` }, t.status)),
      h("td", {}, people(t), t.overlap > 1 ? h("span", { class: "muted" }, ` k=${t.overlap}`) : null),
      h("td", {}, t.report_types.join(", ") || "–"),
      h("td", { class: "muted" }, fmtTime(t.created_at)),
      h("td", {}, h("a", { class: "button", href: `/annotate/${t.id}` }, t.status === "open" ? "Annotate" : "View"))))));
}

function reviewTable(items) {
  if (!items.length) return h("p", { class: "muted empty" }, "Nothing waits for review.");
  return h("table", { class: "grid review-table" },
    h("thead", {}, h("tr", {}, ["Task", "Item", "Why", "Agreement", "Submitted work", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map(({ task, waiting_for: waiting, agreement }) => {
      const submitted = task.assignments.filter((a) => a.status === "submitted");
      const why = task.overlap > 1 ? `overlap k=${task.overlap}` : "spot check";
      return h("tr", { dataset: { task: task.id } },
        h("td", {}, `#${task.id}`),
        h("td", {}, h("span", { class: "badge" }, task.mode), " ", item(task)),
        h("td", {}, why, waiting ? h("div", { class: "muted" }, `waiting for ${waiting} more`) : null),
        h("td", {}, agreement ? `boxes F1 ${pct(agreement.boxes_f1)} · actions tIoU ${pct(agreement.segments_tiou)}` : "–"),
        h("td", {}, submitted.map((a) => h("div", {}, `${a.annotator} · rev ${a.rev}`))),
        h("td", {}, submitted.map((a) => h("a", { class: "button", href: `/annotate/${task.id}?assignment=${a.id}&review=1` }, `Review ${a.annotator}`))));
    })));
}

function newTaskForm(reload) {
  const dataset = h("input", { placeholder: "dataset", size: 10, "aria-label": "dataset", required: true });
  const target = h("input", { placeholder: "id", size: 6, "aria-label": "frame or medium id", required: true });
  const kind = h("select", { "aria-label": "task kind" }, h("option", { value: "media_id" }, "video (medium id)"), h("option", { value: "frame_id" }, "image (frame id)"));
  const annotators = h("input", { placeholder: "annotators, comma-separated", size: 24, "aria-label": "annotators" });
  const overlap = h("input", { type: "number", min: 1, max: 10, value: 1, class: "num", "aria-label": "overlap" });
  const out = h("span", { class: "muted" });
  const form = h("form", { class: "new-task" },
    h("strong", {}, "New task "), dataset, kind, target, annotators, h("label", { class: "muted" }, "overlap ", overlap),
    h("button", { type: "submit" }, "Open task"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const created = await api.post("/api/tasks", {
        dataset: dataset.value.trim(),
        [kind.value]: Number(target.value),
        annotators: annotators.value.split(",").map((a) => a.trim()).filter(Boolean),
        overlap: Number(overlap.value) || 1,
      });
      replace(out, `opened task #${created.id}`);
      reload();
    } catch (err) {
      replace(out, errorBox(err));
    }
  });
  return form;
}
