/**
 * Prints the run's counts as one plain line at the very end ("jest: N passed, N failed, N skipped"),
 * the closing line that CI tooling reads whatever the test runner.
 */
import process from 'node:process';

export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const line = `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${results.numPendingTests + results.numTodoTests} skipped\n`;
    // After Jest's own summary, which its reporters print later in the same tick.
    process.once('exit', () => process.stderr.write(line));
  }
}
