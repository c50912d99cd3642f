// The frame timeline of a video in the annotation tool: a ruler, action segments as bars, tracks
// with their keyframes, and the playhead. Dragging anywhere scrubs (onSeek fires for every frame
// the pointer crosses; the caller's FrameSource keeps only the newest request), clicking a bar
// selects its segment, and the wheel zooms around the pointer so a 100,000-frame video can be
// worked frame by frame.

import { PALETTE } from "./box-editor.js";

const RULER = 20;
const LANE = 18;

export class FrameTimeline {
  constructor(
    canvas,
    {
      frameCount,
      onSeek = () => {},
      onScrubEnd = () => {},
      onSelectSegment = () => {},
      onSelectTrack = () => {},
      colorOf = () => PALETTE[1],
    },
  ) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.frameCount = Math.max(1, frameCount);
    this.onSeek = onSeek;
    this.onSelectSegment = onSelectSegment;
    this.onSelectTrack = onSelectTrack;
    this.onScrubEnd = onScrubEnd;
    this.colorOf = colorOf;
    this.frame = 0;
    this.viewStart = 0;
    this.viewEnd = this.frameCount; // exclusive
    this.segments = [];
    this.tracks = [];
    this.rowOf = new Map();
    this.segmentRows = 1;
    this.selectedSegment = null;
    this.selectedTrack = null;
    this.markStart = null;
    this.scrubbing = false;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(canvas.parentElement);
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    canvas.addEventListener("pointerup", () => {
      this.scrubbing = false;
      this.onScrubEnd(this.frame);
    });
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.resize();
  }

  destroy() {
    this.resizeObserver.disconnect();
  }

  height() {
    return RULER + LANE * (this.segmentRows + Math.max(1, this.tracks.length)) + 6;
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, this.canvas.parentElement.clientWidth);
    const h = this.height();
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.canvas.width = Math.round(w * ratio);
    this.canvas.height = Math.round(h * ratio);
    this.ratio = ratio;
    this.cssWidth = w;
    this.cssHeight = h;
    this.render();
  }

  setData({ segments, tracks, selectedSegment = null, selectedTrack = null, markStart = null }) {
    this.segments = segments;
    this.tracks = tracks;
    this.selectedSegment = selectedSegment;
    this.selectedTrack = selectedTrack;
    this.markStart = markStart;
    this.segmentRows = this.layoutSegments();
    if (this.cssHeight !== this.height()) this.resize();
    this.render();
  }

  setFrame(frame) {
    this.frame = frame;
    const span = this.viewEnd - this.viewStart;
    if (frame < this.viewStart || frame >= this.viewEnd) {
      this.viewStart = Math.max(0, Math.min(this.frameCount - span, frame - Math.floor(span / 2)));
      this.viewEnd = this.viewStart + span;
    }
    this.render();
  }

  xOf(frame) {
    return ((frame - this.viewStart) / (this.viewEnd - this.viewStart)) * this.cssWidth;
  }

  frameAt(x) {
    const f = Math.floor(this.viewStart + (x / this.cssWidth) * (this.viewEnd - this.viewStart));
    return Math.max(0, Math.min(this.frameCount - 1, f));
  }

  /** Screen x (CSS pixels, relative to the canvas) of the middle of `frame`: for tests and the bench. */
  xOfFrame(frame) {
    return this.xOf(frame + 0.5);
  }

  layoutSegments() {
    // Greedy rows, so overlapping segments never hide each other.
    const ends = [];
    this.rowOf = new Map();
    for (const s of [...this.segments].sort((a, b) => a.start - b.start)) {
      let row = ends.findIndex((end) => end < s.start);
      if (row < 0) {
        row = ends.length;
        ends.push(s.end);
      } else ends[row] = s.end;
      this.rowOf.set(s.id, row);
    }
    return Math.max(1, ends.length);
  }

  segmentAt(x, y) {
    const row = Math.floor((y - RULER) / LANE);
    const frame = this.frameAt(x);
    return this.segments.find((s) => this.rowOf.get(s.id) === row && frame >= s.start && frame <= s.end);
  }

  pointerDown(e) {
    const [x, y] = this.point(e);
    this.canvas.setPointerCapture(e.pointerId);
    const seg = y >= RULER && y < RULER + LANE * this.segmentRows ? this.segmentAt(x, y) : null;
    if (seg) this.onSelectSegment(seg.id);
    const lane = Math.floor((y - RULER - LANE * this.segmentRows) / LANE);
    if (!seg && lane >= 0 && lane < this.tracks.length) this.onSelectTrack(this.tracks[lane].id);
    this.scrubbing = true;
    this.seek(this.frameAt(x));
  }

  pointerMove(e) {
    if (this.scrubbing) this.seek(this.frameAt(this.point(e)[0]));
  }

  seek(frame) {
    if (frame === this.frame) return;
    this.frame = frame;
    this.render();
    this.onSeek(frame);
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  wheel(e) {
    e.preventDefault();
    const [x] = this.point(e);
    const anchor = this.viewStart + (x / this.cssWidth) * (this.viewEnd - this.viewStart);
    const span = Math.max(20, Math.min(this.frameCount, (this.viewEnd - this.viewStart) * Math.exp(e.deltaY * 0.002)));
    this.viewStart = Math.max(0, Math.min(this.frameCount - span, anchor - (x / this.cssWidth) * span));
    this.viewEnd = this.viewStart + span;
    this.render();
  }

  render() {
    if (this.requested) return;
    this.requested = true;
    requestAnimationFrame(() => {
      this.requested = false;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const w = this.cssWidth;
    const h = this.cssHeight;
    const css = getComputedStyle(this.canvas);
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.fillStyle = css.getPropertyValue("--timeline-bg").trim() || "#1b1e24";
    ctx.fillRect(0, 0, w, h);
    this.drawRuler(ctx, css);
    ctx.font = "11px system-ui, sans-serif";
    for (let r = 0; r < this.segmentRows; r++) {
      ctx.fillStyle = "rgba(255,255,255,0.04)";
      ctx.fillRect(0, RULER + r * LANE + 1, w, LANE - 2);
    }
    for (const s of this.segments) {
      const x0 = this.xOf(s.start);
      const x1 = this.xOf(s.end + 1);
      const y = RULER + this.rowOf.get(s.id) * LANE;
      const selected = s.id === this.selectedSegment;
      ctx.fillStyle = this.colorOf(s.cls);
      ctx.globalAlpha = selected ? 1 : 0.75;
      ctx.fillRect(x0, y + 2, Math.max(2, x1 - x0), LANE - 4);
      ctx.globalAlpha = 1;
      if (selected) {
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 2;
        ctx.strokeRect(x0, y + 2, Math.max(2, x1 - x0), LANE - 4);
      }
      if (x1 - x0 > 60) {
        ctx.fillStyle = "#111";
        ctx.fillText(`${s.cls} ${s.start}–${s.end}`, Math.max(x0, 0) + 4, y + 13);
      }
    }
    if (this.markStart !== null) {
      const a = this.xOf(this.markStart);
      const b = this.xOf(this.frame + 1);
      ctx.fillStyle = "rgba(255,255,255,0.28)";
      ctx.fillRect(Math.min(a, b), RULER, Math.abs(b - a), LANE * this.segmentRows);
    }
    const trackTop = RULER + LANE * this.segmentRows;
    this.tracks.forEach((t, i) => {
      const y = trackTop + i * LANE;
      const keys = t.keyframes;
      if (!keys.length) return;
      ctx.fillStyle = this.colorOf(t.cls);
      ctx.globalAlpha = t.id === this.selectedTrack ? 0.6 : 0.3;
      const x0 = this.xOf(keys[0].frame);
      ctx.fillRect(x0, y + 6, Math.max(2, this.xOf(keys[keys.length - 1].frame + 1) - x0), LANE - 12);
      ctx.globalAlpha = 1;
      for (const k of keys) {
        const x = this.xOf(k.frame + 0.5);
        ctx.beginPath();
        ctx.moveTo(x, y + 3);
        ctx.lineTo(x + 5, y + LANE / 2);
        ctx.lineTo(x, y + LANE - 3);
        ctx.lineTo(x - 5, y + LANE / 2);
        ctx.closePath();
        ctx.fill();
      }
    });
    // The playhead: the frame's own width, faint when zoomed in, and a line through its middle.
    const px = this.xOf(this.frame);
    const pw = this.xOf(this.frame + 1) - px;
    ctx.fillStyle = css.getPropertyValue("--playhead").trim() || "#ff4d6d";
    if (pw > 4) {
      ctx.globalAlpha = 0.22;
      ctx.fillRect(px, 0, pw, h);
      ctx.globalAlpha = 1;
    }
    ctx.fillRect(px + pw / 2 - 1, 0, 2, h);
  }

  drawRuler(ctx, css) {
    const span = this.viewEnd - this.viewStart;
    const raw = span / Math.max(1, this.cssWidth / 90);
    const p = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || p;
    ctx.fillStyle = css.getPropertyValue("--muted").trim() || "#9aa0a6";
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "rgba(255,255,255,0.25)";
    ctx.beginPath();
    for (let f = Math.ceil(this.viewStart / step) * step; f < this.viewEnd; f += step) {
      const x = Math.round(this.xOf(f)) + 0.5;
      ctx.moveTo(x, RULER - 6);
      ctx.lineTo(x, RULER);
      ctx.fillText(String(f), x + 2, RULER - 8);
    }
    ctx.stroke();
  }
}
