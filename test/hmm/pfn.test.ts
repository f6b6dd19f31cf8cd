/** The hmm_pfns encoding: two Int32 slots per page = the kernel's 64-bit word, little-endian. */
import { describe, expect, it } from 'vitest';
import {
  HMM_PFN_ERROR,
  HMM_PFN_ERROR_HI,
  HMM_PFN_FLAGS,
  HMM_PFN_FLAGS_HI,
  HMM_PFN_ORDER_SHIFT,
  HMM_PFN_ORDER_SHIFT_HI,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_FAULT_HI,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_REQ_WRITE_HI,
  HMM_PFN_VALID,
  HMM_PFN_VALID_HI,
  HMM_PFN_WRITE,
  HMM_PFN_WRITE_HI,
  hmmPfnFlagsHi,
  hmmPfnFlagsOrderHi,
  hmmPfnFromU64,
  hmmPfnsAlloc,
  hmmPfnsToU64Array,
  hmmPfnToMapOrder,
  hmmPfnToPage,
  hmmPfnToU64,
} from '../../src/hmm/pfn.js';

const hi = (w: bigint): number => Number(w >> 32n) | 0;

describe('hmm_pfns words', () => {
  it('kernel constants', () => {
    expect(HMM_PFN_VALID).toBe(1n << 63n);
    expect(HMM_PFN_WRITE).toBe(1n << 62n);
    expect(HMM_PFN_ERROR).toBe(1n << 61n);
    expect(HMM_PFN_ORDER_SHIFT).toBe(56);
    expect(HMM_PFN_REQ_FAULT).toBe(HMM_PFN_VALID);
    expect(HMM_PFN_REQ_WRITE).toBe(HMM_PFN_WRITE);
    expect(HMM_PFN_FLAGS).toBe(0xff00000000000000n);
    expect(9n << BigInt(HMM_PFN_ORDER_SHIFT)).toBe(0x0900000000000000n);
  });

  it('hi-word masks are the kernel constants shifted down 32', () => {
    expect(HMM_PFN_VALID_HI).toBe(hi(HMM_PFN_VALID));
    expect(HMM_PFN_WRITE_HI).toBe(hi(HMM_PFN_WRITE));
    expect(HMM_PFN_ERROR_HI).toBe(hi(HMM_PFN_ERROR));
    expect(HMM_PFN_REQ_FAULT_HI).toBe(hi(HMM_PFN_REQ_FAULT));
    expect(HMM_PFN_REQ_WRITE_HI).toBe(hi(HMM_PFN_REQ_WRITE));
    expect(HMM_PFN_FLAGS_HI).toBe(hi(HMM_PFN_FLAGS));
    expect(HMM_PFN_ORDER_SHIFT_HI).toBe(HMM_PFN_ORDER_SHIFT - 32);
    expect(hmmPfnFlagsOrderHi(9)).toBe(hi(0x0900000000000000n));
    expect(hmmPfnFlagsOrderHi(18)).toBe(hi(0x1200000000000000n));
  });

  it('round trip and the BigUint64Array view show the exact kernel words', () => {
    const words = [
      0n,
      HMM_PFN_ERROR,
      HMM_PFN_VALID | 0x123456n,
      HMM_PFN_VALID | HMM_PFN_WRITE | (9n << 56n) | 0xfffffen,
      (18n << 56n) | 5n,
      0xffffffffffffffffn,
    ];
    for (const shared of [false, true]) {
      const a = hmmPfnsAlloc(words.length, shared);
      for (let i = 0; i < words.length; i++) hmmPfnFromU64(a, i, words[i]!);
      expect(hmmPfnsToU64Array(a)).toEqual(words);
      expect(words.map((_, i) => hmmPfnToU64(a, i))).toEqual(words);
      expect(Array.from(new BigUint64Array(a.buffer, a.byteOffset, words.length))).toEqual(words);
    }
  });

  it('hmmPfnToPage and hmmPfnToMapOrder', () => {
    const a = hmmPfnsAlloc(3);
    hmmPfnFromU64(a, 0, HMM_PFN_VALID | HMM_PFN_WRITE | (9n << 56n) | 0xabcdefn);
    hmmPfnFromU64(a, 1, (18n << 56n) | 77n);
    hmmPfnFromU64(a, 2, HMM_PFN_ERROR);
    expect(hmmPfnToPage(a, 0)).toBe(0xabcdef);
    expect(hmmPfnToMapOrder(a, 0)).toBe(9);
    expect(hmmPfnToPage(a, 1)).toBe(77);
    expect(hmmPfnToMapOrder(a, 1)).toBe(18);
    expect(hmmPfnToMapOrder(a, 2)).toBe(0);
    expect(hmmPfnFlagsHi(a, 0)).toBe(HMM_PFN_VALID_HI | HMM_PFN_WRITE_HI | hmmPfnFlagsOrderHi(9));
  });
});
