export * from './checkpoint-steps.js';
export * from './driver.js';
export * from './agent-client.js';
export * from './runc-driver.js';
export * from './mounts.js';
export {
  DEFAULT_CGROUP_PARENT,
  type HostResource,
  type HostResourceKind,
  type MachineResources,
  type RuntimeDirs,
  describeResources,
  inventory,
  machineIds,
  machineResources,
  resourcesOf,
} from './inventory/inventory.js';
export {
  TEARDOWN_CHANNEL,
  TEARDOWN_STEPS,
  type TeardownStep,
  type TeardownStepTiming,
  tearDownMachine,
  terminateMachine,
} from './inventory/teardown.js';
export { host, planScript } from './exec.js';
export { CRIU_KDAT, ensureCriuKdat, type KdatCache } from './runc/criu-kdat.js';
export { NETNS_DIR, netnsName } from './netns/netns.js';
export { MACHINE_CAPABILITIES } from './oci/spec.js';
export { REFUSED_SYSCALLS_FOR_TESTS } from './oci/seccomp.js';
export {
  DISPATCH_MAPS,
  HOST_TABLE,
  MACHINE_RESOLVER,
  type MachineLink,
  legacyTableOf,
  machineChains,
  renderEgressProgram,
  renderHostTable,
  renderRemovalProgram,
} from './net/egress-rules.js';
export {
  enableUplinkForwarding,
  guardMachineNetwork,
  linkSetUpSteps,
  writeLinkFiles,
} from './net/link.js';
export {
  type AddressPool,
  DEFAULT_MACHINE_POOL,
  hostIfOf,
  linkFor,
  parsePool,
} from './net/addresses.js';
export { ADDRESS_CLAIMS_DIR, claimBlock, releaseBlock } from './net/address-claims.js';
export {
  ID_RANGES_START,
  ID_RANGE_CLAIMS_DIR,
  ID_RANGE_COUNT,
  ID_RANGE_FILE,
  ID_RANGE_SIZE,
  type IdRange,
  readIdRange,
} from './userns/id-ranges.js';
export { connectToMachinePort } from './net/port-connect.js';
export {
  IDENTITY_FILE,
  type MachineIdentity,
  type MachineOrigin,
  type RestoredFrom,
  machineUuidOf,
} from './rootfs/identity.js';
export { VolumeImage } from './storage/volume-image.js';
export { VOLUME_HELPER_PATH, volumeHelper } from './volumes/machine-volumes.js';
export type { CpuPriority } from './cgroups/cpu-weight.js';
