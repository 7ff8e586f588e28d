/**
 * The case states, as the coordination Task's businessStatus carries them (urn:hub:case-state). The
 * list is src/cases/case-state.ts's CASE_STATES; it is not imported because that module's types pull
 * in server modules. test/web-dashboard.test.ts checks that the app's state filter offers exactly the
 * server's states.
 */
export const CASE_STATE_SYSTEM = 'urn:hub:case-state';

export const CASE_STATES = [
  'intake',
  'submitted',
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
  'report-review',
  'report-released',
  'report-accessed',
  'declined',
  'cancelled',
  'failed',
] as const;

/** "specialist-review" → "Specialist review". */
export function stateLabel(state: string): string {
  const words = state.replace(/-/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function stateColor(state: string | undefined): string {
  switch (state) {
    case 'declined':
    case 'cancelled':
    case 'failed':
      return 'gray';
    case 'report-released':
    case 'report-accessed':
      return 'green';
    case 'awaiting-information':
    case 'awaiting-materials':
      return 'yellow';
    default:
      return 'blue';
  }
}
