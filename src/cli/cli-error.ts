/** A refusal of the command-line tool: its message is printed as is, and the process exits with `exitCode`. */
export class CliError extends Error {
  /** 1: the command failed; 2: it was used wrongly (unknown option, bad value). */
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}
