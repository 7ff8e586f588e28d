/**
 * What the case asks of its referring physician in each state (docs/case-workflow.md), in words, and
 * what their page offers then. The states are the hub's (urn:hub:case-state); the page decides nothing
 * the hub would not let them do.
 */
export interface NextStep {
  /** One sentence: what is asked of the physician now, or that nothing is. */
  text: string;
  /** Whether something is asked of them (the page shows it as a call to act). */
  asked: boolean;
  /** Whether records and imaging may still be sent. */
  uploads: boolean;
}

const SENDING = new Set([
  'intake',
  'submitted',
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
]);

export function nextStep(state: string | undefined, requestStatus: string | undefined): NextStep {
  const uploads = requestStatus === 'active' && state !== undefined && SENDING.has(state);
  switch (state) {
    case undefined:
    case 'intake':
      return requestStatus === 'draft'
        ? { text: 'The request is a draft: submit it from your EHR once it is complete.', asked: true, uploads }
        : { text: 'Nothing for now: the hub is taking up the request.', asked: false, uploads };
    case 'submitted':
      return { text: 'Nothing for now: a coordinator is reviewing the request.', asked: false, uploads };
    case 'awaiting-materials':
      return {
        text: 'Send the records and imaging the request plans: upload them below.',
        asked: true,
        uploads,
      };
    case 'pre-review':
      return { text: 'Nothing for now: the materials are in pre-review.', asked: false, uploads };
    case 'matching':
      return { text: 'Nothing for now: the hub is choosing the specialist.', asked: false, uploads };
    case 'specialist-review':
      return { text: 'Nothing for now: the specialist is writing the opinion.', asked: false, uploads };
    case 'awaiting-information':
      return { text: 'The specialist asked you a question: answer it below.', asked: true, uploads };
    case 'report-review':
      return { text: 'Nothing for now: the opinion is being reviewed before it is released.', asked: false, uploads };
    case 'report-released':
      return {
        text: 'The opinion is ready: read it below. Your patient can read it once you have.',
        asked: true,
        uploads,
      };
    case 'report-accessed':
      return {
        text: 'You have read the opinion, and so can your patient. Ask a clarification below if anything is unclear.',
        asked: false,
        uploads,
      };
    case 'declined':
      return { text: 'The case was declined.', asked: false, uploads };
    case 'cancelled':
      return { text: 'The case was cancelled.', asked: false, uploads };
    case 'failed':
      return { text: 'The case could not go on; the coordinators have been told.', asked: false, uploads };
    default:
      return { text: 'Nothing for now.', asked: false, uploads };
  }
}
