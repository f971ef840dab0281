/**
 * Frame progress: a redrawn bar on a terminal (frames, FPS, ETA), plain log lines every few seconds otherwise
 * (pipes, files, CI). Writes to stderr; stdout stays for results.
 */
import type { LogStream } from '../log.js';

export interface ProgressOptions {
  /** Frames expected, when known (videos: duration × fps or --max-frames); unknown gives no ETA. */
  total?: number;
  /** Label before the bar, e.g. the source name. */
  label?: string;
  stream?: LogStream;
  /** Non-TTY: seconds between log lines (default 5). */
  intervalS?: number;
  /** Clock in ms (tests pass a fake one). */
  now?: () => number;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class ProgressReporter {
  private readonly stream: LogStream;
  private readonly tty: boolean;
  private readonly start: number;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private lastLine: number;
  private frames = 0;

  constructor(private readonly options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true && process.env['CI'] !== 'true';
    this.now = options.now ?? Date.now;
    this.start = this.now();
    this.lastLine = this.start;
    this.intervalMs = (options.intervalS ?? 5) * 1000;
  }

  /** The status text: `label 12/100 frames  3.4 fps  ETA 26s`. */
  status(): string {
    const elapsed = (this.now() - this.start) / 1000;
    const fps = elapsed > 0 ? this.frames / elapsed : 0;
    const total = this.options.total;
    const count = total !== undefined ? `${this.frames}/${total}` : `${this.frames}`;
    const eta = total !== undefined && fps > 0 ? `  ETA ${formatDuration((total - this.frames) / fps)}` : '';
    const label = this.options.label ? `${this.options.label} ` : '';
    return `${label}${count} frames  ${fps.toFixed(2)} fps  ${formatDuration(elapsed)} elapsed${eta}`;
  }

  tick(frames = 1): void {
    this.frames += frames;
    const t = this.now();
    if (this.tty) {
      const total = this.options.total;
      const width = 24;
      const bar = total ? '█'.repeat(Math.round((width * Math.min(this.frames, total)) / total)).padEnd(width, '░') + ' ' : '';
      this.stream.write(`\r\x1b[2K${bar}${this.status()}`);
    } else if (t - this.lastLine >= this.intervalMs) {
      this.lastLine = t;
      this.stream.write(this.status() + '\n');
    }
  }

  /** Final line (on a TTY it replaces the bar). */
  done(): void {
    this.stream.write((this.tty ? '\r\x1b[2K' : '') + this.status() + '\n');
  }
}
