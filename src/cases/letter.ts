/**
 * The registration letter: what a newly registered patient hands to their treating physician so that
 * the physician can open the request (shared/domain.md, step 1 and 2). It carries the reference number and
 * plain instructions, and deliberately nothing else about the patient: no name, no date of birth, no
 * clinical detail. The number alone links the physician's request to the registration, and a letter
 * that is lost, forwarded or printed at a shared printer then reveals no more than that a number exists.
 */
import type { AllowedReviews } from './jurisdictions.ts';
import { formatReferenceNumber } from './reference-number.ts';

export type LetterBlockStyle = 'title' | 'reference-number' | 'heading' | 'paragraph' | 'step' | 'note';

export interface LetterBlock {
  readonly style: LetterBlockStyle;
  readonly text: string;
}

export interface RegistrationLetter {
  readonly title: string;
  readonly blocks: readonly LetterBlock[];
}

export interface RegistrationLetterInput {
  /** A valid 10-digit reference number (unformatted). */
  readonly referenceNumber: string;
  /** Where physicians register and open the request: the hub's public base URL. */
  readonly hubUrl: string;
  /** The hub's FHIR base, for physicians whose EHR sends the request. */
  readonly fhirUrl: string;
  readonly issuedOn: Date;
  /** What the patient's residence allows (jurisdictions.ts); a refused review becomes a note. */
  readonly allowedReviews: AllowedReviews;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** "28 November 2026", in UTC: the letter must read the same wherever it is rendered. */
export function letterDate(date: Date): string {
  return `${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}`;
}

function refusedReviews(allowed: AllowedReviews): string | undefined {
  if (!allowed.radiology && !allowed.pathology) {
    return 'imaging studies or pathology slides and blocks';
  }
  if (!allowed.radiology) {
    return 'imaging studies';
  }
  if (!allowed.pathology) {
    return 'pathology slides and blocks';
  }
  return undefined;
}

/** The letter's text, block by block, for a renderer (PDF, HTML, e-mail) to lay out. */
export function registrationLetter(input: RegistrationLetterInput): RegistrationLetter {
  const number = formatReferenceNumber(input.referenceNumber);
  const blocks: LetterBlock[] = [
    { style: 'title', text: 'Second opinion: your reference number' },
    { style: 'reference-number', text: `Reference number: ${number}` },
    { style: 'paragraph', text: `Issued on ${letterDate(input.issuedOn)}.` },
    { style: 'heading', text: 'For the patient' },
    {
      style: 'paragraph',
      text:
        'You are registered for a second opinion. Please give this letter to your treating physician, the doctor ' +
        'who looks after you. The service works between physicians: your physician sends the request and your ' +
        "medical records, and receives the specialist's written opinion. Keep this letter until the opinion is ready.",
    },
    { style: 'heading', text: 'For the treating physician' },
    {
      style: 'paragraph',
      text:
        'Dear Doctor, your patient has registered for a physician-to-physician second opinion and asks you to ' +
        'request it. It takes these steps:',
    },
    { style: 'step', text: `1. Register as a physician at ${input.hubUrl} (only licensed physicians can register).` },
    { style: 'step', text: `2. Enter your patient's reference number: ${number}` },
    {
      style: 'step',
      text:
        '3. Give a detailed medical history and the questions you want answered. Clear, specific questions decide ' +
        'which specialist answers. Up to four questions are included; a question with several parts counts as ' +
        'several, and more questions cost extra.',
    },
    {
      style: 'step',
      text:
        '4. Tell us which materials you will send (medical records, imaging studies, pathology slides or blocks, ' +
        'discs by mail), then send them. Records that are not in English should be professionally translated.',
    },
    {
      style: 'paragraph',
      text:
        'You can start the request now and finish it later. If your EHR is connected to our FHIR API ' +
        `(${input.fhirUrl}), it can send the request with the same reference number.`,
    },
  ];
  const refused = refusedReviews(input.allowedReviews);
  if (refused) {
    blocks.push({
      style: 'note',
      text:
        `Please note: the rules where your patient lives do not allow us to review ${refused} for this case. ` +
        'Please do not send them; the opinion will be based on the other materials.',
    });
  }
  blocks.push(
    { style: 'heading', text: 'What happens next' },
    {
      style: 'paragraph',
      text:
        'A radiologist or pathologist reviews the diagnostic materials, then the case goes to a board-certified ' +
        'specialist, who usually answers within 10 business days. The written opinion is sent to you first; once ' +
        'you have opened it, your patient is told by e-mail that it is ready.',
    },
    {
      style: 'paragraph',
      text: `The reference number ends in a check digit, so a mistyped number is refused rather than matched to another case. Questions: ${input.hubUrl}`,
    },
  );
  return { title: `Second opinion reference number ${number}`, blocks };
}
