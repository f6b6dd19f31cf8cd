export * from './interval-notifier.js';
export {
  MMU_INTERVAL_ADDR_END,
  MMU_INTERVAL_LAST_MAX,
  MN_INITIAL_SEQ,
  MN_SLOT_DEFERRED_INSERT,
  MN_SLOT_DEFERRED_REMOVE,
  MN_SLOT_FREE,
  MN_SLOT_IN_SET,
  MN_SLOT_STATE_NAMES,
} from './layout.js';
export * from './ops.js';
export * from './stats.js';
