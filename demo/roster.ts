/**
 * The demo's specialists, as src/workflow/specialists.ts reads a roster: a Practitioner with the
 * licence and board certification as qualifications and the training level as an extension, and a
 * PractitionerRole coded `specialist` with the NUCC specialty, capacity and subspecialty keywords.
 * Created once per hub (conditional creates on a demo identifier), so repeated runs reuse them.
 */
import type { DemoClient } from './client.ts';

const DEMO_ROSTER_SYSTEM = 'urn:hub:demo-roster';
const NUCC = 'http://nucc.org/provider-taxonomy';
const SPECIALTY_NAMES: Record<string, string> = { '207RX0202X': 'medical oncology', '207RP1001X': 'pulmonary disease' };

interface RosterEntry {
  key: string;
  family: string;
  level: 'attending' | 'fellow';
  nucc: string;
  licenceEnd: string;
  keywords: string[];
}

const ROSTER: readonly RosterEntry[] = [
  { key: 'thoracic-oncologist', family: 'Abernathy', level: 'attending', nucc: '207RX0202X', licenceEnd: '2031-06-30', keywords: ['lung', 'thoracic'] },
  { key: 'oncologist', family: 'Brightwater', level: 'attending', nucc: '207RX0202X', licenceEnd: '2031-06-30', keywords: [] },
  { key: 'pulmonologist', family: 'Eberhardt', level: 'attending', nucc: '207RP1001X', licenceEnd: '2031-06-30', keywords: ['lung'] },
  // Never a candidate: trainees do not give opinions; the ranking explanation says so.
  { key: 'oncology-fellow', family: 'Castellano', level: 'fellow', nucc: '207RX0202X', licenceEnd: '2031-06-30', keywords: ['lung', 'malignan*'] },
];

export interface RosterMember {
  id: string;
  name: string;
  summary: string;
}

export async function ensureRoster(client: DemoClient): Promise<RosterMember[]> {
  const members: RosterMember[] = [];
  for (const entry of ROSTER) {
    const identifier = `${DEMO_ROSTER_SYSTEM}|${entry.key}`;
    const practitioner = await client.fhir(
      'POST',
      'Practitioner',
      {
        resourceType: 'Practitioner',
        identifier: [{ system: DEMO_ROSTER_SYSTEM, value: entry.key }],
        active: true,
        name: [{ prefix: ['Dr.'], family: entry.family, given: ['Demo'] }],
        telecom: [{ system: 'email', value: `${entry.family.toLowerCase()}@specialists.example.org` }],
        extension: [{ url: 'urn:hub:extension:training-level', valueCode: entry.level }],
        qualification: [
          { code: { coding: [{ system: 'urn:hub:qualification', code: 'medical-licence' }] }, period: { start: '2015-07-01', end: entry.licenceEnd } },
          { code: { coding: [{ system: 'urn:hub:qualification', code: 'board-certification' }] }, period: { start: '2016-01-01' } },
        ],
      },
      { 'if-none-exist': `identifier=${encodeURIComponent(identifier)}` },
    );
    // A conditional create that found the resource answers 200 with it (or without a body).
    const id: string = practitioner.id ?? (await client.search(`Practitioner?identifier=${encodeURIComponent(identifier)}`))[0].id;
    await client.fhir(
      'POST',
      'PractitionerRole',
      {
        resourceType: 'PractitionerRole',
        identifier: [{ system: DEMO_ROSTER_SYSTEM, value: `${entry.key}/role` }],
        active: true,
        practitioner: { reference: `Practitioner/${id}` },
        code: [{ coding: [{ system: 'urn:hub:practitioner-role', code: 'specialist' }] }],
        specialty: [{ coding: [{ system: NUCC, code: entry.nucc }] }],
        extension: [
          { url: 'urn:hub:extension:case-capacity', valueInteger: 50 },
          ...entry.keywords.map((valueString) => ({ url: 'urn:hub:extension:subspecialty-keyword', valueString })),
        ],
      },
      { 'if-none-exist': `identifier=${encodeURIComponent(`${DEMO_ROSTER_SYSTEM}|${entry.key}/role`)}` },
    );
    members.push({
      id,
      name: `Dr. Demo ${entry.family}`,
      summary: `${entry.level}, ${SPECIALTY_NAMES[entry.nucc]}${entry.keywords.length > 0 ? ` (${entry.keywords.join(', ')})` : ''}`,
    });
  }
  return members;
}
