// GPT-2's byte-level alphabet: every byte 0..255 gets a printable character so that BPE
// vocabularies can be stored as text. Printable Latin-1 bytes map to themselves, the rest are
// shifted to U+0100 and above in byte order (the same table as tokenizers' bytes_char()).

function buildByteToChar(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

/** byte -> its character in the byte-level alphabet. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** UTF-16 code unit of a byte-level character -> byte, or -1 when the character is not in the alphabet. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => (t[c.charCodeAt(0)] = b));
  return t;
})();

/**
 * Bytes of a vocabulary entry written in the byte-level alphabet, or null when it holds a
 * character outside the alphabet (only added tokens do; their bytes are their UTF-8 text).
 */
export function byteLevelToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}
