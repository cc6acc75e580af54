/**
 * The layout of a machine's directory on the host (`<machinesDir>/<id>/`), in one place: the
 * driver writes it, the inventory reads it to find what the machine holds after a crash.
 */
export const MACHINE_FILES = {
  /** The name of the host end of its veth (net/link.ts). */
  link: 'link',
  /** The pid of the runc checkpoint/restore in progress (survives a server crash; see settle). */
  operationPid: 'operation.pid',
  /** The overlay root filesystem (rootfs/overlay.ts). */
  rootfs: 'rootfs',
  /** The disk image's mount point and file (storage/disk-image.ts). */
  disk: 'disk',
  diskImage: 'disk.img',
  /** CRIU's work directories (runc checkpoint/restore `--work-path`). */
  criuDump: 'criu-dump',
  criuRestore: 'criu-restore',
  /** The idmapped mounts of its template layers, `lower/<n>` (userns/idmap.ts). */
  lower: 'lower',
  /** The sysfs the host mounts from inside its network namespace, bound at /sys (oci/spec.ts). */
  sysfs: 'sys',
  /**
   * Written once its network was made ahead of its create (RuncDriver.prepareNetwork): the link
   * and egress program it was made with; the create that uses it removes it.
   */
  preparedNetwork: 'network-prepared.json',
} as const;
