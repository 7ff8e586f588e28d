/**
 * The reviewers' cases for the web app's browser test (test/web-reviewer.test.ts), loaded by an EHR
 * (a system client) as a transaction of PUTs, with their studies sent by STOW-RS:
 * - `offer`: offered to the specialist `Practitioner/prac-s` (not yet accepted), with a records PDF and
 *   a CT study of two series (five instances, and one), matched to the case by its AccessionNumber;
 * - `decline`: another offer to the same specialist;
 * - `other`: another specialist's (`Practitioner/prac-s2`) case, in specialist review;
 * - `radiology`: in pre-review, its radiology pre-review assigned to `Practitioner/prac-r`, with a
 *   one-instance study.
 * Every case has the physician's two questions (test/support/opinion-case.ts).
 */
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { CASE, CASE_STATE, TASK_CODE, opinionCaseFixtures } from './opinion-case.ts';
import { runDcmtk } from './dicom/test-peer.ts';
import { stow } from './stow.ts';

const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const DAY_MS = 24 * 60 * 60 * 1000;
/** HTML stored as a "PDF": framed as the app's own page, its script would run with the app's token. */
const NOT_A_PDF = Buffer.from(
  '<!doctype html><h1 id="injected">Injected</h1><script>parent.document.title = "injected"</script>',
).toString('base64');

export const REVIEWER_CASES = {
  offer: 'sr-rev-offer',
  decline: 'sr-rev-decline',
  other: 'sr-rev-other',
  radiology: 'sr-rev-rad',
} as const;

export const accessionOf = (sr: string): string => `ACC-${sr}`;

/** A records PDF of `pages` pages. */
export async function recordsPdf(pages: number): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let number = 1; number <= pages; number++) {
    pdf
      .addPage([612, 792])
      .drawText(`Discharge summary, page ${number} of ${pages}`, { x: 72, y: 720, size: 16, font });
  }
  return pdf.save();
}

type Resource = Record<string, unknown>;

/** The case `sr` in `state`, its offer (if any) to `specialist` in `offerStatus`, due `dueAt`. */
function reviewerCase(
  sr: string,
  referenceNumber: string,
  options: { state: string; specialist?: string; offerStatus?: string; dueAt: string },
): Resource[] {
  return opinionCaseFixtures(sr, referenceNumber).flatMap((resource): Resource[] => {
    if (resource.resourceType === 'ServiceRequest') {
      return [{ ...resource, identifier: [{ system: 'urn:example:accession', value: accessionOf(sr) }] }];
    }
    if (resource.resourceType === 'Task' && resource.id === `coord-${sr}`) {
      return [{ ...resource, businessStatus: { coding: [{ system: CASE_STATE, code: options.state }] } }];
    }
    if (resource.resourceType === 'Task' && resource.id === `offer-${sr}`) {
      if (options.specialist === undefined) {
        return [];
      }
      return [
        {
          ...resource,
          identifier: [{ system: CASE, value: `${sr}/specialist-opinion/${options.specialist}` }],
          status: options.offerStatus,
          owner: { reference: `Practitioner/${options.specialist}` },
          authoredOn: new Date().toISOString(),
          restriction: { period: { end: options.dueAt } },
          note: [{ authorString: 'matching', text: 'Offered to the best candidate (for the coordinators).' }],
        },
      ];
    }
    return [resource];
  });
}

/** Every resource of the four cases, and the practitioners. */
export async function reviewerFixtures(referenceNumbers: Record<keyof typeof REVIEWER_CASES, string>, now: Date) {
  // Seven calendar days hold five business days, whatever the weekday.
  const dueAt = new Date(now.getTime() + 7 * DAY_MS).toISOString();
  const pdf = Buffer.from(await recordsPdf(2)).toString('base64');
  const { offer, decline, other, radiology } = REVIEWER_CASES;
  return [
    { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
    { resourceType: 'Practitioner', id: 'prac-phys', name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }] },
    { resourceType: 'Practitioner', id: 'prac-s', name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }] },
    { resourceType: 'Practitioner', id: 'prac-s2', name: [{ prefix: ['Dr.'], given: ['Ben'], family: 'Brightwater' }] },
    { resourceType: 'Practitioner', id: 'prac-r', name: [{ prefix: ['Dr.'], given: ['Rita'], family: 'Roentgen' }] },
    ...reviewerCase(offer, referenceNumbers.offer, {
      state: 'matching',
      specialist: 'prac-s',
      offerStatus: 'requested',
      dueAt,
    }),
    { resourceType: 'Binary', id: `bin-${offer}`, contentType: 'application/pdf', data: pdf },
    {
      resourceType: 'DocumentReference',
      id: `doc-${offer}`,
      status: 'current',
      description: 'Discharge summary',
      type: { text: 'Discharge summary' },
      subject: { reference: `Patient/pat-${offer}` },
      context: { related: [{ reference: `ServiceRequest/${offer}` }] },
      content: [
        { attachment: { contentType: 'application/pdf', url: `Binary/bin-${offer}`, title: 'Discharge summary' } },
      ],
    },
    // A record that calls itself a PDF and is HTML (anyone who may add a record could store one).
    { resourceType: 'Binary', id: `bin-html-${offer}`, contentType: 'text/html', data: NOT_A_PDF },
    {
      resourceType: 'DocumentReference',
      id: `doc-html-${offer}`,
      status: 'current',
      description: 'Outside letter',
      subject: { reference: `Patient/pat-${offer}` },
      context: { related: [{ reference: `ServiceRequest/${offer}` }] },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/bin-html-${offer}` } }],
    },
    ...reviewerCase(decline, referenceNumbers.decline, {
      state: 'matching',
      specialist: 'prac-s',
      offerStatus: 'requested',
      dueAt,
    }),
    ...reviewerCase(other, referenceNumbers.other, {
      state: 'specialist-review',
      specialist: 'prac-s2',
      offerStatus: 'accepted',
      dueAt,
    }).map((resource) =>
      resource.resourceType === 'Patient'
        ? { ...resource, name: [{ given: ['Henrik'], family: 'Lindqvist' }] }
        : resource,
    ),
    // A resident of Massachusetts, whose rules allow a radiology review: the hub checks it before matching.
    ...reviewerCase(radiology, referenceNumbers.radiology, { state: 'pre-review', dueAt }).map((resource) =>
      resource.resourceType === 'Patient' ? { ...resource, address: [{ state: 'MA', country: 'US' }] } : resource,
    ),
    {
      resourceType: 'Task',
      id: `pre-${radiology}`,
      identifier: [{ system: CASE, value: `${radiology}/pre-review-radiology` }],
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'pre-review-radiology' }] },
      basedOn: [{ reference: `ServiceRequest/${radiology}` }],
      partOf: [{ reference: `Task/coord-${radiology}` }],
      owner: { reference: 'Practitioner/prac-r' },
      authoredOn: now.toISOString(),
    },
  ];
}

/** A CT instance (pydicom's CT_small) with the given UIDs, numbers and AccessionNumber. */
async function ctInstance(
  dir: string,
  uids: { study: string; series: string; instance: string },
  numbers: { series: number; instance: number },
  accession: string,
): Promise<string> {
  const file = path.join(dir, `${uids.instance}.dcm`);
  await copyFile(CT_SMALL, file);
  const set: [string, string][] = [
    ['0020,000D', uids.study],
    ['0020,000E', uids.series],
    ['0008,0018', uids.instance],
    ['0020,0011', String(numbers.series)],
    ['0020,0013', String(numbers.instance)],
    ['0008,103E', `Series ${numbers.series}`],
    ['0008,0050', accession],
    ['0010,0020', `PID-${accession}`],
  ];
  const result = await runDcmtk('dcmodify', [
    '-nb',
    ...set.flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]),
    file,
  ]);
  if (result.code !== 0) {
    throw new Error(`dcmodify: ${result.output}`);
  }
  return file;
}

/** The studies' UIDs: `offer` has two series (5 instances and 1), `radiology` one instance. */
export function studyUids(root: string) {
  return {
    offer: {
      study: `${root}.1`,
      series: [`${root}.1.1`, `${root}.1.2`],
      instances: [[1, 2, 3, 4, 5].map((n) => `${root}.1.1.${n}`), [`${root}.1.2.1`]],
    },
    radiology: { study: `${root}.2`, series: [`${root}.2.1`], instances: [[`${root}.2.1.1`]] },
  };
}

/** Sends the cases' studies by STOW-RS as the EHR (`token`). */
export async function sendReviewerStudies(baseUrl: string, token: string, dir: string, root: string): Promise<void> {
  const uids = studyUids(root);
  for (const [kind, sr] of [
    ['offer', REVIEWER_CASES.offer],
    ['radiology', REVIEWER_CASES.radiology],
  ] as const) {
    const study = uids[kind];
    const files: Buffer[] = [];
    for (const [seriesIndex, series] of study.series.entries()) {
      for (const [instanceIndex, instance] of (study.instances[seriesIndex] ?? []).entries()) {
        const file = await ctInstance(
          dir,
          { study: study.study, series, instance },
          { series: seriesIndex + 1, instance: instanceIndex + 1 },
          accessionOf(sr),
        );
        files.push(await readFile(file));
      }
    }
    const response = await stow(baseUrl, files, { authorization: `Bearer ${token}` });
    if (response.status !== 200) {
      throw new Error(`STOW-RS of ${kind}: HTTP ${response.status} ${await response.text()}`);
    }
  }
}
