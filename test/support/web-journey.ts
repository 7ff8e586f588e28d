/**
 * What the capstone browser journey (test/web-case-journey.test.ts) uses besides the browser: its
 * people, the referral an EHR sends, another physician's case that nobody in the journey but the
 * coordinator may see, DICOM files made from pydicom's samples (a CT series on the patient's CD, a
 * prior MR an imaging system sends), and the check each main screen gets: axe-core at 1280×800 and
 * at 800×1000, nothing wider than an 800 px window, and, when SCREENSHOTS_DIR names a folder, a
 * PNG of the screen at 1280×800 (`npm run screenshots`).
 *
 * Every name, birth date and number here is invented; the samples' own patient data is overwritten.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { rosterFixtures } from './case-review-fixtures.ts';
import { runDcmtk } from './dicom/test-peer.ts';
import { orderDetail } from './case-fixtures.ts';
import { CASE, opinionCaseFixtures } from './opinion-case.ts';
import { until } from './until.ts';
import { UI_TIMEOUT_MS, axeFindings } from './web-app.ts';
import type { AxeFinding } from './web-app.ts';
import { ACCOUNTS } from './web-hub.ts';
import type { WebAccount } from './web-hub.ts';

export const SR = 'sr-journey';
export const OTHER = 'sr-journey-other';
export const PATIENT = {
  id: 'pat-journey',
  name: 'Olivia Quintero',
  dicomName: 'Quintero^Olivia',
  birthDate: '1961-04-12',
};
export const QUESTIONS = ['Is the nodule in the right upper lobe malignant?', 'Which treatment do you advise?'];

export type Person = 'coordinator' | 'radiologist' | 'specialist' | 'physician' | 'patient';
export const PEOPLE: Record<Person, WebAccount> = {
  coordinator: ACCOUNTS.cora,
  radiologist: ACCOUNTS.rita,
  specialist: ACCOUNTS.amelia,
  physician: ACCOUNTS.paul,
  patient: { email: 'olivia@patient.example.org', role: 'patient', fhirUser: `Patient/${PATIENT.id}` },
};

type Resource = Record<string, unknown>;

/**
 * What is on the hub before the referral: the coordinator, the referring physician and a colleague,
 * the roster (two oncologists and a fellow, a radiologist), and the colleague's case of another
 * patient, in specialist review with the second oncologist.
 */
export function journeyBackground(otherReference: string, dueAt: string): Resource[] {
  return [
    { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
    {
      resourceType: 'Practitioner',
      id: 'prac-phys',
      name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
      telecom: [{ system: 'email', value: PEOPLE.physician.email }],
    },
    {
      resourceType: 'Practitioner',
      id: 'prac-other',
      name: [{ prefix: ['Dr.'], given: ['Olga'], family: 'Other' }],
      telecom: [{ system: 'email', value: 'olga@elsewhere.example.org' }],
    },
    ...rosterFixtures(),
    ...opinionCaseFixtures(OTHER, otherReference).map((resource) => {
      switch (resource.resourceType) {
        case 'Patient':
          return { ...resource, name: [{ given: ['Henrik'], family: 'Lindqvist' }] };
        case 'ServiceRequest':
          return { ...resource, requester: { reference: 'Practitioner/prac-other' } };
        case 'Task':
          return resource.id === `offer-${OTHER}`
            ? {
                ...resource,
                identifier: [{ system: CASE, value: `${OTHER}/specialist-opinion/prac-s2` }],
                owner: { reference: 'Practitioner/prac-s2' },
                restriction: { period: { end: dueAt } },
              }
            : resource;
        default:
          return resource;
      }
    }),
  ];
}

/**
 * The referral as the physician's EHR sends it: the patient (living in Massachusetts, whose rules
 * allow a radiology review), their two questions, and the active request planning two imaging
 * studies and three pages of records.
 */
export function referral(referenceNumber: string): Resource[] {
  return [
    {
      resourceType: 'Patient',
      id: PATIENT.id,
      identifier: [{ system: 'urn:hub:reference-number', value: referenceNumber }],
      name: [{ given: ['Olivia'], family: 'Quintero' }],
      birthDate: PATIENT.birthDate,
      telecom: [{ system: 'email', value: PEOPLE.patient.email }],
      address: [{ use: 'home', city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' }],
    },
    {
      resourceType: 'QuestionnaireResponse',
      id: `qr-${SR}`,
      status: 'completed',
      subject: { reference: `Patient/${PATIENT.id}` },
      item: [{ linkId: 'question', answer: QUESTIONS.map((valueString) => ({ valueString })) }],
    },
    {
      resourceType: 'ServiceRequest',
      id: SR,
      status: 'active',
      intent: 'order',
      identifier: [{ system: 'urn:hub:reference-number', value: referenceNumber }],
      requisition: { system: 'urn:hub:reference-number', value: referenceNumber },
      code: { text: 'Second opinion' },
      subject: { reference: `Patient/${PATIENT.id}` },
      requester: { reference: 'Practitioner/prac-phys' },
      supportingInfo: [{ reference: `QuestionnaireResponse/qr-${SR}` }],
      orderDetail: orderDetail({ imagingSites: 2, recordPages: 3 }),
    },
  ];
}

const SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const dicomUid = (): string => `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;

/** A copy of a pydicom sample with `attributes` set (dcmodify also keeps the File Meta's UIDs in step). */
async function sample(name: string, file: string, attributes: Record<string, string>): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await copyFile(path.join(SAMPLES, name), file);
  const run = await runDcmtk('dcmodify', [
    '-nb',
    ...Object.entries(attributes).flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]),
    file,
  ]);
  if (run.code !== 0) {
    throw new Error(`dcmodify ${name}: ${run.output}`);
  }
  return file;
}

const identity = {
  '0010,0010': PATIENT.dicomName,
  '0010,0030': PATIENT.birthDate.replace(/-/g, ''),
  '0008,0080': 'Example Imaging Center',
};

/** `count` CT images of one series (pydicom's CT_small), as the patient's CD holds them: the files' paths. */
export async function cdSeries(dir: string, count: number): Promise<string[]> {
  const study = dicomUid();
  const series = dicomUid();
  const files: string[] = [];
  for (let number = 1; number <= count; number++) {
    files.push(
      await sample('CT_small.dcm', path.join(dir, `IM${String(number).padStart(6, '0')}`), {
        ...identity,
        '0010,0020': 'HOSP-4711',
        '0020,000D': study,
        '0020,000E': series,
        '0008,0018': dicomUid(),
        '0020,0013': String(number),
        '0020,0011': '1',
        '0008,1030': 'CT CHEST',
        '0008,103E': 'Chest 5 mm',
      }),
    );
  }
  return files;
}

/**
 * A prior MR (pydicom's MR_small) an imaging system sends without naming the case: its patient ID
 * is the imaging centre's and its accession number no request's, so the hub matches it to no case.
 */
export async function priorStudy(dir: string, accession: string): Promise<{ uid: string; bytes: Buffer }> {
  const uid = dicomUid();
  const file = await sample('MR_small.dcm', path.join(dir, 'prior-mr.dcm'), {
    ...identity,
    '0010,0020': 'EIC-0042',
    '0008,0050': accession,
    '0020,000D': uid,
    '0020,000E': dicomUid(),
    '0008,0018': dicomUid(),
    '0008,1030': 'MR CHEST PRIOR',
  });
  return { uid, bytes: await readFile(file) };
}

/** Whether `npm run screenshots` asked for the screens' PNGs, and where. */
export const SCREENSHOTS_DIR = process.env.SCREENSHOTS_DIR;

export const WIDE = { width: 1280, height: 800 };
export const TABLET = { width: 800, height: 1000 };

/** The page once it has settled: no section loading, every image drawn. */
async function settled(page: Page): Promise<void> {
  await until(
    async () => (await page.locator('.mantine-Loader-root').count()) === 0,
    'the page to finish loading',
    UI_TIMEOUT_MS * 2,
  );
  await page.waitForFunction('[...document.images].every((image) => image.complete && image.naturalWidth > 0)', {
    timeout: UI_TIMEOUT_MS,
  });
}

export interface ScreenCheck {
  screen: string;
  wide: AxeFinding[];
  tablet: AxeFinding[];
  /** How far the page is wider than an 800 px window (0: it fits). */
  tabletOverflow: number;
}

/**
 * A main screen's check: axe-core's serious and critical findings at 1280×800 and at 800×1000, and
 * whether it fits 800 px; with SCREENSHOTS_DIR set and `screenshot` not false, its PNG at 1280×800
 * (`<screen>.png`, scrolled to `show` first). The page is left at 1280×800.
 */
export async function checkScreen(
  page: Page,
  screen: string,
  { show, screenshot = true }: { show?: Locator; screenshot?: boolean } = {},
): Promise<ScreenCheck> {
  await settled(page);
  if (SCREENSHOTS_DIR !== undefined && screenshot) {
    await mkdir(SCREENSHOTS_DIR, { recursive: true });
    if (show !== undefined) {
      await show.scrollIntoViewIfNeeded();
    }
    await page.screenshot({
      path: path.join(SCREENSHOTS_DIR, `${screen}.png`),
      type: 'png',
      animations: 'disabled',
      caret: 'hide',
    });
  }
  const wide = await axeFindings(page);
  await page.setViewportSize(TABLET);
  try {
    const tabletOverflow = Number(
      await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'),
    );
    return { screen, wide, tablet: await axeFindings(page), tabletOverflow };
  } finally {
    await page.setViewportSize(WIDE);
  }
}

/** What every screen's check must say. */
export const clean = (screen: string): ScreenCheck => ({ screen, wide: [], tablet: [], tabletOverflow: 0 });
