import { Machine } from '@nullspace/sdk';

// Reads NULLSPACE_API_URL (default http://127.0.0.1:7070) and NULLSPACE_API_KEY.
const machine = await Machine.create({ template: 'base', timeout: 300, metadata: { project: 'docs' } });
try {
  const result = await machine.commands.run('python3 --version');
  console.log(machine.id, result.stdout.trim());
  const info = await machine.getInfo();
  console.log(info.status, `${info.vcpus} vcpu`, `${info.memoryMb} MiB`, info.cwd);
} finally {
  await machine.kill();
}
