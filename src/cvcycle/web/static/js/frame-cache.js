// Frames of a video by index, decoded off the main thread (createImageBitmap) and kept in an LRU.
//
// `show(i)` is "latest wins": while one frame is loading for display, further requests only
// replace the wanted index, so a fast scrub never queues hundreds of requests and the frame shown
// is always the newest one that could be fetched. `prefetch(i)` loads the frames after i in the
// background (a few at a time) so stepping and playback find them ready.

export class FrameSource {
  constructor(urlFor, { ahead = 8, keep = 96, parallel = 3 } = {}) {
    this.urlFor = urlFor;
    this.ahead = ahead;
    this.keep = keep;
    this.parallel = parallel;
    this.cache = new Map(); // index -> ImageBitmap, in use order
    this.loading = new Map(); // index -> Promise<ImageBitmap>
    this.prefetching = 0;
    this.wanted = null;
    this.busy = false;
    this.timings = []; // ms from request to decoded bitmap, for the bench
    this.keyframeOf = new Map(); // frame asked for while scrubbing -> the keyframe the server gave
  }

  has(index) {
    return this.cache.has(index);
  }

  peek(index) {
    const bitmap = this.cache.get(index);
    if (bitmap) {
      this.cache.delete(index);
      this.cache.set(index, bitmap);
    }
    return bitmap;
  }

  load(index) {
    const cached = this.peek(index);
    if (cached) return Promise.resolve(cached);
    let pending = this.loading.get(index);
    if (!pending) {
      const started = performance.now();
      pending = fetch(this.urlFor(index))
        .then((r) => {
          if (!r.ok) throw new Error(`frame ${index}: HTTP ${r.status}`);
          return r.blob();
        })
        .then((blob) => createImageBitmap(blob))
        .then((bitmap) => {
          this.timings.push(performance.now() - started);
          if (this.timings.length > 5000) this.timings.splice(0, 1000);
          this.cache.set(index, bitmap);
          this.evict();
          return bitmap;
        })
        .finally(() => this.loading.delete(index));
      this.loading.set(index, pending);
    }
    return pending;
  }

  /**
   * A cheap stand-in for frame `index` while the timeline is scrubbed: the server may answer with
   * the keyframe before it (one decode instead of up to a GOP). Resolves {index, bitmap}, where
   * index is the frame the pixels really are; they are cached as that frame.
   */
  loadNear(index) {
    if (this.cache.has(index)) return Promise.resolve({ index, bitmap: this.peek(index) });
    const known = this.keyframeOf.get(index);
    if (known !== undefined && this.cache.has(known)) return Promise.resolve({ index: known, bitmap: this.peek(known) });
    const started = performance.now();
    let got = index;
    return fetch(`${this.urlFor(index)}?near=keyframe`)
      .then((r) => {
        if (!r.ok) throw new Error(`frame ${index}: HTTP ${r.status}`);
        got = Number(r.headers.get("X-Frame-Index") ?? index);
        return r.blob();
      })
      .then((blob) => createImageBitmap(blob))
      .then((bitmap) => {
        this.timings.push(performance.now() - started);
        this.keyframeOf.set(index, got);
        if (this.keyframeOf.size > 20000) this.keyframeOf.clear();
        if (this.cache.has(got)) bitmap.close();
        else {
          this.cache.set(got, bitmap);
          this.evict();
        }
        return { index: got, bitmap: this.cache.get(got) };
      });
  }

  evict() {
    while (this.cache.size > this.keep) {
      const [oldest, bitmap] = this.cache.entries().next().value;
      this.cache.delete(oldest);
      bitmap.close();
    }
  }

  /**
   * Ask for frame `index` to be displayed; `paint(index, bitmap)` runs for the newest ready one.
   * With `near`, a keyframe before it will do (scrubbing); paint then gets the keyframe's index.
   */
  show(index, paint, { near = false } = {}) {
    this.wanted = index;
    this.wantNear = near;
    const ready = this.peek(index);
    if (ready) {
      paint(index, ready);
      return;
    }
    if (this.busy) return;
    this.busy = true;
    const next = () => {
      const target = this.wanted;
      const near = this.wantNear;
      const request = near
        ? this.loadNear(target)
        : this.load(target).then((bitmap) => ({ index: target, bitmap }));
      request
        .then((got) => {
          if (this.wanted === target || !this.cache.has(this.wanted)) paint(got.index, got.bitmap);
        })
        .catch(() => {})
        .finally(() => {
          // Done when the newest wish is what was just fetched (same frame, same exactness) or is
          // in the cache; otherwise fetch that (e.g. the exact frame once a scrub is released).
          const latest = this.peek(this.wanted);
          if (!latest && !(this.wanted === target && near === this.wantNear)) next();
          else {
            this.busy = false;
            if (latest && (this.wanted !== target || near)) paint(this.wanted, latest);
          }
        });
    };
    next();
  }

  /** Load the frames after `index` (up to `ahead`, at most `parallel` at a time), stopping at `last`. */
  prefetch(index, last) {
    this.prefetchFrom = index;
    this.prefetchLast = last;
    this.pump();
  }

  pump() {
    const from = this.prefetchFrom;
    const end = Math.min(from + this.ahead, this.prefetchLast);
    for (let i = from + 1; i <= end && this.prefetching < this.parallel; i++) {
      if (this.cache.has(i) || this.loading.has(i)) continue;
      this.prefetching++;
      this.load(i)
        .catch(() => {})
        .finally(() => {
          this.prefetching--;
          this.pump();
        });
    }
  }

  clear() {
    for (const bitmap of this.cache.values()) bitmap.close();
    this.cache.clear();
  }
}
