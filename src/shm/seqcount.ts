/**
 * A sequence counter (the kernel's seqcount_t) over one Int32 word: odd while a writer is inside.
 * Writers must already be serialised (by a lock); readers retry. Arithmetic wraps modulo 2^32 and
 * the parity test `s & 1` holds for negative values too.
 */

export function seqWriteBegin(w: Int32Array, i: number): void {
  Atomics.add(w, i, 1);
}

export function seqWriteEnd(w: Int32Array, i: number): void {
  Atomics.add(w, i, 1);
}

/** Wait (spinning) until no writer is inside, and return the even sequence value. */
export function seqReadBegin(w: Int32Array, i: number): number {
  for (;;) {
    const s = Atomics.load(w, i);
    if ((s & 1) === 0) return s;
  }
}

/**
 * True if a writer entered since `start`: the reader's copy may be torn and must be retaken.
 * The Atomics.load is a sequentially consistent read, so the plain reads the reader made before it
 * are ordered before it (the happens-before edge that validates them).
 */
export function seqReadRetry(w: Int32Array, i: number, start: number): boolean {
  return Atomics.load(w, i) !== start;
}
