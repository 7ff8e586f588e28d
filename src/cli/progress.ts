/**
 * The progress of a long command (`hub dicom import`) on stderr: on a terminal one line redrawn in
 * place, a bar with files, megabytes, rate and time left; elsewhere (a pipe, a log file, cron) a
 * plain line now and then and at the end, with no control characters.
 */

export interface ProgressState {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
}

/** Where the lines go: a terminal has `isTTY` and `columns`. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean | undefined;
  columns?: number | undefined;
}

const MB = 1_000_000;
const REDRAW_MS = 100;
const PLAIN_EVERY_MS = 5_000;
/** Before this, the rate says too little to tell the time left. */
const RATE_AFTER_MS = 1_000;

export function formatMegabytes(bytes: number): string {
  return (bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0);
}

/** `m:ss`, or `h:mm:ss` from an hour on. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The rate, and the time left (or, once finished, the time it took). */
function rateAndTime(state: ProgressState, finished: boolean): { rate: string; time: string } {
  const took = `took ${formatDuration(state.elapsedMs)}`;
  if ((!finished && state.elapsedMs < RATE_AFTER_MS) || state.bytesDone === 0 || state.elapsedMs <= 0) {
    return { rate: '-- MB/s', time: finished ? took : '--:-- left' };
  }
  const bytesPerMs = state.bytesDone / state.elapsedMs;
  return {
    rate: `${formatMegabytes(bytesPerMs * 1000)} MB/s`,
    time: finished ? took : `${formatDuration((state.bytesTotal - state.bytesDone) / bytesPerMs)} left`,
  };
}

function counts(state: ProgressState): string {
  return `${state.filesDone}/${state.filesTotal} files, ${formatMegabytes(state.bytesDone)}/${formatMegabytes(state.bytesTotal)} MB`;
}

/** The plain line: `12/40 files, 3.2/10.5 MB, 1.1 MB/s, 0:07 left` (at the end `took 0:21`). */
export function plainProgressLine(state: ProgressState, finished = false): string {
  const { rate, time } = rateAndTime(state, finished);
  return `${counts(state)}, ${rate}, ${time}`;
}

/** The terminal line, a bar first, fitted to `width` columns (the bar shrinks first, then goes). */
export function terminalProgressLine(state: ProgressState, width: number, finished = false): string {
  const { rate, time } = rateAndTime(state, finished);
  const text = ` ${counts(state)}, ${rate}, ${time}`;
  const barWidth = Math.min(30, width - text.length - 3);
  if (barWidth < 5) {
    return text.trim().slice(0, Math.max(0, width - 1));
  }
  const done = state.bytesTotal > 0 ? state.bytesDone / state.bytesTotal : state.filesDone / (state.filesTotal || 1);
  const filled = Math.min(barWidth, Math.round(done * barWidth));
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${text}`;
}

export class ProgressReporter {
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastWrite = Number.NEGATIVE_INFINITY;
  private drawn = false;

  constructor(stream: ProgressStream, now: () => number = Date.now) {
    this.stream = stream;
    this.now = now;
    this.startedAt = now();
  }

  private state(progress: Omit<ProgressState, 'elapsedMs'>): ProgressState {
    return { ...progress, elapsedMs: this.now() - this.startedAt };
  }

  update(progress: Omit<ProgressState, 'elapsedMs'>): void {
    const at = this.now();
    if (at - this.lastWrite < (this.stream.isTTY ? REDRAW_MS : PLAIN_EVERY_MS)) {
      return;
    }
    this.lastWrite = at;
    this.write(this.state(progress), false);
  }

  /** The last state, always written; a terminal's line is ended. */
  finish(progress: Omit<ProgressState, 'elapsedMs'>): void {
    this.write(this.state(progress), true);
    if (this.stream.isTTY) {
      this.stream.write('\n');
      this.drawn = false;
    }
  }

  private write(state: ProgressState, finished: boolean): void {
    if (this.stream.isTTY) {
      // Back to the start of the line, the line, then clear what a longer line left.
      // A terminal that does not know its size (a bare pseudo-terminal) says 0 columns.
      const columns = this.stream.columns !== undefined && this.stream.columns > 0 ? this.stream.columns : 80;
      this.stream.write(`\r${terminalProgressLine(state, columns, finished)}\u001b[K`);
      this.drawn = true;
    } else {
      this.stream.write(`progress: ${plainProgressLine(state, finished)}\n`);
    }
  }

  /** Ends a drawn line before other output goes to the same terminal. */
  interrupt(): void {
    if (this.drawn) {
      this.stream.write('\n');
      this.drawn = false;
    }
  }
}
