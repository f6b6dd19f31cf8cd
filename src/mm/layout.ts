/**
 * The one place that fixes the word layout of every shared mm structure: page-table entries,
 * frame metadata, VMA records and the per-mm control block. Everyone else calls the accessors.
 *
 * Budget (spec: at most 16 shared bytes per simulated page for the mm): one 32-bit PTE word per
 * page of address space and one 32-bit PMD word per 512 pages, plus frame metadata per physical
 * frame: a 32-bit state word, a 32-bit generation and a 16-bit write counter (10 bytes). With as
 * many frames as the address space has pages: 4 + 4/512 + 10 = 14.0078 bytes per page
 * (`npx tsx bench/memory.ts`). Frame *content* (W data words) is data, reported separately.
 */
import { PERCPU_RWSEM_WORDS } from '../shm/percpu-rwsem.js';

// ---------------------------------------------------------------------------------------------
// Geometry
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PMD_ORDER = 9; // HPAGE_PMD_ORDER
export const PTRS_PER_PTE = 512; // pages per PMD step
export const PMD_SIZE = PAGE_SIZE * PTRS_PER_PTE; // 2 MiB
export const PUD_SIZE = 1 << 30; // 1 GiB: holes outside VMAs are split at these boundaries

// ---------------------------------------------------------------------------------------------
// Page-table entries: one Int32 word each, read once and decoded from the copy (READ_ONCE).
// bits 0..23: payload (a PFN, or a swap slot for swap entries); bits 24..31: the "kind byte".
// A walk decodes the kind byte through a 256-entry table, never a chain of branches.
export const PTE_PAYLOAD_MASK = 0x00ffffff;
export const PTE_KIND_SHIFT = 24;
export const PTE_TYPE_MASK = 0x07 << PTE_KIND_SHIFT; // bits 24..26
export const PTE_TYPE_NONE = 0;
export const PTE_TYPE_PRESENT = 1 << PTE_KIND_SHIFT;
export const PTE_TYPE_SWAP = 2 << PTE_KIND_SHIFT; // payload: swap slot
export const PTE_TYPE_MIGRATION = 3 << PTE_KIND_SHIFT; // payload: the old PFN
export const PTE_TYPE_DEVICE_PRIVATE = 4 << PTE_KIND_SHIFT; // payload: the device frame's PFN
export const PTE_TYPE_HWPOISON = 5 << PTE_KIND_SHIFT; // payload: the poisoned PFN
export const PTE_WRITE = 1 << 27; // present, migration and device-private entries
export const PTE_SPECIAL = 1 << 28; // present: a raw PFN that is not a normal page (VM_PFNMAP style)
export const PTE_PROTNONE = 1 << 29; // present but inaccessible (NUMA hinting / PROT_NONE)
export const PTE_DEVMAP = 1 << 30; // present: a device (DAX-style) map; reported like a normal page

export function mkPte(type: number, payload: number, flags = 0): number {
  return type | flags | (payload & PTE_PAYLOAD_MASK) | 0;
}
export function pteType(w: number): number {
  return w & PTE_TYPE_MASK;
}
export function ptePayload(w: number): number {
  return w & PTE_PAYLOAD_MASK;
}
export function pteNone(w: number): boolean {
  return w === 0;
}
export function ptePresent(w: number): boolean {
  return (w & PTE_TYPE_MASK) === PTE_TYPE_PRESENT;
}
export function pteWrite(w: number): boolean {
  return (w & PTE_WRITE) !== 0;
}

// PMD entries: one Int32 word per 2 MiB step, same split of payload and kind byte.
export const PMD_TYPE_NONE = 0; // a hole: no PTE table (every PTE word of the step is 0)
export const PMD_TYPE_TABLE = 1 << PTE_KIND_SHIFT; // the step's PTE words are live
export const PMD_TYPE_HUGE = 2 << PTE_KIND_SHIFT; // a huge mapping; payload: head PFN
export const PMD_TYPE_MIGRATION = 3 << PTE_KIND_SHIFT; // a THP migration entry; payload: head PFN
export const PMD_TYPE_BAD = 4 << PTE_KIND_SHIFT; // corrupt / other non-present
export const PMD_TYPE_SWAP = 5 << PTE_KIND_SHIFT; // another non-present huge entry (unused by mm)
// PMD flags reuse PTE_WRITE / PTE_PROTNONE / PTE_DEVMAP.

// ---------------------------------------------------------------------------------------------
// Physical frames (one pool shared by every process).
/** Frame 0 is the shared zero page. */
export const ZERO_PFN = 0;
/** The huge zero page: the fixed, naturally aligned order-9 block at PFN 512. */
export const HUGE_ZERO_PFN = 512;
/** PFNs below this are reserved (zero page, huge zero page); the allocator starts here. */
export const FIRST_FREE_PFN = 1024;

// frame state word: bits 0..15 refcount (mappings + page-cache / swap-cache references),
// bits 16..23 flags, bits 24..30 owner device id of a device-private frame.
export const FR_REFCOUNT_MASK = 0xffff;
export const FR_ALLOCATED = 1 << 16;
export const FR_POISON = 1 << 17;
export const FR_LAZYFREE = 1 << 18;
export const FR_DEVICE_PRIVATE = 1 << 19;
export const FR_HEAD = 1 << 20; // first frame of a THP / hugetlb page (refcount lives here)
export const FR_TAIL = 1 << 21; // other frames of a compound page
export const FR_PAGECACHE = 1 << 22; // belongs to a file's page cache
export const FR_LOCKED = 1 << 23; // page lock (migration, collapse)
export const FR_OWNER_SHIFT = 24;
export const FR_OWNER_MASK = 0x7f << FR_OWNER_SHIFT;

/**
 * Frame write counter (checking.md #2): one 16-bit word per frame, so it wraps every 65,536
 * writes. A write adds 1 with `PhysMem.countWrite`, which also counts each wrap (the add that
 * returned WCOUNT_MAX), and every wrap is accounted as WCOUNT_WRAP discarded writes: the
 * lost-update equation stays exact in integers (see `lostUpdateEquation`).
 */
export const WCOUNT_BYTES = 2;
/** The largest value a write counter holds; the next write makes it 0 (a wrap). */
export const WCOUNT_MAX = 0xffff;
/** Writes one wrap of a write counter stands for. */
export const WCOUNT_WRAP = 0x10000;

/** A zeroed shared write-counter array: one WCOUNT_BYTES word per frame. */
export function sharedWcount(nframes: number): Uint16Array {
  return new Uint16Array(new SharedArrayBuffer(Math.max(1, nframes) * WCOUNT_BYTES));
}

/** Frame metadata, as parallel arrays of length nframes (state and gen Int32, wcount Uint16). */
export interface FrameArrays {
  /** refcount | flags | owner (see FR_*) */
  state: Int32Array;
  /** incremented at every free: a mirror entry records it, an access compares (checking.md #1) */
  gen: Int32Array;
  /** write counter, 16 bits (WCOUNT_*): every write to the content adds 1 (checking.md #2); not data */
  wcount: Uint16Array;
  /** content: W Int32 words per frame */
  data: Int32Array;
}

export function frOwner(state: number): number {
  return (state & FR_OWNER_MASK) >>> FR_OWNER_SHIFT;
}

// ---------------------------------------------------------------------------------------------
// VMAs: a sorted table of records in each mm, changed only under the mmap lock held for write.
// Flag values are the kernel's, so a kernel developer reads them as such.
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYSHARE = 0x80;
export const VM_PFNMAP = 0x400;
export const VM_IO = 0x4000;
export const VM_DONTEXPAND = 0x40000;
export const VM_HUGETLB = 0x400000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;
/** hmmsim: the VMA has (had) private anonymous pages, so fork must copy its PTEs (anon_vma). */
export const VM_HMMSIM_ANON_VMA = 0x100;

export const VMA_STRIDE = 8;
export const VMA_START = 0; // first page number
export const VMA_END = 1; // page number past the end
export const VMA_FLAGS = 2;
export const VMA_FILE = 3; // file id, or -1 for anonymous
export const VMA_PGOFF = 4; // page offset into the file
export const VMA_HUGE_ORDER = 5; // hugetlb page order (9), 0 otherwise
export const VMA_ID = 6; // a serial number, for reports
/** Most VMAs one mm can hold. */
export const MAX_VMAS = 1024;

// ---------------------------------------------------------------------------------------------
// The per-mm control block: one Int32Array, each hot word on its own cache line.
// words 0..15: unused (the mmap lock lived here as one shared count, see MM_MMAP_LOCK)
export const MM_PTL = 16; // spinlock, SPINLOCK_WORDS words (one page-table lock for the mm)
export const MM_USERS = 32; // mm_users: 0 once the mm has exited
export const MM_VMA_COUNT = 33;
export const MM_VMA_SERIAL = 34;
export const MM_ID = 35;
export const MM_MIGRATION_WAIT = 48; // bumped + notified whenever a migration entry is removed
// mm-A (additive): per-mm options, written once by createMm / forkMm before the mm is shared.
export const MM_FREE_MODE = 36; // MM_FREE_AFTER_END | MM_FREE_AFTER_CLEAR
export const MM_THP_MODE = 37; // THP_MODE_MADVISE | THP_MODE_ALWAYS | THP_MODE_NEVER
export const MM_SIZE_PAGES = 38; // npages, for reports
export const MM_FREE_AFTER_END = 0; // frames freed after invalidate_range_end (default)
export const MM_FREE_AFTER_CLEAR = 1; // frames freed right after the PTE clear (a full gather batch)
export const THP_MODE_MADVISE = 0;
export const THP_MODE_ALWAYS = 1;
export const THP_MODE_NEVER = 2;
/**
 * The mmap lock: a percpu-style rwsem (src/shm/percpu-rwsem.ts), a header line and one reader
 * slot line per thread slot, PERCPU_RWSEM_WORDS words.
 */
export const MM_MMAP_LOCK = 64;
export const MM_CTL_WORDS = MM_MMAP_LOCK + PERCPU_RWSEM_WORDS;
