// Of the code interpreter's contract, what the agent shares (through `@nullspace/protocol/core`).

/** Where the bridge lives in a machine of the `code-interpreter` template, and its socket. */
export const CODE_PATHS = {
  bridge: '/opt/nullspace/code/bridge.py',
  socket: '/var/lib/nullspace-code/bridge.sock',
  log: '/var/lib/nullspace-code/bridge.log',
  artifacts: '/workspace/artifacts',
} as const;
