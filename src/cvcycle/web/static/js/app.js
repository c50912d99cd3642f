// The shell: a tiny history router over ROUTES, the navigation bar, and mounting one screen at a time.
//
// A screen is an ES module exporting ``mount(root, params, query)``; it fills ``root`` and returns
// (or resolves to) a function that undoes what it set up (timers, key bindings, event streams).
// To add a screen, add a line to ROUTES; ``nav`` puts it in the navigation bar.
import { errorBox } from "./api.js";
import { h, replace } from "./dom.js";

export const ROUTES = [
  { path: "/", redirect: "/feed" },
  { path: "/feed", module: "./feed.js", nav: "Feed" },
  { path: "/feed/:event", module: "./feed.js" },
  { path: "/missed", module: "./missed.js", nav: "Missed" },
  { path: "/dashboard", module: "./dashboard.js", nav: "Dashboard" },
  { path: "/tasks", module: "./tasks.js", nav: "Tasks" },
  { path: "/review", module: "./tasks.js", nav: "Review" },
  { path: "/annotate/:task", module: "./annotate.js" },
  { path: "/timeline", module: "./timeline.js", nav: "Timeline" },
  { path: "/datasets", module: "./datasets.js", nav: "Datasets" },
  { path: "/datasets/:name", module: "./datasets.js" },
  { path: "/runs", module: "./runs.js", nav: "Runs" },
  { path: "/runs/:id", module: "./runs.js" },
  { path: "/models", module: "./models.js", nav: "Models" },
  { path: "/models/:name/:version", module: "./models.js" },
];

function match(pattern, path) {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

function resolve(path) {
  for (const route of ROUTES) {
    const params = match(route.path, path);
    if (params) return { route, params };
  }
  return null;
}

let unmount = null;
let generation = 0;

async function render() {
  const root = document.getElementById("app");
  const path = location.pathname;
  const found = resolve(path);
  if (found && found.route.redirect) {
    history.replaceState(null, "", found.route.redirect);
    return render();
  }
  const mine = ++generation;
  if (typeof unmount === "function") unmount();
  unmount = null;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", path === a.getAttribute("href") || path.startsWith(`${a.getAttribute("href")}/`));
  }
  if (!found) {
    replace(root, h("h1", {}, "Not found"), h("p", {}, `No screen at ${path}.`), h("a", { href: "/feed" }, "Go to the feed"));
    return;
  }
  replace(root, h("p", { class: "muted" }, "Loading…"));
  try {
    const screen = await import(found.route.module);
    if (mine !== generation) return;
    root.replaceChildren();
    const cleanup = await screen.mount(root, found.params, new URLSearchParams(location.search));
    if (mine !== generation) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    unmount = cleanup;
  } catch (err) {
    if (mine === generation) replace(root, errorBox(err));
    console.error(err);
  }
}

/** Go to ``path`` inside the app without reloading. */
export function navigate(path, { replace: replaceEntry = false } = {}) {
  if (replaceEntry) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const a = event.target.closest && event.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  event.preventDefault();
  if (url.pathname !== location.pathname || url.search !== location.search) navigate(url.pathname + url.search);
}

function buildNav() {
  const nav = document.getElementById("nav");
  replace(nav, ROUTES.filter((r) => r.nav).map((r) => h("a", { href: r.path }, r.nav)));
}

buildNav();
document.addEventListener("click", onClick);
window.addEventListener("popstate", render);
render();
