/** Shared helpers of mm-B's tests: a recording mmu_notifier subscriber and small setups. */
import { expect } from 'vitest';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../../src/mm/mmap.js';
import {
  EAGAIN,
  MMU_NOTIFY_EVENT_NAMES,
  type MmuNotifierRange,
  type MmuNotifierSubscriber,
  mmuNotifierRangeBlockable,
} from '../../src/mm/mmu-notifier.js';
import { createPhysMem, type PhysMem } from '../../src/mm/physmem.js';

export interface BRecorded {
  kind: 'start' | 'end' | 'release';
  event: string;
  start: number;
  end: number;
  blockable: boolean;
  owner: number;
  ownerFile: number;
  /** what the probe saw at this callback (PTE words, frame states, ...) */
  probe: number[];
}

/** A fake subscriber: records (event, range, blockable, owner) and runs a probe at each callback. */
export class BRecorder implements MmuNotifierSubscriber {
  log: BRecorded[] = [];
  probe: (r: MmuNotifierRange) => number[] = () => [];
  /** a non-blockable start for which this returns true fails with -EAGAIN */
  refuseNonBlockable: (r: MmuNotifierRange) => boolean = () => false;
  constructor(readonly mm: MmStruct) {
    mm.notifiers.register(this);
  }
  private rec(kind: BRecorded['kind'], r: MmuNotifierRange): void {
    this.log.push({
      kind,
      event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
      start: r.start,
      end: r.end,
      blockable: mmuNotifierRangeBlockable(r),
      owner: r.owner,
      ownerFile: r.ownerFile,
      probe: this.probe(r),
    });
  }
  invalidateRangeStart(r: MmuNotifierRange): number {
    if (!mmuNotifierRangeBlockable(r) && this.refuseNonBlockable(r)) {
      this.rec('start', r);
      this.log[this.log.length - 1]!.kind = 'start';
      this.log[this.log.length - 1]!.probe = [-EAGAIN];
      return -EAGAIN;
    }
    this.rec('start', r);
    return 0;
  }
  invalidateRangeEnd(r: MmuNotifierRange): void {
    this.rec('end', r);
  }
  release(r: MmuNotifierRange): void {
    this.rec('release', r);
  }
  /** "kind EVENT 0xstart-0xend" of every callback, in order. */
  calls(): string[] {
    return this.log.map((e) => `${e.kind} ${e.event} ${hex(e.start)}-${hex(e.end)}`);
  }
  clear(): void {
    this.log = [];
  }
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export const RW = PROT_READ | PROT_WRITE;
export const pg = (a: number): number => a / PAGE_SIZE;

export function bSetup(
  opts: { freeMode?: 'after-end' | 'after-clear'; thpMode?: 'madvise' | 'always' | 'never' } = {},
): {
  phys: PhysMem;
  mm: MmStruct;
  rec: BRecorder;
} {
  const phys = createPhysMem({ nframes: 8192, W: 4 });
  const mm = createMm(phys, { size: 64 << 20, freeMode: opts.freeMode, thpMode: opts.thpMode });
  const rec = new BRecorder(mm);
  return { phys, mm, rec };
}

/** A private anonymous mapping (fixed address when given). */
export function anonMap(mm: MmStruct, len: number, addr?: number, prot = RW, extraFlags = 0): number {
  const a = mmap(mm, {
    length: len,
    prot,
    flags: MAP_PRIVATE | MAP_ANONYMOUS | extraFlags | (addr !== undefined ? MAP_FIXED : 0),
    addr,
  });
  expect(a).toBeGreaterThan(0);
  return a;
}
