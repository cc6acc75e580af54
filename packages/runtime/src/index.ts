export * from './driver.js';
export * from './agent-client.js';
export * from './runc-driver.js';
export * from './mounts.js';
export { host } from './exec.js';
export { NETNS_DIR, netnsName } from './netns/netns.js';
export { MACHINE_CAPABILITIES } from './oci/spec.js';
export { REFUSED_SYSCALLS_FOR_TESTS } from './oci/seccomp.js';
