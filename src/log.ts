/**
 * The human log: one line per message on stderr (stdout stays for results), with a level filter and colour only
 * where a terminal shows it (never with NO_COLOR, never into a pipe or file).
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where log lines go: process.stderr or anything with the same write/isTTY shape (tests use a buffer). */
export interface LogStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface LoggerOptions {
  level?: LogLevel;
  stream?: LogStream;
  /** Overrides the TTY / NO_COLOR decision. */
  color?: boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

// SGR codes: dim, yellow, red.
const STYLE: Record<Exclude<LogLevel, 'silent'>, { prefix: string; sgr: string }> = {
  debug: { prefix: 'debug: ', sgr: '2' },
  info: { prefix: '', sgr: '' },
  warn: { prefix: 'warning: ', sgr: '33' },
  error: { prefix: 'error: ', sgr: '31' },
};

/** no-color.org: NO_COLOR present and not empty turns colour off. */
export function colorWanted(stream: LogStream, env: NodeJS.ProcessEnv = process.env): boolean {
  const noColor = env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return stream.isTTY === true;
}

export class Logger {
  level: LogLevel;
  private readonly stream: LogStream;
  private readonly color: boolean;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? 'info';
    this.stream = options.stream ?? process.stderr;
    this.color = options.color ?? colorWanted(this.stream);
  }

  enabled(level: Exclude<LogLevel, 'silent'>): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(message: string): void {
    this.emit('debug', message);
  }
  info(message: string): void {
    this.emit('info', message);
  }
  warn(message: string): void {
    this.emit('warn', message);
  }
  error(message: string): void {
    this.emit('error', message);
  }

  private emit(level: Exclude<LogLevel, 'silent'>, message: string): void {
    if (!this.enabled(level)) return;
    const { prefix, sgr } = STYLE[level];
    const text = prefix + message;
    this.stream.write((this.color && sgr ? `\x1b[${sgr}m${text}\x1b[0m` : text) + '\n');
  }
}

/** The process-wide logger the CLI and library share; the CLI sets its level from --verbose / --quiet. */
export const log = new Logger();

/** Level for the CLI's global flags: --quiet wins (errors only), --verbose shows debug lines. */
export function levelFromFlags(flags: { verbose?: boolean; quiet?: boolean }): LogLevel {
  if (flags.quiet) return 'error';
  if (flags.verbose) return 'debug';
  return 'info';
}
