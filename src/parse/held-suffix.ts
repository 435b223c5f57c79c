// Shared by the streaming parsers: how much of a buffer's tail might be the start of a marker
// that the next chunk completes, and so must not be released yet.

/** Length of the longest suffix of `text` that is a proper prefix of one of `markers`. */
export function partialMarkerLength(text: string, markers: readonly string[]): number {
  let best = 0;
  for (const marker of markers) {
    const longest = Math.min(marker.length - 1, text.length);
    for (let len = longest; len > best; len--) {
      if (text.endsWith(marker.slice(0, len))) {
        best = len;
        break;
      }
    }
  }
  return best;
}
