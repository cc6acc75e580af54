import { appendFileSync } from 'node:fs';

/**
 * JSON-lines log of the agent, written inside the machine (the host sees it through the run dir).
 * The file is opened for each line and closed again: the agent holds no open file outside the
 * machine's own root, so a checkpoint restores into a fresh run dir (snapshot, fork) as well as
 * into the old one (hibernate). The agent logs a few lines per life, so the cost does not matter.
 */
export class AgentLog {
  private path: string | undefined;

  open(path: string): void {
    this.path = path;
  }

  write(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    if (this.path === undefined) return;
    try {
      appendFileSync(
        this.path,
        `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`,
      );
    } catch {
      // a log that cannot be written must not take the agent down
    }
  }
}

export const log = new AgentLog();
