/** How the demo prints: numbered steps, indented results, and the writer the hub recorded. */
import type { Resource } from './client.ts';

let stepNumber = 0;
let stepTitle = '';

export function step(title: string): void {
  stepNumber += 1;
  stepTitle = title;
  console.log(`\n${stepNumber}. ${title}`);
}
export const show = (line: string): void => console.log(`   ${line}`);

/** The step under way, to name it when the demo fails. */
export const currentStep = (): string =>
  stepNumber === 0 ? 'before the first step' : `step ${stepNumber} (${stepTitle})`;

/** The version's writer as the hub stamped it (meta.source, urn:hub:actor:<role>:<id>). */
export const writer = (resource: Resource): string => resource.meta?.source ?? '(no writer recorded)';
