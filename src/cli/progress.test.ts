import { ProgressReporter, formatDuration, plainProgressLine, terminalProgressLine } from './progress.ts';

const MB = 1_000_000;

describe('progress of a long command', () => {
  const half = { filesDone: 20, filesTotal: 40, bytesDone: 5 * MB, bytesTotal: 10 * MB, elapsedMs: 10_000 };

  test('durations as m:ss, and h:mm:ss from an hour on', () => {
    expect([0, 7_400, 65_000, 3_600_000 + 62_000].map(formatDuration)).toEqual(['0:00', '0:07', '1:05', '1:01:02']);
  });

  test('files, megabytes, rate and time left; the time it took once finished; no guess in the first second', () => {
    expect(plainProgressLine(half)).toBe('20/40 files, 5.0/10 MB, 0.5 MB/s, 0:10 left');
    expect(plainProgressLine({ ...half, elapsedMs: 500 })).toBe('20/40 files, 5.0/10 MB, -- MB/s, --:-- left');
    expect(plainProgressLine({ ...half, filesDone: 40, bytesDone: 10 * MB, elapsedMs: 500 }, true)).toBe(
      '40/40 files, 10/10 MB, 20 MB/s, took 0:01',
    );
  });

  test('the terminal line has a bar that fills with the bytes and fits the width it is given', () => {
    const line = terminalProgressLine(half, 100);
    expect(line).toMatch(/^\[#{15}\.{15}\] 20\/40 files, 5\.0\/10 MB, 0\.5 MB\/s, 0:10 left$/);
    expect(terminalProgressLine(half, 70).length).toBeLessThanOrEqual(70);
    expect(terminalProgressLine(half, 40)).not.toContain('[');
    expect(terminalProgressLine(half, 40).length).toBeLessThan(40);
  });

  test('a terminal is redrawn in place at most every 100 ms; other streams get a line every 5 s and at the end', () => {
    let now = 0;
    const written: { tty: string[]; plain: string[] } = { tty: [], plain: [] };
    const tty = new ProgressReporter({ write: (text) => written.tty.push(text), isTTY: true, columns: 0 }, () => now);
    const plain = new ProgressReporter({ write: (text) => written.plain.push(text) }, () => now);
    for (now = 0; now <= 6_000; now += 50) {
      tty.update(half);
      plain.update(half);
    }
    tty.finish(half);
    plain.finish(half);
    expect(written.tty.length).toBeGreaterThan(50);
    expect(written.tty.length).toBeLessThan(70);
    expect(written.tty.slice(0, -1).every((text) => text.startsWith('\r[') && text.endsWith('\u001b[K'))).toBe(true);
    expect(written.tty.at(-1)).toBe('\n');
    expect(written.plain).toEqual([
      'progress: 20/40 files, 5.0/10 MB, -- MB/s, --:-- left\n',
      'progress: 20/40 files, 5.0/10 MB, 1.0 MB/s, 0:05 left\n',
      'progress: 20/40 files, 5.0/10 MB, 0.8 MB/s, took 0:06\n',
    ]);
  });
});
