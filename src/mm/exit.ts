/**
 * exit_mmap: the last user of an mm is gone. Every subscriber is told with RELEASE
 * (mmu_notifier_release) before anything is unmapped, then everything is unmapped under one UNMAP
 * invalidation over the whole space, every frame freed, page tables and VMAs dropped, and
 * mm_users reads 0. No mmap lock for the teardown (the kernel's exit_mmap holds none: nobody else
 * can hold a reference); the VMA table is emptied under the write lock only so that a device that
 * walks without mmget_not_zero cannot read a half-removed table.
 */
import { MM_USERS, PMD_SIZE, VMA_FILE } from './layout.js';
import { type MmStruct, mmputDrop, vmaRemove } from './mm.js';
import { MMU_NOTIFY_UNMAP } from './mmu-notifier.js';
import { mmuNotifierRelease } from './notify.js';
import { freePgtables, zapRangeNotify } from './pgtable.js';

/** exit_mmap: tear the whole address space down. */
export function exitMmap(mm: MmStruct): void {
  mmuNotifierRelease(mm);
  zapRangeNotify(mm, 0, mm.size, MMU_NOTIFY_UNMAP);
  mm.mmapWriteLock();
  const files: number[] = [];
  while (mm.vmaCount > 0) {
    const f = mm.vmaField(0, VMA_FILE);
    if (f >= 0) files.push(f);
    vmaRemove(mm, 0);
  }
  freePgtables(mm, 0, Math.ceil(mm.size / PMD_SIZE) * PMD_SIZE);
  mm.mmapWriteUnlock();
  for (const f of files) mm.phys.filePut(f, MMU_NOTIFY_UNMAP);
  Atomics.store(mm.ctl, MM_USERS, 0);
}

/** mmput: drop a user reference; the last one runs exitMmap. True if the mm was torn down. */
export function mmput(mm: MmStruct): boolean {
  if (!mmputDrop(mm)) return false;
  exitMmap(mm);
  return true;
}
