/**
 * The case's state for the patient, in a sentence a patient understands: where their request is and
 * what happens next, never the hub's code or a coordinator's note (the coordination Task's
 * statusReason is written for the staff and the specialist, so the patient's page never shows it).
 */
const SENTENCES: Record<string, string> = {
  intake: 'Your physician is preparing the request for your second opinion.',
  submitted: 'Your physician has sent the request. Our coordinators are reviewing it.',
  'awaiting-materials': 'We are waiting for your medical records and images to arrive from your physician.',
  'pre-review': 'Our radiologists or pathologists are reviewing your images and slides.',
  matching: 'We are choosing the specialist best suited to answer your questions.',
  'specialist-review': 'A specialist is reviewing your case and writing the opinion.',
  'awaiting-information':
    'The specialist has asked your physician for more information. The review goes on once they answer.',
  'report-review': 'The specialist has written the opinion. Our team is reviewing it before it is released.',
  'report-released':
    'Your opinion is ready and has gone to your physician first. You can read it here as soon as your physician has opened it.',
  'report-accessed': 'Your opinion is ready. Your physician has it too: talk it over with them.',
  declined: 'We cannot take this request. Your physician has been told why.',
  cancelled: 'This request was cancelled.',
  failed: 'Something went wrong with this request. Our coordinators know and will contact your physician.',
};

export function plainState(state: string | undefined): string {
  return state === undefined ? (SENTENCES.intake ?? '') : (SENTENCES[state] ?? 'Your request is being handled.');
}

/** The opinion is the patient's once their physician has opened it (docs/access.md, "Release"). */
export function opinionIsTheirs(state: string | undefined): boolean {
  return state === 'report-accessed';
}
