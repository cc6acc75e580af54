import { type WriteStream, createWriteStream } from 'node:fs';

/** JSON-lines log of the agent, written inside the machine (the host sees it through the run dir). */
export class AgentLog {
  private stream: WriteStream | undefined;

  open(path: string): void {
    this.stream = createWriteStream(path, { flags: 'a' });
    this.stream.on('error', () => {
      this.stream = undefined;
    });
  }

  write(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    this.stream?.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  }
}

export const log = new AgentLog();
