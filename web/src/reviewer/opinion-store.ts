/**
 * The specialist's draft opinion at the hub (docs/case-workflow.md, "The opinion"): found again by
 * searching the case's draft consultation reports (a draft is its author's and the staff's only, so
 * the hub answers the person's own), created as the letter and its report in one transaction, and
 * saved again with If-Match, so a save from another window in between is refused, not overwritten.
 */
import type { Bundle, Composition, DiagnosticReport } from '@medplum/fhirtypes';
import { fhirGet, fhirRequest, searchEntries } from '../fhir.ts';
import { CONSULTATION_NOTE, LETTER_EXTENSION, LOINC, ifMatch } from './codes.ts';
import { buildLetter, buildReport } from './letter.ts';
import type { LetterContext, LetterDraft } from './letter.ts';

export interface StoredDraft {
  report: DiagnosticReport;
  letter: Composition;
}

const enc = encodeURIComponent;
const DRAFT = 'registered,partial,preliminary';
const ISSUED = 'final,amended,corrected,appended';

function letterIdOf(report: DiagnosticReport): string | undefined {
  const reference = report.extension?.find((extension) => extension.url === LETTER_EXTENSION)?.valueReference;
  return /^Composition\/([A-Za-z0-9\-.]{1,64})$/.exec(reference?.reference ?? '')?.[1];
}

function reportsQuery(caseId: string, statuses: string): string {
  return (
    `DiagnosticReport?based-on=${enc(`ServiceRequest/${caseId}`)}&code=${enc(`${LOINC}|${CONSULTATION_NOTE}`)}` +
    `&status=${statuses}&_sort=-_lastUpdated&_count=20`
  );
}

/** The person's draft of the case's opinion (their own as interpreter, else the newest they may see). */
export async function loadDraft(caseId: string, author: string): Promise<StoredDraft | null> {
  const drafts = searchEntries<DiagnosticReport>(
    await fhirGet<Bundle>(reportsQuery(caseId, DRAFT)),
    'DiagnosticReport',
  );
  const report = drafts.find((draft) => draft.resultsInterpreter?.some((who) => who.reference === author)) ?? drafts[0];
  const letterId = report === undefined ? undefined : letterIdOf(report);
  if (report === undefined || letterId === undefined) {
    return null;
  }
  return { report, letter: await fhirGet<Composition>(`Composition/${enc(letterId)}`) };
}

/** The case's approved opinion, once there is one. */
export async function loadIssued(caseId: string): Promise<DiagnosticReport | null> {
  return (
    searchEntries<DiagnosticReport>(await fhirGet<Bundle>(reportsQuery(caseId, ISSUED)), 'DiagnosticReport')[0] ?? null
  );
}

const LETTER_UUID = 'urn:uuid:6f1c3a1e-0d3b-4c1e-9a57-2b1f0c9d0a01';
const REPORT_UUID = 'urn:uuid:6f1c3a1e-0d3b-4c1e-9a57-2b1f0c9d0a02';

/** The first save: the letter and the report naming it, both or neither. */
export async function createDraft(draft: LetterDraft, context: LetterContext): Promise<StoredDraft> {
  const response = await fhirRequest<Bundle>('POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: LETTER_UUID, resource: buildLetter(draft, context), request: { method: 'POST', url: 'Composition' } },
      {
        fullUrl: REPORT_UUID,
        resource: buildReport(draft, context, LETTER_UUID),
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
    ],
  });
  const [letterAt, reportAt] = (response.entry ?? []).map((entry) => entry.response?.location ?? '');
  const idIn = (location: string | undefined, type: string) =>
    new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})`).exec(location ?? '')?.[1] ?? '';
  const [letter, report] = await Promise.all([
    fhirGet<Composition>(`Composition/${enc(idIn(letterAt, 'Composition'))}`),
    fhirGet<DiagnosticReport>(`DiagnosticReport/${enc(idIn(reportAt, 'DiagnosticReport'))}`),
  ]);
  return { letter, report };
}

/** A later save: the letter, and the report when its conclusion changed. */
export async function updateDraft(
  stored: StoredDraft,
  draft: LetterDraft,
  context: LetterContext,
): Promise<StoredDraft> {
  const letterPath = `Composition/${enc(stored.letter.id ?? '')}`;
  const letter = await fhirRequest<Composition>(
    'PUT',
    letterPath,
    buildLetter(draft, context, stored.letter),
    ifMatch(stored.letter),
  );
  const wanted = draft.conclusion.trim();
  if ((stored.report.conclusion ?? '') === wanted) {
    return { letter, report: stored.report };
  }
  const reportPath = `DiagnosticReport/${enc(stored.report.id ?? '')}`;
  const report = await fhirRequest<DiagnosticReport>(
    'PUT',
    reportPath,
    buildReport(draft, context, `Composition/${stored.letter.id ?? ''}`, stored.report),
    ifMatch(stored.report),
  );
  return { letter, report };
}
