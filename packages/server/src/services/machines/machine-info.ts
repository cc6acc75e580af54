import type { MachineInfo, VolumeAttachmentInfo } from '@nullspace/protocol';
import {
  type AddressPool,
  type DriverMachineSpec,
  type DriverNetwork,
  type DriverVolumeMount,
  linkFor,
} from '@nullspace/runtime';
import type { MachineRecord } from '../../store/machine-store.js';
import { networkInfo } from '../network-policy.js';

/** Machine info as the API returns it, from the stored record and its volume attachments. */
export function machineInfo(
  m: MachineRecord,
  pool: AddressPool,
  volumes: VolumeAttachmentInfo[],
): MachineInfo {
  return {
    id: m.id,
    execution_id: m.execution_id,
    status: m.status,
    template: m.template,
    snapshot_id: m.snapshot_id,
    vcpus: m.vcpus,
    memory_mb: m.memory_mb,
    disk_mb: m.disk_mb,
    cwd: m.cwd,
    envs: Object.keys(m.envs),
    metadata: m.metadata,
    network: networkInfo(
      m.network,
      m.net_index === null ? null : linkFor(pool, m.net_index, m.id).machineAddr,
    ),
    timeout: m.timeout,
    on_timeout: m.on_timeout,
    auto_resume: m.auto_resume,
    expires_at: new Date(m.expires_at).toISOString(),
    created_at: new Date(m.created_at).toISOString(),
    started_at: m.started_at === null ? null : new Date(m.started_at).toISOString(),
    warm_pool_checkout: m.warm_pool_checkout,
    volumes,
    tenant: m.tenant,
    status_reason: m.status_reason,
  };
}

/** What the driver needs to start or restore `m` on the template's `templateRootfs`. */
export function driverSpec(
  m: MachineRecord,
  templateRootfs: string,
  network: DriverNetwork,
  volumes: DriverVolumeMount[],
): DriverMachineSpec {
  return {
    id: m.id,
    templateRootfs,
    vcpus: m.vcpus,
    // A warm pool's machine (starting or waiting) gets the CPUs only when nobody else wants them.
    ...(m.warm_pool_id !== null ? { cpuPriority: 'background' as const } : {}),
    memoryMb: m.memory_mb,
    diskMb: m.disk_mb,
    cwd: m.cwd,
    network,
    volumes,
  };
}
