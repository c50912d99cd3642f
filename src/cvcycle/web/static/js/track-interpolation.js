// Tracks: boxes on keyframes, linear in between; nothing outside the keyframe span.
// The same arithmetic as cvcycle/annotate/tracks.py, which writes accepted tracks into datasets.

/** The keyframe at `frame`, or undefined. */
export function keyframeAt(track, frame) {
  return track.keyframes.find((k) => k.frame === frame);
}

/** The track's box at `frame` ({x, y, w, h}), or null outside its keyframes. */
export function interpolate(track, frame) {
  const keys = track.keyframes;
  if (!keys.length || frame < keys[0].frame || frame > keys[keys.length - 1].frame) return null;
  let hi = keys.findIndex((k) => k.frame >= frame);
  if (keys[hi].frame === frame) return { ...keys[hi].box };
  const a = keys[hi - 1];
  const b = keys[hi];
  const t = (frame - a.frame) / (b.frame - a.frame);
  const lerp = (p, q) => p + (q - p) * t;
  return { x: lerp(a.box.x, b.box.x), y: lerp(a.box.y, b.box.y), w: lerp(a.box.w, b.box.w), h: lerp(a.box.h, b.box.h) };
}

/** Put (or replace) the keyframe at `frame`, keeping keyframes sorted. */
export function setKeyframe(track, frame, box) {
  const rest = track.keyframes.filter((k) => k.frame !== frame);
  rest.push({ frame, box: { ...box } });
  rest.sort((p, q) => p.frame - q.frame);
  track.keyframes = rest;
}

export function removeKeyframe(track, frame) {
  track.keyframes = track.keyframes.filter((k) => k.frame !== frame);
}
