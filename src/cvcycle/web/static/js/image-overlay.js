// An image with boxes drawn over it (SVG in the image's pixel coordinates), and drawing a new box
// by dragging. Used by the operator panel and the missed-detection queue.
import { h, s } from "./dom.js";

const MIN_BOX_PX = 2;

export class BoxStage {
  constructor() {
    this.width = 1;
    this.height = 1;
    this.img = h("img", { alt: "event image", draggable: "false" });
    this.svg = s("svg", { class: "overlay", preserveAspectRatio: "none" });
    this.root = h("div", { class: "stage" }, this.img, this.svg);
    this.drawing = null;
  }

  /** Show the image at ``url`` whose size in pixels is ``width`` x ``height``. */
  show(url, width, height) {
    this.cancelDrawing();
    this.width = width;
    this.height = height;
    this.root.style.aspectRatio = `${width} / ${height}`;
    // As wide as the column allows, but never taller than the stage's max-height (no distortion).
    this.root.style.maxWidth = `calc(72vh * ${width / height})`;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (this.img.getAttribute("src") !== url) this.img.src = url;
  }

  /** boxes: [{box: [x, y, w, h], label, kind: "model" | "selected" | "report" | "false", onclick}] */
  setBoxes(boxes) {
    const stroke = Math.max(1.5, this.width / 320);
    const font = Math.max(8, this.width / 42);
    this.svg.replaceChildren(
      ...boxes.map((b) => {
        const [x, y, w, hgt] = b.box;
        const group = s("g", { class: `box ${b.kind || "model"}`, onclick: b.onclick });
        group.append(s("rect", { x, y, width: w, height: hgt, "stroke-width": stroke }));
        if (b.label) {
          const ty = y > font + 2 ? y - 3 : y + hgt + font;
          // A label of a box in the right half ends at the box's right edge, so it stays in view.
          const right = x + w / 2 > this.width / 2;
          const attrs = { x: right ? x + w - 1 : x + 1, y: ty, "font-size": font, "text-anchor": right ? "end" : "start" };
          group.append(s("text", attrs, b.label));
        }
        return group;
      }),
    );
    if (this.drawing) this.svg.append(this.drawing.rect);
  }

  _point(event) {
    const rect = this.svg.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * this.width) / rect.width;
    const y = ((event.clientY - rect.top) * this.height) / rect.height;
    return [Math.min(Math.max(x, 0), this.width), Math.min(Math.max(y, 0), this.height)];
  }

  /** Let the user drag a box; resolves to {x, y, w, h} in image pixels, or null when cancelled. */
  draw() {
    this.cancelDrawing();
    this.root.classList.add("drawing");
    return new Promise((resolve) => {
      const rect = s("rect", { class: "draft", x: 0, y: 0, width: 0, height: 0 });
      let start = null;
      const finish = (result) => {
        this.svg.removeEventListener("pointerdown", down);
        this.svg.removeEventListener("pointermove", move);
        this.svg.removeEventListener("pointerup", up);
        rect.remove();
        this.root.classList.remove("drawing");
        this.drawing = null;
        resolve(result);
      };
      const box = (event) => {
        const [x1, y1] = this._point(event);
        const [x0, y0] = start;
        return { x: Math.min(x0, x1), y: Math.min(y0, y1), w: Math.abs(x1 - x0), h: Math.abs(y1 - y0) };
      };
      const down = (event) => {
        event.preventDefault();
        this.svg.setPointerCapture?.(event.pointerId);
        start = this._point(event);
        rect.setAttribute("stroke-width", Math.max(1.5, this.width / 320));
        this.svg.append(rect);
      };
      const move = (event) => {
        if (!start) return;
        const b = box(event);
        rect.setAttribute("x", b.x);
        rect.setAttribute("y", b.y);
        rect.setAttribute("width", b.w);
        rect.setAttribute("height", b.h);
      };
      const up = (event) => {
        if (!start) return;
        const b = box(event);
        start = null;
        if (b.w < MIN_BOX_PX || b.h < MIN_BOX_PX) {
          rect.remove();
          return; // a click, not a drag: keep waiting for a box
        }
        const round = (v) => Math.round(v * 10) / 10;
        finish({ x: round(b.x), y: round(b.y), w: round(b.w), h: round(b.h) });
      };
      this.svg.addEventListener("pointerdown", down);
      this.svg.addEventListener("pointermove", move);
      this.svg.addEventListener("pointerup", up);
      this.drawing = { rect, cancel: () => finish(null) };
    });
  }

  cancelDrawing() {
    if (this.drawing) this.drawing.cancel();
  }
}
