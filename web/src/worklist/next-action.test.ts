/** The next action of each state, from the coordination Task and its Tasks (npm run test:unit). */
import { describe, expect, test } from '@jest/globals';
import type { Reference, Task } from '@medplum/fhirtypes';
import { nextAction } from './next-action.ts';
import type { NameOf } from './next-action.ts';

const NAMES: Record<string, string> = {
  'Practitioner/phys': 'Dr. Paul Physick',
  'Practitioner/spec': 'Dr. Amelia Abernathy',
  'Practitioner/rad': 'Dr. Ray Diaz',
  'Practitioner/cora': 'Cora Coordinator',
};
const nameOf: NameOf = (reference: Reference | undefined) =>
  reference?.reference === undefined ? undefined : NAMES[reference.reference];

function coordination(state: string, extra: Partial<Task> = {}): Task {
  return {
    resourceType: 'Task',
    id: 'coord',
    status: 'in-progress',
    intent: 'order',
    code: { coding: [{ system: 'urn:hub:task-code', code: 'coordination' }] },
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: state }] },
    requester: { reference: 'Practitioner/phys' },
    ...extra,
  };
}

function child(code: string, status: Task['status'], extra: Partial<Task> = {}): Task {
  return {
    resourceType: 'Task',
    status,
    intent: 'order',
    code: { coding: [{ system: 'urn:hub:task-code', code }] },
    partOf: [{ reference: 'Task/coord' }],
    ...extra,
  };
}

const material = (kind: string, status: Task['status']) =>
  child('expect-material', status, {
    input: [
      {
        type: { coding: [{ system: 'urn:hub:material-count', code: 'material' }] },
        valueCoding: { system: 'urn:hub:material', code: kind },
      },
    ],
  });

const said = (task: Task, children: Task[] = [], me?: string): string | undefined => {
  const next = nextAction({ coordination: task, children }, nameOf, me);
  return next === undefined ? undefined : `${next.action} — ${next.holder}`;
};

describe('nextAction', () => {
  test('before the review: the physician submits and sends what is missing, the coordinators accept', () => {
    expect(said(coordination('intake'))).toBe('Submit the request — Dr. Paul Physick');
    expect(said(coordination('submitted'))).toBe('Check the residence and accept the case — the coordinators');
    expect(
      said(coordination('awaiting-materials'), [
        material('imaging', 'requested'),
        material('records', 'in-progress'),
        material('pathology', 'completed'),
      ]),
    ).toBe('Send the imaging and the records — Dr. Paul Physick');
    expect(said(coordination('awaiting-materials'))).toBe('Send the materials — Dr. Paul Physick');
  });

  test('pre-review: an unassigned review is the coordinators’, an assigned one its reviewer’s', () => {
    const radiology = child('pre-review-radiology', 'requested');
    const pathology = child('pre-review-pathology', 'in-progress', { owner: { reference: 'Practitioner/rad' } });
    expect(said(coordination('pre-review'), [pathology, radiology])).toBe(
      'Assign the radiology pre-review — the coordinators',
    );
    expect(said(coordination('pre-review'), [pathology])).toBe('Write the pathology pre-review — Dr. Ray Diaz');
    expect(said(coordination('pre-review'), [{ ...radiology, status: 'completed' }])).toBe(
      'Move the case on to matching — the coordinators',
    );
  });

  test('matching: the offered specialist answers; with nobody left the coordinators find one', () => {
    const offer = child('specialist-opinion', 'requested', { owner: { reference: 'Practitioner/spec' } });
    const declined = child('specialist-opinion', 'rejected', { owner: { reference: 'Practitioner/rad' } });
    expect(said(coordination('matching'), [declined, offer])).toBe(
      'Accept or decline the offer — Dr. Amelia Abernathy',
    );
    const noSpecialist = coordination('matching', {
      statusReason: { coding: [{ system: 'urn:hub:case-reason', code: 'no-specialist' }] },
    });
    expect(said(noSpecialist, [declined])).toBe('Find a specialist — the coordinators');
    expect(said(coordination('matching'))).toBe('Offer the case to a specialist — the hub');
  });

  test('the opinion: the specialist writes or revises it, the physician answers, the coordinators approve', () => {
    const accepted = child('specialist-opinion', 'in-progress', { owner: { reference: 'Practitioner/spec' } });
    expect(said(coordination('specialist-review'), [accepted])).toBe('Write the opinion — Dr. Amelia Abernathy');
    const returned = coordination('specialist-review', {
      statusReason: { coding: [{ system: 'urn:hub:case-reason', code: 'report-returned' }], text: 'Cite sources.' },
    });
    expect(said(returned, [accepted])).toBe('Revise the returned report — Dr. Amelia Abernathy');
    expect(said(coordination('awaiting-information'), [{ ...accepted, status: 'on-hold' }])).toBe(
      'Answer the specialist’s question — Dr. Paul Physick',
    );
    const approval = child('approve', 'requested', { focus: { reference: 'DiagnosticReport/r' } });
    expect(said(coordination('report-review'), [accepted, approval])).toBe(
      'Approve or return the report — the coordinators',
    );
  });

  test('after release: the physician reads it; an amendment waits for the coordinators; then nothing', () => {
    const approved = child('approve', 'completed', { focus: { reference: 'DiagnosticReport/r' } });
    const amendment = child('approve', 'requested', { focus: { reference: 'Composition/amendment' } });
    expect(said(coordination('report-released', { status: 'completed' }), [approved])).toBe(
      'Read the report — Dr. Paul Physick',
    );
    expect(said(coordination('report-released'), [amendment])).toBe(
      'Approve or return the amendment — the coordinators',
    );
    expect(said(coordination('report-accessed'), [amendment])).toBe(
      'Approve or return the amendment — the coordinators',
    );
    expect(said(coordination('report-accessed'), [approved])).toBeUndefined();
    for (const closed of ['declined', 'cancelled', 'failed']) {
      expect(said(coordination(closed))).toBeUndefined();
    }
    expect(said({ ...coordination('intake'), businessStatus: undefined })).toBeUndefined();
  });

  test('the coordinator holding the case is named; the signed-in person is "you"; unknown people by role', () => {
    const held = coordination('report-review', { owner: { reference: 'Practitioner/cora' } });
    expect(said(held)).toBe('Approve or return the report — Cora Coordinator');
    expect(said(held, [], 'Practitioner/cora')).toBe('Approve or return the report — you');
    expect(said(coordination('awaiting-information'), [], 'Practitioner/phys')).toBe(
      'Answer the specialist’s question — you',
    );
    const stranger = child('specialist-opinion', 'accepted', { owner: { reference: 'Practitioner/unknown' } });
    expect(said(coordination('specialist-review', { requester: undefined }), [stranger])).toBe(
      'Write the opinion — the specialist',
    );
    expect(said(coordination('intake', { requester: undefined }))).toBe('Submit the request — the referring physician');
  });
});
