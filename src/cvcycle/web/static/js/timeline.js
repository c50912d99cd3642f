// The loop's timeline: dataset versions, training runs, gate reports and deployments in time order.
import { api, errorBox } from "./api.js";
import { fmtNum, fmtTime, h, replace } from "./dom.js";

const HEADLINE_METRICS = ["val_map50", "val_map", "val_loss", "train_loss"];
const KIND_LABELS = { dataset_version: "dataset version", run: "training run", gate: "gate report", deployment: "deployment" };

function linkFor(item) {
  const d = item.detail;
  if (item.kind === "dataset_version") return `/datasets/${encodeURIComponent(d.dataset)}`;
  if (item.kind === "run") return `/runs/${d.run_id}`;
  if (item.kind === "gate") return `/models/${encodeURIComponent(d.model)}/${d.version}`;
  if (item.kind === "deployment") return `/models/${encodeURIComponent(d.model)}/${d.new_version}`;
  return null;
}

function summary(item) {
  const d = item.detail;
  if (item.kind === "dataset_version") return `${d.message || "(no message)"} · ${d.frames ?? "?"} frames, ${d.labels ?? "?"} labels`;
  if (item.kind === "run") {
    const metrics = d.metrics || {};
    const keys = HEADLINE_METRICS.filter((k) => k in metrics);
    return `${d.status} · ${(keys.length ? keys : Object.keys(metrics).slice(0, 4)).map((k) => `${k} ${fmtNum(metrics[k])}`).join(", ")}`;
  }
  if (item.kind === "gate") return (d.reasons || []).join("; ") || "all applicable criteria hold";
  if (item.kind === "deployment") return d.reason || "";
  return "";
}

export async function mount(root) {
  replace(root, h("h1", {}, "The loop"), h("p", { class: "muted" }, "Every step on record, newest first."));
  try {
    const items = await api.get("/api/timeline");
    if (!items.length) {
      root.append(h("p", { class: "muted" }, "Nothing yet: commit a dataset version, train, gate and deploy (or run `cvcycle demo`)."));
      return;
    }
    root.append(
      h(
        "ul",
        { class: "timeline", id: "timeline" },
        [...items].reverse().map((item) => {
          const href = linkFor(item);
          const verdict = item.kind === "gate" ? h("span", { class: `badge ${item.detail.verdict === "PASS" ? "pass" : "fail"}` }, item.detail.verdict) : null;
          return h(
            "li",
            { class: item.kind },
            h("div", {}, h("span", { class: "when" }, fmtTime(item.time)), h("span", { class: "kind" }, KIND_LABELS[item.kind] || item.kind)),
            h("div", {}, href ? h("a", { href }, item.title) : item.title, " ", verdict),
            h("div", { class: "muted" }, summary(item)),
          );
        }),
      ),
    );
  } catch (err) {
    root.append(errorBox(err));
  }
}
