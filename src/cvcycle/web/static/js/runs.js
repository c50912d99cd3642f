// Training runs: the list, and one run with its metrics, per-epoch history, config and MLflow link.
import { api, errorBox } from "./api.js";
import { lineChart } from "./charts.js";
import { fmtNum, fmtTime, h, keyValues, replace, table } from "./dom.js";

function metricText(metrics) {
  return Object.entries(metrics || {})
    .filter(([, v]) => typeof v === "number")
    .slice(0, 5)
    .map(([k, v]) => `${k} ${fmtNum(v)}`)
    .join(", ");
}

async function listView(root) {
  replace(root, h("h1", {}, "Training runs"));
  const runs = await api.get("/api/runs");
  if (!runs.length) {
    root.append(h("p", { class: "muted" }, "No runs yet: `cvcycle train --dataset NAME@V`."));
    return;
  }
  root.append(
    table(
      ["run", "status", "model", "dataset", "slices", "metrics", "produced", "started"],
      runs.map((r) => [h("a", { href: `/runs/${r.id}` }, `#${r.id}`), r.status, r.model, r.dataset, `${r.train_slice} / ${r.val_slice}`, metricText(r.metrics) || "–", r.model_versions.map((m) => h("a", { href: `/models/${m.replace("@", "/")}` }, m, " ")), fmtTime(r.created_at)]),
      { id: "runs-table" },
    ),
  );
}

async function detailView(root, id) {
  const r = await api.get(`/api/runs/${encodeURIComponent(id)}`);
  const tracker = r.tracker_url
    ? h("a", { href: r.tracker_url, target: "_blank", rel: "noopener", id: "mlflow-link" }, `open run ${r.tracker_run_id} in MLflow`)
    : r.tracker_run_id
      ? h("span", {}, `MLflow run ${r.tracker_run_id} — see it with `, h("code", {}, `mlflow ui --backend-store-uri ${r.tracking_uri}`), " (or start `cvcycle up --mlflow-url URL` to link here)")
      : h("span", { class: "muted" }, "not tracked");
  const history = r.history || [];
  const numeric = [...new Set(history.flatMap((e) => Object.keys(e).filter((k) => k !== "epoch" && typeof e[k] === "number")))];
  const losses = numeric.filter((k) => k.includes("loss"));
  const others = numeric.filter((k) => /map|recall|precision|f1/.test(k));
  const xs = history.map((e, i) => e.epoch ?? i + 1);
  replace(
    root,
    h("p", {}, h("a", { href: "/runs" }, "← runs")),
    h("h1", {}, `Run #${r.id}: ${r.model} on ${r.dataset}`),
    h(
      "div",
      { class: "two-col" },
      h("div", { class: "panel" }, keyValues([["status", r.status], ["adapter", r.adapter], ["slices", `train ${r.train_slice}, val ${r.val_slice}`], ["seed", String(r.seed)], ["code", `${r.code_version || "?"}${r.code_dirty ? " (dirty)" : ""}`], ["produced", r.model_versions.join(", ") || "–"], ["parent run", r.parent_run_id ? h("a", { href: `/runs/${r.parent_run_id}` }, `#${r.parent_run_id}`) : "–"], ["started", fmtTime(r.created_at)], ["finished", fmtTime(r.finished_at)], ["tracker", tracker]])),
      h("div", { class: "panel" }, h("h3", { style: { marginTop: 0 } }, "Metrics"), table(["metric", "value"], Object.entries(r.metrics || {}).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : fmtNum(v)]), { id: "metrics-table" })),
    ),
    r.error ? h("pre", { class: "error" }, r.error) : null,
    history.length
      ? h("div", { class: "charts" }, losses.length ? lineChart({ title: "Loss per epoch", xs, series: losses.map((k) => ({ name: k, values: history.map((e) => e[k] ?? null) })) }) : null, others.length ? lineChart({ title: "Validation quality per epoch", xs, series: others.map((k) => ({ name: k, values: history.map((e) => e[k] ?? null) })) }) : null)
      : null,
    h("h2", {}, "Config"),
    h("pre", {}, JSON.stringify(r.config, null, 2)),
    h("h2", {}, "Environment"),
    h("pre", {}, JSON.stringify(r.environment, null, 2)),
  );
}

export async function mount(root, params) {
  try {
    if (params.id) await detailView(root, params.id);
    else await listView(root);
  } catch (err) {
    root.append(errorBox(err));
  }
}
