/**
 * Quiescent-point checks over one mm and the dmirror files bound to it: oracle #3 (mirror
 * coherence) and oracle #4 (protocol sanity), gathering the facts from the notifier core and the
 * locks. Call only when every device is parked and no invalidation is running.
 */
import { auditMirror, protocolSanity, type SanityFacts, type ViolationLog } from '../checker/oracles.js';
import { MM_MMAP_LOCK, MM_PTL } from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import { MN_SLOT_FREE, mmuNotifierSubscriptionsOf } from '../notifier/index.js';
import { percpuRwsemState } from '../shm/percpu-rwsem.js';
import { spinIsLocked } from '../shm/spinlock.js';
import type { DmirrorFile } from './dmirror.js';

/** The facts oracle #4 checks for `mm` and its files. */
export function dmirrorSanityFacts(mm: MmStruct, files: readonly DmirrorFile[]): SanityFacts {
  const core = mmuNotifierSubscriptionsOf(mm);
  const locksHeld: string[] = [];
  if (percpuRwsemState(mm.ctl, MM_MMAP_LOCK) !== 0) locksHeld.push(`mm ${mm.id} mmap lock`);
  if (spinIsLocked(mm.ctl, MM_PTL)) locksHeld.push(`mm ${mm.id} page-table lock`);
  for (const f of files) if (f.lockHeld()) locksHeld.push(`file ${f.id} update lock`);
  const seqs: number[] = [];
  let mmSeq = 0;
  let active = 0;
  if (core !== null) {
    if (core.lockOwner() !== 0) locksHeld.push(`mm ${mm.id} notifier lock`);
    const st = core.state();
    mmSeq = st.invalidateSeq;
    active = st.activeInvalidateRanges;
    for (let s = 0; s < core.capacity; s++)
      if (core.slotState(s) !== MN_SLOT_FREE) seqs.push(core.slotSeq(s));
  }
  return { mmId: mm.id, mmSeq, activeInvalidations: active, subscriptionSeqs: seqs, locksHeld };
}

/** Oracles #3 and #4 at a quiescent point; returns the number of violations recorded. */
export function dmirrorAuditQuiescent(
  mm: MmStruct,
  files: readonly DmirrorFile[],
  log: ViolationLog | null,
): number {
  let bad = 0;
  for (const f of files) if (!f.closed && f.mm === mm) bad += auditMirror(f, log);
  bad += protocolSanity(dmirrorSanityFacts(mm, files), log);
  return bad;
}
