/**
 * The OOM reaper (oom_reap_task_mm / __oom_reap_task_mm): frees a victim's private memory while
 * the victim may still be exiting. It only try-locks the mmap lock for read, and issues one
 * NON-blockable UNMAP invalidation per reapable VMA: a VMA whose start fails with -EAGAIN (a
 * subscriber could not take its lock without sleeping) is skipped and left for a later call.
 */
import { percpuDownReadTrylock } from '../shm/percpu-rwsem.js';
import {
  MM_MMAP_LOCK,
  PAGE_SIZE,
  VM_HUGETLB,
  VM_PFNMAP,
  VM_SHARED,
  VMA_END,
  VMA_FLAGS,
  VMA_START,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { EAGAIN, MMU_NOTIFY_UNMAP } from './mmu-notifier.js';
import { MmuGather, zapRangeNotify } from './pgtable.js';
import { vmaIsAnonymous } from './thp.js';

/** This thread's OOM-reaper counters (merged by the sim). */
export const oomStats = {
  /** oomReap calls that could not take the mmap lock */
  trylockFailed: 0,
  /** VMAs reaped */
  reapedVmas: 0,
  /** VMAs skipped because a non-blockable start failed with -EAGAIN */
  skippedVmas: 0,
};

export interface OomReapResult {
  /** 0 when every reapable VMA was reaped; -EAGAIN when the lock or some VMA must be retried */
  ret: number;
  /** VMAs reaped by this call */
  reaped: number;
  /** VMAs skipped by this call (their start failed with -EAGAIN) */
  skipped: number;
}

const gather = new MmuGather(256);

/**
 * One pass of the reaper over `mm`. Hugetlb and VM_PFNMAP VMAs (can_madv_lru_vma) and shared
 * file mappings are left alone; every other VMA gets UNMAP over the whole VMA, non-blockable;
 * if the start succeeds its entries are zapped and its private frames freed (page-cache frames
 * only lose the mapping's reference). The kernel calls this again (up to MAX_OOM_REAP_RETRIES)
 * while it fails: so does the caller here, and an already reaped VMA simply gets its
 * (now empty) UNMAP again, as in the kernel.
 */
export function oomReap(mm: MmStruct): OomReapResult {
  // mmap_read_trylock: the reaper must never wait for a lock the victim may hold
  if (!percpuDownReadTrylock(mm.ctl, MM_MMAP_LOCK)) {
    oomStats.trylockFailed++;
    return { ret: -EAGAIN, reaped: 0, skipped: 0 };
  }
  let reaped = 0;
  let skipped = 0;
  try {
    for (let vi = 0; vi < mm.vmaCount; vi++) {
      const f = mm.vmaField(vi, VMA_FLAGS);
      if ((f & (VM_HUGETLB | VM_PFNMAP)) !== 0) continue;
      if (!vmaIsAnonymous(mm, vi) && (f & VM_SHARED) !== 0) continue;
      const s = mm.vmaField(vi, VMA_START) * PAGE_SIZE;
      const e = mm.vmaField(vi, VMA_END) * PAGE_SIZE;
      const r = zapRangeNotify(mm, s, e, MMU_NOTIFY_UNMAP, { blockable: false, tlb: gather });
      if (r === 0) reaped++;
      else skipped++;
    }
  } finally {
    mm.mmapReadUnlock();
  }
  oomStats.reapedVmas += reaped;
  oomStats.skippedVmas += skipped;
  return { ret: skipped > 0 ? -EAGAIN : 0, reaped, skipped };
}
