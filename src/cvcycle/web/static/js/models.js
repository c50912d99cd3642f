// The model registry: models with their versions and aliases; one version with lineage and its gate report.
import { api, errorBox } from "./api.js";
import { fmtNum, fmtTime, h, keyValues, replace, table } from "./dom.js";

function aliasBadges(aliases) {
  return (aliases || []).map((a) => h("span", { class: "badge alias" }, a));
}

async function listView(root) {
  replace(root, h("h1", {}, "Models"));
  const models = await api.get("/api/models");
  if (!models.length) {
    root.append(h("p", { class: "muted" }, "No model versions yet: `cvcycle train`."));
    return;
  }
  for (const m of models) {
    root.append(
      h("h2", {}, m.name),
      table(
        ["version", "aliases", "adapter", "run", "artifacts", "classes", "created"],
        m.versions.map((v) => [h("a", { href: `/models/${encodeURIComponent(m.name)}/${v.version}` }, `@${v.version}`), aliasBadges(v.aliases), v.adapter, v.run_id ? h("a", { href: `/runs/${v.run_id}` }, `#${v.run_id}`) : "–", v.artifacts.join(", ") || "–", v.classes.join(", "), fmtTime(v.created_at)]),
        { class: "grid models-table" },
      ),
      h("h3", {}, "Alias history"),
      table(["when", "alias", "from", "to", "reason"], m.alias_history.map((c) => [fmtTime(c.changed_at), c.alias, c.old_version ?? "–", c.new_version ?? "–", c.reason || "–"])),
    );
  }
}

function gateView(report) {
  if (!report) return h("p", { class: "muted" }, "No gate report: this version has not been gated (`cvcycle gate`).");
  const columns = Object.keys(report.table || {});
  const metrics = [...new Set(columns.flatMap((c) => Object.keys(report.table[c].new || {}).filter((k) => typeof report.table[c].new[k] === "number")))];
  const cell = (c, role, k) => fmtNum(report.table[c]?.[role]?.[k] ?? null);
  return h(
    "div",
    { id: "gate-report" },
    h("p", {}, h("span", { class: `badge ${report.passed ? "pass" : "fail"}` }, report.verdict), ` ${report.models.new} (new) against ${report.models.old} (old), threshold ${report.criteria_file?.threshold ?? "?"}`),
    report.reasons?.length ? h("ul", {}, report.reasons.map((r) => h("li", {}, r))) : null,
    h("h3", {}, "Criteria"),
    table(
      ["#", "metric", "slice", "old", "new", "difference [95% CI]", "rule", "verdict"],
      (report.criteria || []).map((c, i) => {
        const verdict = c.skipped ? "skipped" : c.passed ? "pass" : "FAIL";
        const ci = c.ci95 ? ` [${fmtNum(c.ci95.low)}, ${fmtNum(c.ci95.high)}]` : "";
        return [String(i + 1), c.metric, c.slice, fmtNum(c.old), fmtNum(c.new), `${fmtNum(c.difference)}${ci}`, h("code", {}, c.rule), h("span", {}, h("span", { class: `badge ${c.passed ? "pass" : c.skipped ? "" : "fail"}` }, verdict), " ", c.reason)];
      }),
    ),
    h("h3", {}, "Models × data"),
    table(
      ["metric", ...columns.flatMap((c) => [`${c === "old" ? "old data" : c}: ${report.models.old}`, `${c === "old" ? "old data" : c}: ${report.models.new}`])],
      metrics.map((k) => [k, ...columns.flatMap((c) => [cell(c, "old", k), cell(c, "new", k)])]),
    ),
    h("h3", {}, "Data"),
    table(["set", "what", "frames", "boxes"], Object.entries(report.sets || {}).map(([name, s]) => [name, s.description ?? "", fmtNum(s.frames ?? null), fmtNum(s.boxes ?? null)])),
  );
}

async function detailView(root, name, version) {
  const v = await api.get(`/api/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  const run = v.run;
  replace(
    root,
    h("p", {}, h("a", { href: "/models" }, "← models")),
    h("h1", {}, v.model.ref, " ", aliasBadges(v.model.aliases)),
    h(
      "div",
      { class: "two-col" },
      h("div", { class: "panel" }, h("h3", { style: { marginTop: 0 } }, "Lineage"), keyValues([["adapter", v.model.adapter], ["classes", v.model.classes.join(", ")], ["run", run ? h("a", { href: `/runs/${run.id}` }, `#${run.id} (${run.status})`) : "–"], ["dataset", v.dataset ? h("a", { href: `/datasets/${encodeURIComponent(v.dataset.name)}` }, `${v.dataset.name}@${v.dataset.version}`) : "–"], ["slices", v.slices ? `train ${v.slices.train}, val ${v.slices.val}` : "–"], ["ancestors", v.ancestors.map((a) => `run #${a.id}`).join(" ← ") || "–"], ["created", fmtTime(v.model.created_at)]])),
      h("div", { class: "panel" }, h("h3", { style: { marginTop: 0 } }, "Artifacts"), Object.keys(v.artifacts || {}).length === 0 ? h("p", { class: "muted" }, "None yet: `cvcycle model export`.") : table(["kind", "blob"], Object.entries(v.artifacts || {}).map(([k, a]) => [k, h("code", {}, a && a.key ? `${a.key.slice(0, 12)}… ${fmtNum(a.size)} B` : JSON.stringify(a))])), v.verification ? h("p", {}, `export verification: ${v.verification.passed === false ? "FAILED" : "passed"}`) : null),
    ),
    h("h2", {}, "Gate report"),
    gateView(v.gate_report),
  );
}

export async function mount(root, params) {
  try {
    if (params.name) await detailView(root, params.name, params.version);
    else await listView(root);
  } catch (err) {
    root.append(errorBox(err));
  }
}
