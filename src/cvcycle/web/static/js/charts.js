// Small hand-drawn SVG charts: grouped bars (categories x series) and lines (x steps x series).
// Labels go in as text nodes; colours come from the CSS variables --series-0 ... --series-5.
import { h, s } from "./dom.js";

const W = 520;
const H = 220;
const M = { top: 28, right: 10, bottom: 34, left: 46 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame(title, maxValue, format) {
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(s("text", { x: M.left, y: 14, class: "chart-title" }, title));
  const plotH = H - M.top - M.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (maxValue * i) / 4;
    const y = M.top + plotH - (plotH * i) / 4;
    svg.append(s("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: "gridline" }));
    svg.append(s("text", { x: M.left - 4, y: y + 3, class: "tick", "text-anchor": "end" }, format(value)));
  }
  return svg;
}

function legend(names) {
  return h(
    "div",
    { class: "legend" },
    names.map((name, i) => h("span", {}, h("i", { class: `swatch series-${i % 6}` }), name)),
  );
}

/**
 * barChart({title, categories: ["2026-11-20", ...], series: [{name, values: {category: number|null}}],
 *           format: (v) => string}) -> element
 */
export function barChart({ title, categories, series, format = (v) => String(Math.round(v * 100) / 100) }) {
  const all = series.flatMap((ser) => categories.map((c) => ser.values[c] ?? 0));
  const maxValue = niceMax(Math.max(0, ...all));
  const svg = frame(title, maxValue, format);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const group = plotW / Math.max(categories.length, 1);
  const bar = Math.max(2, Math.min(28, (group * 0.8) / Math.max(series.length, 1)));
  categories.forEach((cat, ci) => {
    const x0 = M.left + ci * group + (group - bar * series.length) / 2;
    series.forEach((ser, si) => {
      const value = ser.values[cat];
      if (value === null || value === undefined) return;
      const hgt = (plotH * value) / maxValue;
      const rect = s("rect", {
        x: x0 + si * bar,
        y: M.top + plotH - hgt,
        width: bar - 1,
        height: Math.max(hgt, value > 0 ? 1 : 0),
        class: `bar series-${si % 6}`,
      });
      rect.append(s("title", {}, `${ser.name}, ${cat}: ${format(value)}`));
      svg.append(rect);
    });
    const label = cat.length > 5 && /^\d{4}-/.test(cat) ? cat.slice(5) : cat;
    svg.append(s("text", { x: M.left + ci * group + group / 2, y: H - M.bottom + 14, class: "tick", "text-anchor": "middle" }, label));
  });
  if (!categories.length) svg.append(s("text", { x: W / 2, y: H / 2, class: "tick", "text-anchor": "middle" }, "no data yet"));
  return h("figure", { class: "chart-box" }, svg, legend(series.map((x) => x.name)));
}

/** lineChart({title, xs: [1, 2, ...], series: [{name, values: [number|null, ...]}]}) -> element */
export function lineChart({ title, xs, series, format = (v) => String(Math.round(v * 1000) / 1000) }) {
  const all = series.flatMap((ser) => ser.values.filter((v) => typeof v === "number"));
  const maxValue = niceMax(Math.max(0, ...all));
  const svg = frame(title, maxValue, format);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xAt = (i) => M.left + (xs.length > 1 ? (plotW * i) / (xs.length - 1) : plotW / 2);
  series.forEach((ser, si) => {
    const points = ser.values
      .map((v, i) => (typeof v === "number" ? `${xAt(i)},${M.top + plotH - (plotH * v) / maxValue}` : null))
      .filter(Boolean);
    if (points.length) svg.append(s("polyline", { points: points.join(" "), class: `line series-${si % 6}` }));
    for (const point of points) {
      const [cx, cy] = point.split(",");
      svg.append(s("circle", { cx, cy, r: 2.5, class: `series-${si % 6}` }));
    }
  });
  const step = Math.max(1, Math.ceil(xs.length / 10));
  xs.forEach((x, i) => {
    if (i % step === 0) svg.append(s("text", { x: xAt(i), y: H - M.bottom + 14, class: "tick", "text-anchor": "middle" }, String(x)));
  });
  return h("figure", { class: "chart-box" }, svg, legend(series.map((x) => x.name)));
}
