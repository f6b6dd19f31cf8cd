/**
 * The `hmm_pfns` encoding (include/linux/hmm.h, v5.10): one 64-bit kernel word per page, flags in
 * the top byte, the PFN below. hmmsim stores each word as TWO Int32 slots `[lo, hi]`, the kernel
 * word in little-endian order, so `new BigUint64Array(pfns.buffer, pfns.byteOffset, n)` shows the
 * exact kernel words on a little-endian machine:
 *   lo (bits 0..31)  = the PFN (PFNs are < 2^24 in hmmsim);
 *   hi (bits 32..63) = VALID (hi bit 31), WRITE (30), ERROR (29), map order (hi bits 24..28).
 * The walk works on the hi word only (plain int32 bit operations, no BigInt); the bigint
 * constants and helpers below give the exact kernel values for tests and interop.
 */

// ---- hi-word masks: what the hot path uses (int32 values; VALID is the sign bit) ----
/** HMM_PFN_VALID as a mask of the hi word. */
export const HMM_PFN_VALID_HI = 1 << 31;
/** HMM_PFN_WRITE as a mask of the hi word. */
export const HMM_PFN_WRITE_HI = 1 << 30;
/** HMM_PFN_ERROR as a mask of the hi word. */
export const HMM_PFN_ERROR_HI = 1 << 29;
/** HMM_PFN_ORDER_SHIFT (56) seen from the hi word. */
export const HMM_PFN_ORDER_SHIFT_HI = 24;
/** The 5 order bits (56..60) in the hi word. */
export const HMM_PFN_ORDER_MASK_HI = 0x1f << HMM_PFN_ORDER_SHIFT_HI;
/** HMM_PFN_REQ_FAULT (= VALID) as a hi-word mask: an input request bit. */
export const HMM_PFN_REQ_FAULT_HI = HMM_PFN_VALID_HI;
/** HMM_PFN_REQ_WRITE (= WRITE) as a hi-word mask: an input request bit. */
export const HMM_PFN_REQ_WRITE_HI = HMM_PFN_WRITE_HI;
/** HMM_PFN_FLAGS (bits 56..63) as a hi-word mask. */
export const HMM_PFN_FLAGS_HI = 0xff << 24;

// ---- exact kernel values (64-bit, as bigint) ----
export const HMM_PFN_VALID = 0x8000000000000000n;
export const HMM_PFN_WRITE = 0x4000000000000000n;
export const HMM_PFN_ERROR = 0x2000000000000000n;
export const HMM_PFN_ORDER_SHIFT = 56;
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
export const HMM_PFN_FLAGS = 0xff00000000000000n;

/** hmm_pfn_flags_order(): the order field of the hi word. */
export function hmmPfnFlagsOrderHi(order: number): number {
  return (order & 0x1f) << HMM_PFN_ORDER_SHIFT_HI;
}

/** A zeroed `hmm_pfns` array for `npages` pages (two Int32 slots per page). */
export function hmmPfnsAlloc(npages: number, shared = false): Int32Array {
  const bytes = npages * 8;
  return shared ? new Int32Array(new SharedArrayBuffer(Math.max(8, bytes))) : new Int32Array(npages * 2);
}

/** The exact kernel word of page `i` (for tests and interop; not for the hot path). */
export function hmmPfnToU64(pfns: Int32Array, i: number): bigint {
  const lo = BigInt(pfns[2 * i]! >>> 0);
  const hi = BigInt(pfns[2 * i + 1]! >>> 0);
  return (hi << 32n) | lo;
}

/** Store the exact kernel word `w` as page `i` (e.g. an input request word). */
export function hmmPfnFromU64(pfns: Int32Array, i: number, w: bigint): void {
  const v = BigInt.asUintN(64, w);
  pfns[2 * i] = Number(v & 0xffffffffn) | 0;
  pfns[2 * i + 1] = Number(v >> 32n) | 0;
}

/** All kernel words of `pfns` (tests). */
export function hmmPfnsToU64Array(pfns: Int32Array): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < pfns.length >>> 1; i++) out.push(hmmPfnToU64(pfns, i));
  return out;
}

/**
 * hmm_pfn_to_page(): the page the word names. hmmsim has no struct page, so this is the PFN:
 * the word with HMM_PFN_FLAGS stripped. Meaningful only when VALID is set.
 */
export function hmmPfnToPage(pfns: Int32Array, i: number): number {
  // hmmsim PFNs are below 2^24, so the hi word's non-flag bits are always 0 and lo is the PFN.
  return pfns[2 * i]! >>> 0;
}

/** hmm_pfn_to_map_order(): the CPU mapping order, `(w >> 56) & 0x1f`. */
export function hmmPfnToMapOrder(pfns: Int32Array, i: number): number {
  return (pfns[2 * i + 1]! >>> HMM_PFN_ORDER_SHIFT_HI) & 0x1f;
}

/** The page's flags as a hi-word value (VALID/WRITE/ERROR/order). */
export function hmmPfnFlagsHi(pfns: Int32Array, i: number): number {
  return pfns[2 * i + 1]! & HMM_PFN_FLAGS_HI;
}
