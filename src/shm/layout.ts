/** Helpers for laying out shared words. Each structure's own layout lives beside its accessors. */

/** Int32 words in one 64-byte cache line: hot words of different threads sit this far apart. */
export const LINE_WORDS = 16;

export function sharedInt32(words: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Math.max(1, words) * 4));
}

/** Round a word count up to whole cache lines. */
export function lineAlign(words: number): number {
  return Math.ceil(words / LINE_WORDS) * LINE_WORDS;
}
