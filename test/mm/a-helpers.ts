/** Shared helpers of mm-A's tests: a recording mmu_notifier subscriber and small setups. */
import type { MmStruct } from '../../src/mm/mm.js';
import {
  MMU_NOTIFY_EVENT_NAMES,
  type MmuNotifierRange,
  type MmuNotifierSubscriber,
} from '../../src/mm/mmu-notifier.js';

export interface Recorded {
  kind: 'start' | 'end' | 'release';
  event: string;
  start: number;
  end: number;
  /** what the probe saw at this moment (e.g. a PTE word, a frame generation) */
  probe: number[];
}

/** A fake subscriber that records every callback and runs a probe at each one. */
export class Recorder implements MmuNotifierSubscriber {
  log: Recorded[] = [];
  probe: () => number[] = () => [];
  constructor(readonly mm: MmStruct) {
    mm.notifiers.register(this);
  }
  invalidateRangeStart(r: MmuNotifierRange): number {
    this.log.push({
      kind: 'start',
      event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
      start: r.start,
      end: r.end,
      probe: this.probe(),
    });
    return 0;
  }
  invalidateRangeEnd(r: MmuNotifierRange): void {
    this.log.push({
      kind: 'end',
      event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
      start: r.start,
      end: r.end,
      probe: this.probe(),
    });
  }
  release(r: MmuNotifierRange): void {
    this.log.push({
      kind: 'release',
      event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
      start: r.start,
      end: r.end,
      probe: this.probe(),
    });
  }
  /** "EVENT start-end" of every start, in order. */
  starts(): string[] {
    return this.log.filter((e) => e.kind === 'start').map((e) => `${e.event} ${hex(e.start)}-${hex(e.end)}`);
  }
  clear(): void {
    this.log = [];
  }
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
