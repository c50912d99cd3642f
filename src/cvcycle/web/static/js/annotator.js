// Who is annotating, and the stylesheet the annotation screens share (kept in the browser).
import { h } from "./dom.js";

const USER_KEY = "cvcycle.annotator";

/** Who is annotating: ?as=<name> (remembered), else the remembered name, else "annotator". */
export function annotatorName(query = new URLSearchParams(location.search)) {
  const asked = query.get("as");
  if (asked) localStorage.setItem(USER_KEY, asked);
  return localStorage.getItem(USER_KEY) || "annotator";
}

export function rememberAnnotator(name) {
  localStorage.setItem(USER_KEY, name);
}

/** The screen's own stylesheet, loaded once beside the shared app.css. */
export function useStylesheet(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href }));
}
