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
 * Writes the bytes of a vocabulary entry in the byte-level alphabet at out[at..]; a character
 * outside the alphabet (never in a byte-level vocabulary) is written as its low byte.
 */
export function writeByteLevel(token: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    out[at + i] = b < 0 ? c & 0xff : b;
  }
}
