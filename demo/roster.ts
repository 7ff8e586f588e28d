/**
 * The demo's specialists, as src/workflow/specialists.ts reads a roster: a Practitioner with the
 * licence and board certification as qualifications and the training level as an extension, and a
 * PractitionerRole coded `specialist` with the NUCC specialty, capacity and subspecialty keywords;
 * the radiologist's Practitioner; and the referring physician's, with the NPI the EHR's referral
 * names. Written by the coordinator with fixed ids (update as create), because the people's accounts
 * are linked to those ids (parties.ts), and repeated runs write the same resources again.
 */
import type { DemoClient } from './client.ts';

const DEMO_ROSTER_SYSTEM = 'urn:hub:demo-roster';
const NUCC = 'http://nucc.org/provider-taxonomy';
const SPECIALTY_NAMES: Record<string, string> = { '207RX0202X': 'medical oncology', '207RP1001X': 'pulmonary disease' };

export interface RosterEntry {
  key: string;
  family: string;
  level: 'attending' | 'fellow';
  nucc: string;
  licenceEnd: string;
  keywords: string[];
}

export const ROSTER: readonly RosterEntry[] = [
  {
    key: 'thoracic-oncologist',
    family: 'Abernathy',
    level: 'attending',
    nucc: '207RX0202X',
    licenceEnd: '2031-06-30',
    keywords: ['lung', 'thoracic'],
  },
  {
    key: 'oncologist',
    family: 'Brightwater',
    level: 'attending',
    nucc: '207RX0202X',
    licenceEnd: '2031-06-30',
    keywords: [],
  },
  {
    key: 'pulmonologist',
    family: 'Eberhardt',
    level: 'attending',
    nucc: '207RP1001X',
    licenceEnd: '2031-06-30',
    keywords: ['lung'],
  },
  // Never a candidate: trainees do not give opinions; the ranking explanation says so.
  {
    key: 'oncology-fellow',
    family: 'Castellano',
    level: 'fellow',
    nucc: '207RX0202X',
    licenceEnd: '2031-06-30',
    keywords: ['lung', 'malignan*'],
  },
];

/** The radiologist who does the pre-review (not on the specialists' roster). */
export const RADIOLOGIST_PRACTITIONER_ID = 'demo-radiologist';

export const NPI_SYSTEM = 'http://hl7.org/fhir/sid/us-npi';

/**
 * The physician who refers the case and signs in to read the opinion. The EHR's referral creates
 * its Practitioner only if none carries this NPI (conditional create), so it finds this one, and the
 * case's requester is the Practitioner the physician's account is linked to.
 */
export const REFERRING_PHYSICIAN = {
  id: 'demo-referring-physician',
  npi: '1245319599',
  email: 'a.okonkwo@referrer.example.org',
  name: { prefix: ['Dr.'], family: 'Okonkwo', given: ['Adaeze'] },
} as const;

export const practitionerIdOf = (entry: RosterEntry): string => `demo-${entry.key}`;

export interface RosterMember {
  id: string;
  name: string;
  summary: string;
}

/**
 * Writes the roster at its fixed ids. A demo identifier found on a Practitioner at any other id (an
 * earlier, anonymous demo created them at server-assigned ids) is set inactive, so that the hub never
 * offers the case to a specialist without an account.
 */
export async function ensureRoster(client: DemoClient): Promise<RosterMember[]> {
  const members: RosterMember[] = [];
  for (const entry of ROSTER) {
    const id = practitionerIdOf(entry);
    await client.fhir('PUT', `Practitioner/${id}`, {
      resourceType: 'Practitioner',
      id,
      identifier: [{ system: DEMO_ROSTER_SYSTEM, value: entry.key }],
      active: true,
      name: [{ prefix: ['Dr.'], family: entry.family, given: ['Demo'] }],
      telecom: [{ system: 'email', value: `${entry.family.toLowerCase()}@specialists.example.org` }],
      extension: [{ url: 'urn:hub:extension:training-level', valueCode: entry.level }],
      qualification: [
        {
          code: { coding: [{ system: 'urn:hub:qualification', code: 'medical-licence' }] },
          period: { start: '2015-07-01', end: entry.licenceEnd },
        },
        {
          code: { coding: [{ system: 'urn:hub:qualification', code: 'board-certification' }] },
          period: { start: '2016-01-01' },
        },
      ],
    });
    await client.fhir('PUT', `PractitionerRole/${id}-role`, {
      resourceType: 'PractitionerRole',
      id: `${id}-role`,
      identifier: [{ system: DEMO_ROSTER_SYSTEM, value: `${entry.key}/role` }],
      active: true,
      practitioner: { reference: `Practitioner/${id}` },
      code: [{ coding: [{ system: 'urn:hub:practitioner-role', code: 'specialist' }] }],
      specialty: [{ coding: [{ system: NUCC, code: entry.nucc }] }],
      extension: [
        { url: 'urn:hub:extension:case-capacity', valueInteger: 50 },
        ...entry.keywords.map((valueString) => ({ url: 'urn:hub:extension:subspecialty-keyword', valueString })),
      ],
    });
    await retireStrays(client, entry.key, id);
    members.push({
      id,
      name: `Dr. Demo ${entry.family}`,
      summary: `${entry.level}, ${SPECIALTY_NAMES[entry.nucc]}${entry.keywords.length > 0 ? ` (${entry.keywords.join(', ')})` : ''}`,
    });
  }
  return members;
}

async function retireStrays(client: DemoClient, key: string, id: string): Promise<void> {
  const strays = (
    await client.search(`Practitioner?identifier=${encodeURIComponent(`${DEMO_ROSTER_SYSTEM}|${key}`)}`)
  ).filter((practitioner) => practitioner.id !== id && practitioner.active !== false);
  for (const stray of strays) {
    await client.change(`Practitioner/${stray.id}`, (practitioner) => ({ ...practitioner, active: false }));
  }
}

/** The radiologist's Practitioner, at the id their account is linked to. */
export async function ensureRadiologist(client: DemoClient): Promise<string> {
  await client.fhir('PUT', `Practitioner/${RADIOLOGIST_PRACTITIONER_ID}`, {
    resourceType: 'Practitioner',
    id: RADIOLOGIST_PRACTITIONER_ID,
    identifier: [{ system: DEMO_ROSTER_SYSTEM, value: 'radiologist' }],
    active: true,
    name: [{ prefix: ['Dr.'], family: 'Fairweather', given: ['Demo'] }],
  });
  return RADIOLOGIST_PRACTITIONER_ID;
}

/**
 * The referring physician's Practitioner, at the id their account is linked to. Another Practitioner
 * with the NPI (an earlier demo's referral created one at a server-assigned id) would make the EHR's
 * conditional create ambiguous, which the hub refuses: it loses the NPI and is set inactive.
 */
export async function ensureReferringPhysician(client: DemoClient): Promise<string> {
  const { id, npi, email, name } = REFERRING_PHYSICIAN;
  await client.fhir('PUT', `Practitioner/${id}`, {
    resourceType: 'Practitioner',
    id,
    identifier: [
      { system: NPI_SYSTEM, value: npi },
      { system: DEMO_ROSTER_SYSTEM, value: 'referring-physician' },
    ],
    active: true,
    name: [{ ...name, prefix: [...name.prefix], given: [...name.given] }],
    telecom: [{ system: 'email', value: email }],
  });
  const strays = (await client.search(`Practitioner?identifier=${encodeURIComponent(`${NPI_SYSTEM}|${npi}`)}`)).filter(
    (practitioner) => practitioner.id !== id,
  );
  for (const stray of strays) {
    await client.change(`Practitioner/${stray.id}`, (practitioner) => ({
      ...practitioner,
      active: false,
      identifier: (practitioner.identifier ?? []).filter(
        (identifier: { system?: string; value?: string }) =>
          !(identifier.system === NPI_SYSTEM && identifier.value === npi),
      ),
    }));
  }
  return id;
}
