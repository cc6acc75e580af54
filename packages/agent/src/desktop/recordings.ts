import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { CodedError, type RecordingInfo } from '@nullspace/protocol/core';
import { log } from '../log.js';
import { DESKTOP_STATE_DIR, type DesktopSession, startProgram } from './session.js';

const DIR = `${DESKTOP_STATE_DIR}/recordings`;
const INDEX = `${DIR}/index.json`;

interface Entry {
  info: RecordingInfo;
  proc?: ChildProcess;
}

/**
 * Screen recordings: ffmpeg grabbing display :0 (x11grab) into H.264 in fragmented MP4 (a fragment
 * a second, so a recording cut short is playable up to its last fragment). The files and their
 * index live in the machine, so the list survives hibernation, and a fork has its parent's.
 */
export class Recordings {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly session: DesktopSession) {
    try {
      const saved = JSON.parse(readFileSync(INDEX, 'utf8')) as RecordingInfo[];
      for (const info of saved) {
        // A recording that was running when the agent last stopped (not a checkpoint: then the
        // agent itself comes back) ended with it.
        if (info.status === 'recording') {
          info.status = 'stopped';
          info.stopped_at = new Date().toISOString();
        }
        this.entries.set(info.id, { info: this.sized(info) });
      }
    } catch {
      // No recordings yet.
    }
  }

  private path(id: string): string {
    return `${DIR}/${id}.mp4`;
  }

  private sized(info: RecordingInfo): RecordingInfo {
    try {
      info.size_bytes = statSync(this.path(info.id)).size;
    } catch {
      info.size_bytes = 0;
    }
    return info;
  }

  private save(): void {
    mkdirSync(DIR, { recursive: true });
    const tmp = `${INDEX}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.entries.values()].map((e) => e.info)));
    renameSync(tmp, INDEX);
  }

  private entry(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new CodedError('not_found', `no recording ${id} in this machine`, { recording_id: id });
    return e;
  }

  list(): RecordingInfo[] {
    return [...this.entries.values()].map((e) => this.sized(e.info));
  }

  get(id: string): RecordingInfo {
    return this.sized(this.entry(id).info);
  }

  file(id: string): string {
    this.entry(id);
    const p = this.path(id);
    if (!existsSync(p))
      throw new CodedError('not_found', `recording ${id} has no file (yet)`, { recording_id: id });
    return p;
  }

  async start(fps: number): Promise<RecordingInfo> {
    const g = await this.session.ready();
    mkdirSync(DIR, { recursive: true });
    const id = `rec_${randomBytes(8).toString('hex')}`;
    const info: RecordingInfo = {
      id,
      status: 'recording',
      fps,
      width: g.width - (g.width % 2),
      height: g.height - (g.height % 2),
      started_at: new Date().toISOString(),
      stopped_at: null,
      size_bytes: 0,
    };
    const proc = startProgram(`ffmpeg-${id}`, 'ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'x11grab',
      '-framerate',
      String(fps),
      '-video_size',
      `${info.width}x${info.height}`,
      '-draw_mouse',
      '1',
      '-i',
      ':0.0+0,0',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-pix_fmt',
      'yuv420p',
      '-g',
      String(fps),
      '-movflags',
      '+frag_keyframe+empty_moov+default_base_moof',
      // Each fragment reaches the file when it is complete, not when a 32 KiB buffer fills.
      '-flush_packets',
      '1',
      '-f',
      'mp4',
      '-y',
      this.path(id),
    ]);
    const entry: Entry = { info, proc };
    proc.on('exit', (code, signal) => {
      entry.proc = undefined;
      if (info.status === 'recording') {
        // Ended by itself: whatever it wrote is kept.
        info.status = code === 0 || signal === 'SIGINT' ? 'stopped' : 'failed';
        if (info.status === 'failed')
          info.error = `ffmpeg exited (${signal ?? code}); see its log in ${DESKTOP_STATE_DIR}`;
        info.stopped_at = new Date().toISOString();
        this.save();
      }
    });
    this.entries.set(id, entry);
    this.save();
    log.write('info', 'recording started', { id, fps, pid: proc.pid });
    return info;
  }

  /** Stops a recording: ffmpeg finishes its last fragment and exits. */
  async stop(id: string): Promise<RecordingInfo> {
    const e = this.entry(id);
    const proc = e.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      e.info.status = 'stopped';
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        proc.kill('SIGINT');
      });
      e.info.stopped_at = new Date().toISOString();
      this.save();
    }
    return this.sized(e.info);
  }

  async remove(id: string): Promise<RecordingInfo> {
    const info = await this.stop(id);
    this.entries.delete(id);
    rmSync(this.path(id), { force: true });
    this.save();
    return info;
  }
}
