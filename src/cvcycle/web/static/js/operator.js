// What the operator screens share: who is reporting (kept in the browser) and verdict badges.
import { h } from "./dom.js";

export const VERDICT_LABELS = {
  confirmed: "confirmed",
  false_detection: "false detection",
  inaccurate_detection: "inaccurate",
  missed_detection: "missed",
};

const KEY = "cvcycle.operator";

export function operatorName() {
  return localStorage.getItem(KEY) || "operator";
}

export function operatorInput() {
  const input = h("input", { type: "text", value: operatorName(), size: 14, "aria-label": "operator name" });
  input.addEventListener("change", () => localStorage.setItem(KEY, input.value.trim() || "operator"));
  return h("label", { class: "muted" }, "operator ", input);
}

export function verdictBadges(types) {
  const counts = new Map();
  for (const t of types || []) counts.set(t, (counts.get(t) || 0) + 1);
  return [...counts].map(([t, n]) => h("span", { class: `badge ${t}` }, n > 1 ? `${VERDICT_LABELS[t] || t} ×${n}` : VERDICT_LABELS[t] || t));
}
