// The annotation tool's canvas: it shows one image with boxes on it and lets a person draw, move, resize, zoom and pan.
//
// Boxes are plain objects {id, cls, box: {x, y, w, h}} in image pixels, plus optional `dashed`
// (an interpolated track box) and `source` ("pseudo" boxes are drawn dashed and thin until touched).
// The canvas never changes the caller's boxes: it reports a finished gesture through
// onChange({kind: "create" | "move" | "resize", id, box}) and the caller decides what the model is.

const HANDLE = 7; // handle half-size in screen pixels
const MIN_SIZE = 2; // smallest box side in image pixels

export const PALETTE = ["#4cc9f0", "#f72585", "#b5e48c", "#ffb703", "#9b5de5", "#00f5d4", "#fb8500", "#e0e1dd"];

export class BoxEditor {
  constructor(canvas, { onChange = () => {}, onSelect = () => {}, colorOf = () => PALETTE[0] } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.onSelect = onSelect;
    this.colorOf = colorOf;
    this.image = null;
    this.width = 1;
    this.height = 1;
    this.boxes = [];
    this.overlay = []; // someone else's boxes, drawn for comparison (conflicts)
    this.selected = null;
    this.tool = "select";
    this.grid = false;
    this.readOnly = false;
    this.scale = 1;
    this.offsetX = 0;
    this.offsetY = 0;
    this.drag = null;
    this.spaceDown = false;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(canvas.parentElement);
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    canvas.addEventListener("pointerup", (e) => this.pointerUp(e));
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    this.resize();
  }

  destroy() {
    this.resizeObserver.disconnect();
  }

  resize() {
    const parent = this.canvas.parentElement;
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, parent.clientWidth);
    const h = Math.max(1, parent.clientHeight);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.canvas.width = Math.round(w * ratio);
    this.canvas.height = Math.round(h * ratio);
    this.ratio = ratio;
    if (!this.fitted) this.fit();
    this.render();
  }

  setImage(image, width, height) {
    const sizeChanged = width !== this.width || height !== this.height;
    this.image = image;
    this.width = width;
    this.height = height;
    if (sizeChanged || !this.fitted) this.fit();
    this.render();
  }

  setBoxes(boxes, overlay = this.overlay) {
    this.boxes = boxes;
    this.overlay = overlay;
    if (this.selected && !boxes.some((b) => b.id === this.selected)) this.selected = null;
    this.render();
  }

  select(id) {
    this.selected = id;
    this.onSelect(id);
    this.render();
  }

  // -- view ----------------------------------------------------------------------------------

  cssSize() {
    return [this.canvas.width / this.ratio, this.canvas.height / this.ratio];
  }

  fit() {
    const [w, h] = this.cssSize();
    this.scale = Math.min(w / this.width, h / this.height) * 0.96;
    this.offsetX = (w - this.width * this.scale) / 2;
    this.offsetY = (h - this.height * this.scale) / 2;
    this.fitted = w > 1;
    this.render();
  }

  zoomAt(factor, sx, sy) {
    const next = Math.min(40, Math.max(0.05, this.scale * factor));
    const [ix, iy] = this.toImage(sx, sy);
    this.scale = next;
    this.offsetX = sx - ix * next;
    this.offsetY = sy - iy * next;
    this.render();
  }

  /** Screen (CSS pixels, relative to the canvas) of an image point. */
  toScreen(x, y) {
    return [this.offsetX + x * this.scale, this.offsetY + y * this.scale];
  }

  toImage(sx, sy) {
    return [(sx - this.offsetX) / this.scale, (sy - this.offsetY) / this.scale];
  }

  // -- gestures ------------------------------------------------------------------------------

  eventPoint(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  hit(sx, sy) {
    // Handles of the selected box first, then the smallest box under the pointer.
    const sel = this.boxes.find((b) => b.id === this.selected);
    if (sel && !this.readOnly) {
      for (const [name, hx, hy] of this.handles(sel.box)) {
        if (Math.abs(sx - hx) <= HANDLE + 2 && Math.abs(sy - hy) <= HANDLE + 2) return { box: sel, handle: name };
      }
    }
    const [ix, iy] = this.toImage(sx, sy);
    const under = this.boxes
      .filter((b) => ix >= b.box.x && ix <= b.box.x + b.box.w && iy >= b.box.y && iy <= b.box.y + b.box.h)
      .sort((a, b) => a.box.w * a.box.h - b.box.w * b.box.h);
    return under.length ? { box: under[0], handle: null } : null;
  }

  handles(box) {
    const [x0, y0] = this.toScreen(box.x, box.y);
    const [x1, y1] = this.toScreen(box.x + box.w, box.y + box.h);
    const mx = (x0 + x1) / 2;
    const my = (y0 + y1) / 2;
    return [
      ["nw", x0, y0], ["n", mx, y0], ["ne", x1, y0], ["e", x1, my],
      ["se", x1, y1], ["s", mx, y1], ["sw", x0, y1], ["w", x0, my],
    ];
  }

  pointerDown(e) {
    const [sx, sy] = this.eventPoint(e);
    this.canvas.setPointerCapture(e.pointerId);
    if (e.button === 1 || e.button === 2 || this.spaceDown) {
      this.drag = { kind: "pan", sx, sy, ox: this.offsetX, oy: this.offsetY };
      return;
    }
    const [ix, iy] = this.toImage(sx, sy);
    if (this.tool === "draw" && !this.readOnly) {
      this.drag = { kind: "create", ix, iy, box: { x: ix, y: iy, w: 0, h: 0 } };
      return;
    }
    const hit = this.hit(sx, sy);
    if (!hit) {
      this.select(null);
      this.drag = { kind: "pan", sx, sy, ox: this.offsetX, oy: this.offsetY };
      return;
    }
    if (hit.box.id !== this.selected) this.select(hit.box.id);
    if (this.readOnly) return;
    this.drag = {
      kind: hit.handle ? "resize" : "move",
      handle: hit.handle,
      id: hit.box.id,
      ix,
      iy,
      start: { ...hit.box.box },
      box: { ...hit.box.box },
    };
  }

  pointerMove(e) {
    const [sx, sy] = this.eventPoint(e);
    const d = this.drag;
    if (!d) {
      this.canvas.style.cursor = this.cursorAt(sx, sy);
      return;
    }
    if (d.kind === "pan") {
      this.offsetX = d.ox + (sx - d.sx);
      this.offsetY = d.oy + (sy - d.sy);
      this.render();
      return;
    }
    const [ix, iy] = this.toImage(sx, sy);
    if (d.kind === "create") {
      const x0 = clamp(Math.min(d.ix, ix), 0, this.width);
      const y0 = clamp(Math.min(d.iy, iy), 0, this.height);
      const x1 = clamp(Math.max(d.ix, ix), 0, this.width);
      const y1 = clamp(Math.max(d.iy, iy), 0, this.height);
      d.box = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    } else if (d.kind === "move") {
      const s = d.start;
      d.box = {
        x: clamp(s.x + ix - d.ix, 0, this.width - s.w),
        y: clamp(s.y + iy - d.iy, 0, this.height - s.h),
        w: s.w,
        h: s.h,
      };
    } else if (d.kind === "resize") {
      d.box = resized(d.start, d.handle, ix - d.ix, iy - d.iy, this.width, this.height);
    }
    this.render();
  }

  pointerUp(e) {
    const d = this.drag;
    this.drag = null;
    if (!d || d.kind === "pan") return;
    const b = roundBox(d.box);
    if (d.kind === "create") {
      if (b.w >= MIN_SIZE && b.h >= MIN_SIZE) this.onChange({ kind: "create", id: null, box: b });
      this.render();
      return;
    }
    const s = d.start;
    if (b.x !== s.x || b.y !== s.y || b.w !== s.w || b.h !== s.h) this.onChange({ kind: d.kind, id: d.id, box: b });
    this.render();
  }

  cursorAt(sx, sy) {
    if (this.tool === "draw") return "crosshair";
    const hit = this.hit(sx, sy);
    if (!hit) return "grab";
    if (!hit.handle) return this.readOnly ? "pointer" : "move";
    return { n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize", nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize" }[hit.handle];
  }

  wheel(e) {
    e.preventDefault();
    const [sx, sy] = this.eventPoint(e);
    this.zoomAt(Math.exp(-e.deltaY * 0.0015), sx, sy);
  }

  // -- drawing -------------------------------------------------------------------------------

  render() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const [w, h] = this.cssSize();
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.fillStyle = getComputedStyle(this.canvas).getPropertyValue("--stage-bg") || "#111";
    ctx.fillRect(0, 0, w, h);
    if (this.image) {
      ctx.imageSmoothingEnabled = this.scale < 2;
      ctx.drawImage(this.image, this.offsetX, this.offsetY, this.width * this.scale, this.height * this.scale);
    }
    if (this.grid) this.drawGrid();
    for (const o of this.overlay) this.drawBox(o, { color: "#ff9f1c", dash: [6, 4], label: o.label || `theirs: ${o.cls}`, below: true });
    const dragging = this.drag && this.drag.id;
    for (const b of this.boxes) {
      const box = dragging === b.id ? { ...b, box: this.drag.box } : b;
      this.drawBox(box, { selected: b.id === this.selected });
    }
    if (this.drag && this.drag.kind === "create") this.drawBox({ cls: "", box: this.drag.box }, { color: "#fff", dash: [4, 3] });
    this.drawn = (this.drawn || 0) + 1;
    this.afterDraw?.();
  }

  drawGrid() {
    const ctx = this.ctx;
    const step = niceStep(Math.max(this.width, this.height) / 12);
    ctx.save();
    ctx.strokeStyle = "rgba(255,255,255,0.18)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = step; x < this.width; x += step) {
      const [sx] = this.toScreen(x, 0);
      ctx.moveTo(Math.round(sx) + 0.5, this.offsetY);
      ctx.lineTo(Math.round(sx) + 0.5, this.offsetY + this.height * this.scale);
    }
    for (let y = step; y < this.height; y += step) {
      const [, sy] = this.toScreen(0, y);
      ctx.moveTo(this.offsetX, Math.round(sy) + 0.5);
      ctx.lineTo(this.offsetX + this.width * this.scale, Math.round(sy) + 0.5);
    }
    ctx.stroke();
    ctx.restore();
  }

  drawBox(b, { selected = false, color = null, dash = null, label = null, below = false } = {}) {
    const ctx = this.ctx;
    const [x0, y0] = this.toScreen(b.box.x, b.box.y);
    const bw = b.box.w * this.scale;
    const bh = b.box.h * this.scale;
    const c = color || this.colorOf(b.cls);
    ctx.save();
    ctx.strokeStyle = c;
    ctx.lineWidth = selected ? 2.5 : b.source === "pseudo" ? 1.25 : 1.75;
    ctx.setLineDash(dash || (b.dashed || b.source === "pseudo" ? [5, 4] : []));
    ctx.strokeRect(x0, y0, bw, bh);
    if (selected) {
      ctx.fillStyle = `${c}22`;
      ctx.fillRect(x0, y0, bw, bh);
    }
    const text = label ?? (b.label || b.cls);
    if (text) {
      ctx.setLineDash([]);
      ctx.font = "12px system-ui, sans-serif";
      const tw = ctx.measureText(text).width + 8;
      // Compared boxes (theirs, other annotators') carry their label under the box, so two
      // labels on nearly the same box stay readable.
      const ty = below ? y0 + bh : y0 - 16;
      ctx.fillStyle = c;
      ctx.fillRect(x0, ty, tw, 16);
      ctx.fillStyle = "#111";
      ctx.fillText(text, x0 + 4, ty + 12);
    }
    if (selected && !this.readOnly) {
      ctx.setLineDash([]);
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = c;
      for (const [, hx, hy] of this.handles(b.box)) {
        ctx.fillRect(hx - HANDLE / 2, hy - HANDLE / 2, HANDLE, HANDLE);
        ctx.strokeRect(hx - HANDLE / 2, hy - HANDLE / 2, HANDLE, HANDLE);
      }
    }
    ctx.restore();
  }
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

function roundBox(b) {
  const r = (v) => Math.round(v * 10) / 10;
  return { x: r(b.x), y: r(b.y), w: r(b.w), h: r(b.h) };
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

/** The box after dragging `handle` by (dx, dy) image pixels, kept inside the image and non-empty. */
export function resized(start, handle, dx, dy, width, height) {
  let x0 = start.x;
  let y0 = start.y;
  let x1 = start.x + start.w;
  let y1 = start.y + start.h;
  if (handle.includes("w")) x0 = clamp(x0 + dx, 0, x1 - MIN_SIZE);
  if (handle.includes("e")) x1 = clamp(x1 + dx, x0 + MIN_SIZE, width);
  if (handle.includes("n")) y0 = clamp(y0 + dy, 0, y1 - MIN_SIZE);
  if (handle.includes("s")) y1 = clamp(y1 + dy, y0 + MIN_SIZE, height);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}
