/**
 * The reference device's migration paths and its mmap, on top of mm/migrate-device.ts and
 * mm/mmap.ts: dmirror_migrate's chunk (alloc-and-copy, finalize-and-map), the CPU fault back
 * (dmirror_devmem_fault, migrate_to_ram) and dmirror_fops_mmap (5.10.109).
 */
import { PAGE_SIZE, VM_WRITE, VMA_FLAGS } from '../mm/layout.js';
import {
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfnToPfn,
  migrateToRamOnePage,
  migrateVmaEntryWritable,
  migrateVmaInit,
  migrateVmaNextChunk,
  migrateVmaStillMapped,
  migrateVmaToDevice,
} from '../mm/migrate-device.js';
import type { MmStruct } from '../mm/mm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, munmap, PROT_READ, vmInsertPage } from '../mm/mmap.js';
import { ENOMEM } from '../mm/mmu-notifier.js';
import type { DmirrorDevice, DmirrorFile } from './dmirror.js';

/** This thread's reusable chunk descriptor (dmirror_migrate's src_pfns / dst_pfns on the stack). */
let chunk: MigrateVma | null = null;

/**
 * One chunk of dmirror_migrate from byte `addr` (the caller holds the mmap read lock): the chunk
 * ends at addr + 64 pages, `end` or the VMA end; the VMA must contain `addr` and have VM_READ
 * (-EINVAL), and migrate_vma_setup refuses hugetlb / VM_IO / VM_PFNMAP / VM_MIXEDMAP /
 * VM_DONTEXPAND (-EINVAL). Returns the next address or a negative errno.
 */
export function dmirrorMigrateChunk(f: DmirrorFile, addr: number, end: number): number {
  const mm = f.mm;
  const next = migrateVmaNextChunk(mm, addr, end);
  if (next < 0) return next;
  const dev = f.device;
  const phys = f.phys;
  if (chunk === null) chunk = migrateVmaInit(0, 0, dev.owner, f.id, MIGRATE_VMA_SELECT_SYSTEM);
  const m = chunk;
  m.start = addr;
  m.end = next;
  m.owner = dev.owner;
  m.ownerFile = f.id;
  const ret = migrateVmaToDevice(
    mm,
    m,
    // dmirror_devmem_alloc_page: a device frame, its zone_device_data naming this file
    () => {
      const pfn = phys.allocDevicePage(dev.owner);
      if (pfn >= 0) Atomics.store(dev.zdd, pfn, f.id);
      return pfn;
    },
    { finalizeAndMap: (mv) => dmirrorMigrateFinalizeAndMap(f, mv) },
  );
  return ret < 0 ? ret : next;
}

/**
 * dmirror_migrate_finalize_and_map: under the update lock, install every page that moved. The
 * entry is writable if the source PTE was, or, for a page that had no source (empty or zero
 * page), if the VMA has VM_WRITE (dmirror_migrate_alloc_and_copy's rule), and (hmmsim) only if
 * the CPU entry finalize turns into the device-private entry is still writable.
 */
function dmirrorMigrateFinalizeAndMap(f: DmirrorFile, m: MigrateVma): void {
  const mm = f.mm;
  const sp = m.start / PAGE_SIZE;
  const vi = mm.vmaAt(sp);
  const vmaWrite = vi >= 0 && (mm.vmaField(vi, VMA_FLAGS) & VM_WRITE) !== 0;
  f.lock();
  try {
    // hmmsim: the test driver installs without any check, so a MADV_DONTNEED racing with the
    // migration (its CLEAR erased nothing yet, its zap drops the migration entries) leaves
    // entries for device pages that finalize frees. Install only what no invalidation of ours can
    // still remove from the CPU side: none may be open (else install nothing: the pages are
    // faulted in later), and each page must still hold this migration's entry. A page that moves
    // but is not installed loses its old entry (this file skipped its own MIGRATE, and finalize
    // frees the source frame).
    const open = f.invalidationOpen(sp, sp + m.npages);
    for (let i = 0; i < m.npages; i++) {
      const s = m.src[i]!;
      if ((s & MIGRATE_PFN_MIGRATE) === 0) continue;
      const dpfn = migratePfnToPfn(m.dst[i]!);
      if (dpfn < 0) continue;
      if (open || !migrateVmaStillMapped(mm, m, i)) {
        f.eraseEntry(sp + i);
        continue;
      }
      // ... and never more permissive than the CPU entry now is: a NUMA hinting pass since the
      // collect may have write-protected the migration entry (its invalidation erased nothing
      // of this page's new entry, which did not exist yet), and finalize keeps that
      const writable =
        ((s & MIGRATE_PFN_WRITE) !== 0 || (migratePfnToPfn(s) < 0 && vmaWrite)) &&
        migrateVmaEntryWritable(mm, m, i);
      f.installMigrated(sp + i, dpfn, writable);
    }
  } finally {
    f.unlock();
  }
}

/**
 * dmirror_devmem_fault: migrate the one device page back to a new system frame (a MIGRATE event
 * naming the device and the file that migrated the page); that file erases its entry. `fileId`
 * comes from the frame's zone_device_data; `file` is this thread's view of it, if attached.
 * Returns 0 or VM_FAULT_* bits.
 */
export function dmirrorMigrateToRam(
  dev: DmirrorDevice,
  fileId: number,
  file: DmirrorFile | undefined,
  mm: MmStruct,
  address: number,
  pfn: number,
): number {
  return migrateToRamOnePage(mm, address, pfn, dev.owner, fileId !== 0 ? fileId : -1, {
    erase: (a) => {
      if (file === undefined || file.mm !== mm) return;
      file.lock();
      try {
        file.eraseEntry(a / PAGE_SIZE);
      } finally {
        file.unlock();
      }
    },
  });
}

/**
 * dmirror_fops_mmap (5.10.109): map `npages` of the device file, each page a new zeroed normal
 * frame inserted with vm_insert_page (VM_MIXEDMAP, read-only: a private mapping). hmmsim maps an
 * anonymous private PROT_READ VMA and inserts the frames into it. Returns the address or -errno.
 */
export function dmirrorMmapPages(f: DmirrorFile, npages: number): number {
  const mm = f.mm;
  const phys = f.phys;
  const a = mmap(mm, { length: npages * PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS });
  if (a < 0) return a;
  for (let i = 0; i < npages; i++) {
    const pfn = phys.allocPage();
    const ret = pfn < 0 ? -ENOMEM : vmInsertPage(mm, a + i * PAGE_SIZE, pfn);
    if (pfn >= 0) phys.putPage(pfn); // the mapping holds its own reference
    if (ret !== 0) {
      munmap(mm, a, npages * PAGE_SIZE);
      return ret;
    }
  }
  return a;
}
