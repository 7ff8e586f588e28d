/**
 * What the coordinator's case-review suites share: a small roster (two eligible oncologists, a fellow
 * who may never be offered a case, a radiologist for pre-reviews) and a case waiting in matching, in
 * the shapes of docs/case-workflow.md ("Roster"). Load them with a system client's transaction of PUTs.
 */
import { CASE_STATE, opinionCaseFixtures } from './opinion-case.ts';

const NUCC = 'http://nucc.org/provider-taxonomy';
const ONCOLOGY = '207RX0202X';
const ROLE_SYSTEM = 'urn:hub:practitioner-role';

interface RosterMember {
  id: string;
  given: string;
  family: string;
  level: 'attending' | 'fellow';
  keywords: string[];
}

/** Abernathy ranks first for a nodule; Brightwater second; Fellowes, a fellow, never. */
export const ROSTER: readonly RosterMember[] = [
  { id: 'prac-s', given: 'Amelia', family: 'Abernathy', level: 'attending', keywords: ['nodule', 'malignan*'] },
  { id: 'prac-s2', given: 'Ben', family: 'Brightwater', level: 'attending', keywords: [] },
  { id: 'prac-fellow', given: 'Fiona', family: 'Fellowes', level: 'fellow', keywords: ['nodule', 'malignan*'] },
];

/** The specialists' Practitioners and roster roles, and a radiologist with a roster role of their own. */
export function rosterFixtures(): Record<string, unknown>[] {
  return [
    ...ROSTER.flatMap((member) => [
      {
        resourceType: 'Practitioner',
        id: member.id,
        active: true,
        name: [{ prefix: ['Dr.'], given: [member.given], family: member.family }],
        extension: [{ url: 'urn:hub:extension:training-level', valueCode: member.level }],
        qualification: [
          {
            code: { coding: [{ system: 'urn:hub:qualification', code: 'medical-licence' }] },
            period: { start: '2015-07-01', end: '2099-06-30' },
          },
          {
            code: { coding: [{ system: 'urn:hub:qualification', code: 'board-certification' }] },
            period: { start: '2016-01-01' },
          },
        ],
      },
      {
        resourceType: 'PractitionerRole',
        id: `role-${member.id}`,
        active: true,
        practitioner: { reference: `Practitioner/${member.id}` },
        code: [{ coding: [{ system: ROLE_SYSTEM, code: 'specialist' }] }],
        specialty: [{ coding: [{ system: NUCC, code: ONCOLOGY, display: 'Medical Oncology' }] }],
        extension: member.keywords.map((valueString) => ({
          url: 'urn:hub:extension:subspecialty-keyword',
          valueString,
        })),
      },
    ]),
    {
      resourceType: 'Practitioner',
      id: 'prac-r',
      active: true,
      name: [{ prefix: ['Dr.'], given: ['Rita'], family: 'Radley' }],
    },
    {
      resourceType: 'PractitionerRole',
      id: 'role-prac-r',
      active: true,
      practitioner: { reference: 'Practitioner/prac-r' },
      code: [{ coding: [{ system: ROLE_SYSTEM, code: 'radiologist' }] }],
    },
  ];
}

/** A case in matching (the physician `Practitioner/prac-phys`, two questions), no offer made yet. */
export function matchingCaseFixtures(sr: string, referenceNumber: string): Record<string, unknown>[] {
  return opinionCaseFixtures(sr, referenceNumber)
    .filter((resource) => resource.id !== `offer-${sr}`)
    .map((resource) =>
      resource.id === `coord-${sr}`
        ? { ...resource, businessStatus: { coding: [{ system: CASE_STATE, code: 'matching' }] } }
        : resource,
    );
}
