/** The ioctl argument and lifetime errors of driver.md's operations. */
import { describe, expect, it } from 'vitest';
import { mmput } from '../../src/mm/exit.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { EFAULT, EINVAL } from '../../src/mm/mmu-notifier.js';
import { mmuNotifierSubscriptionsOf } from '../../src/notifier/index.js';
import { cpuFill, mapAnon, setup, W } from '../conformance/helpers.js';

describe('dmirror operation errors', () => {
  it('-EINVAL for an unaligned address, npages <= 0, an overflowing range', () => {
    const w = setup();
    const buf = new Int32Array(2 * W);
    const a = mapAnon(w.mm, 2);
    expect(w.f0.read(a + 8, 1, buf).ret).toBe(-EINVAL);
    expect(w.f0.read(a, 0, buf).ret).toBe(-EINVAL);
    expect(w.f0.write(a, -1, buf).ret).toBe(-EINVAL);
    expect(w.f0.snapshot(2 ** 53 - PAGE_SIZE, 2, new Uint8Array(2)).ret).toBe(-EINVAL);
    expect(w.f0.migrate(a + 1, 1, buf).ret).toBe(-EINVAL);
  });

  it('-EFAULT for a hole or an address beyond the space', () => {
    const w = setup();
    const buf = new Int32Array(W);
    expect(w.f0.read(w.mm.size - PAGE_SIZE, 1, buf).ret).toBe(-EFAULT);
    expect(w.f0.read(w.mm.size, 1, buf).ret).toBe(-EFAULT);
  });

  it('an mm with no users: read, write, snapshot and migrate give -EINVAL; close still works', () => {
    const w = setup();
    const a = mapAnon(w.mm, 2);
    cpuFill(w.mm, a, 2);
    const buf = new Int32Array(2 * W);
    expect(w.f0.read(a, 2, buf).ret).toBe(0);
    expect(mmput(w.mm)).toBe(true);
    // exit's RELEASE / UNMAP erased every entry
    expect(w.f0.mirrorEntry(a / PAGE_SIZE)).toBeNull();
    expect(w.f0.read(a, 2, buf).ret).toBe(-EINVAL);
    expect(w.f0.write(a, 2, buf).ret).toBe(-EINVAL);
    expect(w.f0.snapshot(a, 2, new Uint8Array(2)).ret).toBe(-EINVAL);
    expect(w.f0.migrate(a, 2, buf).ret).toBe(-EINVAL);
    expect(w.f0.close()).toBe(0);
    expect(w.f1.close()).toBe(0);
    expect(w.f0.close()).toBe(-EINVAL);
    expect(mmuNotifierSubscriptionsOf(w.mm)!.state().inSet).toBe(0);
  });
});
