// Datasets: the list; one dataset's summary, versions, slices, pending change and the diff of two versions.
import { api, errorBox } from "./api.js";
import { fmtNum, fmtTime, h, keyValues, replace, table } from "./dom.js";

function perClass(counts) {
  const entries = Object.entries(counts || {});
  return entries.length ? entries.map(([c, n]) => `${c} ${n}`).join(", ") : "–";
}

/** "+3 (person 3), −1 (dog 1)" for a count or per-class counts added and removed; "no change" for none. */
function change(added, removed) {
  const count = (v) => (typeof v === "number" ? v : Object.values(v || {}).reduce((a, b) => a + b, 0));
  const detail = (v) => (typeof v === "number" ? "" : ` (${perClass(v)})`);
  const parts = [];
  if (count(added)) parts.push(`+${count(added)}${detail(added)}`);
  if (count(removed)) parts.push(`−${count(removed)}${detail(removed)}`);
  return parts.join(", ") || "no change";
}

async function listView(root) {
  replace(root, h("h1", {}, "Datasets"));
  const datasets = await api.get("/api/datasets");
  if (!datasets.length) {
    root.append(h("p", { class: "muted" }, "No datasets yet: `cvcycle ingest`, `cvcycle import` or `cvcycle demo`."));
    return;
  }
  root.append(
    table(
      ["dataset", "head", "frames", "labels", "segments", "newest commit", "created"],
      datasets.map((d) => {
        const totals = d.stats?.totals || {};
        return [h("a", { href: `/datasets/${encodeURIComponent(d.name)}` }, d.name), d.head ? `@${d.head}` : "working copy only", fmtNum(totals.frames ?? 0), fmtNum(totals.labels ?? 0), fmtNum(totals.segments ?? 0), d.message || "–", fmtTime(d.created_at)];
      }),
      { id: "datasets-table" },
    ),
  );
}

function diffView(diff) {
  const part = (name, p) => [name, fmtNum(p.added.count), fmtNum(p.removed.count), p.changed ? fmtNum(p.changed.count) : "–", p.added.per_class ? perClass(p.added.per_class) : "", p.removed.per_class ? perClass(p.removed.per_class) : ""];
  return h(
    "div",
    { id: "diff" },
    h("h3", {}, `${diff.dataset}@${diff.from} → @${diff.to}`),
    table(["", "added", "removed", "changed", "added per class", "removed per class"], [part("frames", diff.frames), part("labels", diff.labels), part("segments", diff.segments), part("tags", diff.tags)]),
  );
}

async function detailView(root, name) {
  const d = await api.get(`/api/datasets/${encodeURIComponent(name)}`);
  const s = d.summary;
  const versions = d.versions.map((v) => v.version);
  const working = d.head + 1;
  const pick = (value) => h("select", {}, [...versions, working].map((v) => h("option", { value: v, selected: v === value }, v === working ? `${v} (working copy)` : `@${v}`)));
  const from = pick(versions.length > 1 ? versions[1] : versions[0] ?? working);
  const to = pick(versions.length > 1 ? versions[0] : working);
  const diffBox = h("div");
  const showDiff = async () => {
    try {
      replace(diffBox, diffView(await api.get(`/api/datasets/${encodeURIComponent(name)}/diff`, { from: from.value, to: to.value })));
    } catch (err) {
      replace(diffBox, errorBox(err));
    }
  };
  const pendingChange = d.working_copy;
  replace(
    root,
    h("p", {}, h("a", { href: "/datasets" }, "← datasets")),
    h("h1", {}, s.version ? `${name}@${s.version}` : `${name} (working copy)`),
    h(
      "div",
      { class: "two-col" },
      h("div", { class: "panel" }, keyValues([["frames", fmtNum(s.frames)], ["media", fmtNum(s.media)], ["splits", Object.entries(s.splits).map(([k, v]) => `${k} ${v}`).join(", ")], ["boxes", `${fmtNum(s.labels.total)} (${perClass(s.labels.per_class)})`], ["action segments", `${fmtNum(s.segments.total)} (${perClass(s.segments.per_class)})`]])),
      h("div", { class: "panel" }, h("h3", { style: { marginTop: 0 } }, "Working copy (not committed)"), keyValues([["frames", change(pendingChange.frames.added, pendingChange.frames.removed)], ["labels", change(pendingChange.labels.added, pendingChange.labels.removed)], ["segments", change(pendingChange.segments.added, pendingChange.segments.removed)]])),
    ),
    h("h2", {}, "Versions"),
    table(["version", "message", "author", "committed", "frames", "labels", "change"], d.versions.map((v) => [`@${v.version}`, v.message || "–", v.author || "–", fmtTime(v.created_at), fmtNum(v.stats.totals?.frames ?? 0), fmtNum(v.stats.totals?.labels ?? 0), `+${v.stats.change?.frames?.added ?? 0} frames, +${perClass(v.stats.change?.labels?.added)} labels`]), { id: "versions-table" }),
    h("h2", {}, "Diff"),
    h("div", { class: "row" }, "from ", from, " to ", to, h("button", { onclick: showDiff }, "Show diff")),
    diffBox,
    h("h2", {}, "Slices"),
    table(["slice", "kind", "definition"], d.slices.map((sl) => [sl.name, sl.kind, sl.filter ?? (typeof sl.frames === "number" ? `${sl.frames} frames` : "every frame")])),
  );
  if (versions.length) showDiff();
}

export async function mount(root, params) {
  try {
    if (params.name) await detailView(root, params.name);
    else await listView(root);
  } catch (err) {
    root.append(errorBox(err));
  }
}
