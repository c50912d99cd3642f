// Screen hotkeys: one table per screen, shown in the UI, ignored while the user types in a field.
import { h } from "./dom.js";

function typing(event) {
  const el = event.target;
  return el instanceof HTMLElement && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

/**
 * bindKeys({c: {label: "confirm", run: fn}, ArrowDown: {...}}) -> unbind.
 * Keys are KeyboardEvent.key values; "Escape" works even inside fields.
 */
export function bindKeys(keys) {
  const onKey = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event) && event.key !== "Escape") return;
    const entry = keys[event.key] || keys[event.key.toLowerCase()];
    if (!entry) return;
    event.preventDefault();
    entry.run(event);
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}

/** The legend of a key table: <kbd>c</kbd> confirm · ... (entries with hidden: true are left out). */
export function keyLegend(keys) {
  const shown = Object.entries(keys).filter(([, e]) => !e.hidden);
  return h(
    "div",
    { class: "keys", "aria-label": "keyboard shortcuts" },
    shown.map(([key, e]) => h("span", { class: "key" }, h("kbd", {}, e.display || key), " ", e.label)),
  );
}
