/**
 * Latency and retry histograms (hdr-histogram-js, pure-JS mode so a worker needs no WebAssembly).
 * Each device records into its own thread-local histograms (recordValue allocates nothing once the
 * histogram exists: autoResize is off), encodes them when its task ends, and the main thread
 * decodes and adds them: HDR merging is exact.
 */
import * as hdr from 'hdr-histogram-js';

/** The range-fault routine's latency, in microseconds; up to 60 s. */
export const LATENCY_HIGHEST_US = 60_000_000;
/** Retries per range-fault call; up to 1e6. */
export const RETRIES_HIGHEST = 1_000_000;

export type Histogram = hdr.Histogram;

export function newHistogram(highest: number): Histogram {
  return hdr.build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: highest,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
    useWebAssembly: false,
  });
}

/** Record clamped to the trackable range (an out-of-range value would throw). */
export function recordClamped(h: Histogram, value: number, highest: number): void {
  h.recordValue(value < 0 ? 0 : value > highest ? highest : Math.round(value));
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s, 32, false);
}

/** Merge encoded histograms into a fresh one. */
export function mergeEncoded(parts: readonly string[], highest: number): Histogram {
  const m = newHistogram(highest);
  for (const p of parts) if (p !== '') m.add(decodeHistogram(p));
  return m;
}

/** A histogram as the results file stores it: a summary plus the exact encoding. */
export interface HistogramJson {
  unit: string;
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** hdr-histogram's compressed base64 encoding (decodeFromCompressedBase64) */
  encoded: string;
}

export function histogramJson(h: Histogram, unit: string): HistogramJson {
  const n = h.totalCount;
  return {
    unit,
    count: n,
    min: n === 0 ? 0 : h.minNonZeroValue,
    mean: n === 0 ? 0 : Math.round(h.mean * 100) / 100,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    encoded: encodeHistogram(h),
  };
}
