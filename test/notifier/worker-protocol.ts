/** The protocol between threads.test.ts and notifier.worker.ts (no side effects on import). */
import type { MmDescriptor } from '../../src/mm/mm.js';
import type { PhysMemDescriptor } from '../../src/mm/physmem.js';
import type {
  MmuIntervalNotifierDescriptor,
  MmuNotifierSubscriptionsDescriptor,
} from '../../src/notifier/index.js';

export interface WorkerInput {
  role: 'readBegin' | 'remove' | 'insert' | 'insertLocal' | 'invalidate' | 'reader';
  mm: MmDescriptor;
  phys: PhysMemDescriptor;
  subs: MmuNotifierSubscriptionsDescriptor;
  ctl: SharedArrayBuffer;
  mutants: number;
  sub?: MmuIntervalNotifierDescriptor;
  start?: number;
  length?: number;
  kind?: string;
  opsId?: number;
  /** reader: iterations bound */
  iters?: number;
  seed?: number;
}

// ctl words (shared with threads.test.ts)
export const C_READY = 0; // worker reached its blocking call
export const C_DONE = 16; // worker returned from it
export const C_STOP = 32; // main: stop (reader role)
export const C_LOCK = 48; // the "user lock" (a mutex) of the stress test
export const C_VERSION = 64; // bumped by the mutator between start and end of a hitting range
export const C_REC = 80; // invalidate role: opsId, curSeq, threadId, start, end, event, calls
export const C_VIOL = 88; // reader: violations so far (the mutator stops early on one)
export const C_WORDS = 96;
