// The feedback dashboard: false, inaccurate and missed detections per day x model version x source,
// as counts and rates, and the annotators' throughput.
import { api, errorBox } from "./api.js";
import { barChart } from "./charts.js";
import { fmtNum, fmtRate, h, replace, table } from "./dom.js";

const COUNTS = ["events", "detections", "sampled", "frames_reviewed", "confirmed", "false_detection", "inaccurate_detection", "missed_detection", "detections_reviewed"];
const REFRESH_MS = 15000;

/** Missed objects per reviewed frame: a count per frame, not a share (a frame can hide several). */
function perFrame(value) {
  return value === null || value === undefined ? "n/a" : value.toFixed(2);
}

function modelOf(row) {
  return `${row.model_name}@${row.model_version}`;
}

function withRates(sum) {
  const ratio = (a, b) => (b ? a / b : null);
  return {
    ...sum,
    false_rate: ratio(sum.false_detection, sum.detections_reviewed),
    inaccurate_rate: ratio(sum.inaccurate_detection, sum.detections_reviewed),
    missed_rate: ratio(sum.missed_detection, sum.frames_reviewed),
  };
}

function total(rows) {
  const sum = Object.fromEntries(COUNTS.map((k) => [k, 0]));
  for (const row of rows) for (const k of COUNTS) sum[k] += row[k];
  return withRates(sum);
}

export async function mount(root) {
  const sourceSelect = h("select", { "aria-label": "source", onchange: () => draw() });
  const body = h("div");
  let rows = [];
  let throughput = [];

  replace(
    root,
    h("div", { class: "row" }, h("h1", { style: { margin: 0 } }, "Feedback dashboard"), h("span", { class: "spacer" }), h("label", {}, "source ", sourceSelect), h("button", { onclick: () => load() }, "Refresh")),
    h("p", { class: "muted" }, "What operators found in production, per UTC day and model version. Rates: false and inaccurate per reviewed detection; missed per reviewed frame."),
    body,
  );

  function draw() {
    const source = sourceSelect.value;
    const chosen = source ? rows.filter((r) => r.source === source) : rows;
    const days = [...new Set(chosen.map((r) => r.day))].sort();
    const models = [...new Set(chosen.map(modelOf))].sort();
    const cells = new Map();
    for (const model of models) {
      for (const day of days) {
        const group = chosen.filter((r) => modelOf(r) === model && r.day === day);
        if (group.length) cells.set(`${model}|${day}`, total(group));
      }
    }
    const series = (metric) =>
      models.map((model) => ({ name: model, values: Object.fromEntries(days.map((d) => [d, cells.get(`${model}|${d}`)?.[metric] ?? null])) }));
    const all = total(chosen);
    const tile = (key, label, value) => h("div", { class: "tile", dataset: { stat: key } }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
    const pct = (v) => `${Math.round(v * 1000) / 10}%`;
    replace(
      body,
      h(
        "div",
        { class: "tiles" },
        tile("events", "events", fmtNum(all.events)),
        tile("detections_reviewed", "detections reviewed", fmtNum(all.detections_reviewed)),
        tile("frames_reviewed", "frames reviewed", fmtNum(all.frames_reviewed)),
        tile("false_detection", `false detections · ${fmtRate(all.false_rate)}`, fmtNum(all.false_detection)),
        tile("inaccurate_detection", `inaccurate · ${fmtRate(all.inaccurate_rate)}`, fmtNum(all.inaccurate_detection)),
        tile("missed_detection", `missed · ${perFrame(all.missed_rate)} per reviewed frame`, fmtNum(all.missed_detection)),
      ),
      h(
        "div",
        { class: "charts" },
        barChart({ title: "False detections per day", categories: days, series: series("false_detection") }),
        barChart({ title: "Inaccurate detections per day", categories: days, series: series("inaccurate_detection") }),
        barChart({ title: "Missed detections per day", categories: days, series: series("missed_detection") }),
        barChart({ title: "False detection rate", categories: days, series: series("false_rate"), format: pct }),
        barChart({ title: "Inaccurate detection rate", categories: days, series: series("inaccurate_rate"), format: pct }),
        barChart({ title: "Missed per reviewed frame", categories: days, series: series("missed_rate"), format: (v) => (Math.round(v * 1000) / 1000).toString() }),
      ),
      h("h2", {}, "Per source"),
      h("div", { class: "charts" }, bySource(chosen)),
      h("h2", {}, "Per day, model version and source"),
      table(
        ["day", "model", "source", "events", "detections reviewed", "frames reviewed", "false", "inaccurate", "missed", "false rate", "inaccurate rate", "missed per frame"],
        chosen.map((r) => [r.day, modelOf(r), r.source, fmtNum(r.events), fmtNum(r.detections_reviewed), fmtNum(r.frames_reviewed), fmtNum(r.false_detection), fmtNum(r.inaccurate_detection), fmtNum(r.missed_detection), fmtRate(r.false_rate), fmtRate(r.inaccurate_rate), perFrame(r.missed_rate)]),
        { id: "stats-table" },
      ),
      h("h2", {}, "Annotation throughput"),
      throughputView(),
    );
  }

  /** What operators found per source and model version: where each model does worst. */
  function bySource(chosen) {
    const sources = [...new Set(chosen.map((r) => r.source))].sort();
    const models = [...new Set(chosen.map(modelOf))].sort();
    const chart = (metric, title, format) =>
      barChart({
        title,
        categories: sources,
        format,
        series: models.map((model) => ({
          name: model,
          values: Object.fromEntries(sources.map((src) => {
            const group = chosen.filter((r) => r.source === src && modelOf(r) === model);
            return [src, group.length ? total(group)[metric] : null];
          })),
        })),
      });
    return [
      chart("false_rate", "False detection rate per source", (v) => `${Math.round(v * 1000) / 10}%`),
      chart("missed_rate", "Missed per reviewed frame, per source", (v) => (Math.round(v * 1000) / 1000).toString()),
    ];
  }

  function throughputView() {
    if (!throughput.length) return h("p", { class: "muted" }, "No annotation task finished yet.");
    const days = [...new Set(throughput.map((r) => r.day))].sort();
    const people = [...new Set(throughput.map((r) => r.annotator))].sort();
    const values = (who, key) => Object.fromEntries(days.map((d) => [d, throughput.find((r) => r.day === d && r.annotator === who)?.[key] ?? null]));
    return h(
      "div",
      { class: "two-col" },
      barChart({ title: "Items finished per annotator", categories: days, series: people.map((p) => ({ name: p, values: values(p, "tasks") })) }),
      table(["day", "annotator", "items finished", "labels", "rejected"], throughput.map((r) => [r.day, r.annotator, fmtNum(r.tasks), fmtNum(r.labels), fmtNum(r.rejected)]), { id: "throughput-table" }),
    );
  }

  async function load() {
    try {
      [rows, throughput] = await Promise.all([api.get("/api/feedback/stats"), api.get("/api/feedback/throughput")]);
      const chosen = sourceSelect.value;
      const sources = [...new Set(rows.map((r) => r.source))].sort();
      replace(sourceSelect, h("option", { value: "" }, "all sources"), sources.map((s) => h("option", { value: s, selected: s === chosen }, s)));
      draw();
    } catch (err) {
      replace(body, errorBox(err));
    }
  }

  await load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
