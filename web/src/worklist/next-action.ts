/**
 * What a case waits for, and who holds it, from its state (the coordination Task's businessStatus) and
 * its open Tasks (docs/case-workflow.md): "Accept or decline the offer — Dr X", "Approve or return the
 * report — the coordinators". Pure, so that each state's wording is tested without a hub.
 */
import type { Reference, Task } from '@medplum/fhirtypes';
import { CASE_STATE_SYSTEM } from '../case-states.ts';
import { TASK_CODE } from './search.ts';

const MATERIAL_SYSTEM = 'urn:hub:material';
const CASE_REASON_SYSTEM = 'urn:hub:case-reason';
const OPEN = new Set<Task['status']>(['draft', 'requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold']);
/** An offer the specialist has not answered yet. */
const UNANSWERED = new Set<Task['status']>(['draft', 'requested', 'received', 'ready']);

export interface NextAction {
  /** What is to be done, as an instruction. */
  action: string;
  /** Who holds it: a person's name, "you", or a group ("the coordinators", "the hub"). */
  holder: string;
}

export interface CaseTasks {
  coordination: Task;
  /** The Tasks part of it (offers, pre-reviews, the approval, expected materials). */
  children: readonly Task[];
}

/** Names the person a reference points at, or undefined when the page did not bring them. */
export type NameOf = (reference: Reference | undefined) => string | undefined;

const codeOf = (task: Task): string | undefined =>
  task.code?.coding?.find((coding) => coding.system === TASK_CODE)?.code;

const stateOf = (task: Task): string | undefined =>
  task.businessStatus?.coding?.find((coding) => coding.system === CASE_STATE_SYSTEM)?.code;

const reasonOf = (task: Task): string | undefined =>
  task.statusReason?.coding?.find((coding) => coding.system === CASE_REASON_SYSTEM)?.code;

const open = (tasks: readonly Task[], code: string): Task[] =>
  tasks.filter((task) => codeOf(task) === code && OPEN.has(task.status));

const MATERIAL_WORDS: Record<string, string> = { records: 'records', imaging: 'imaging', pathology: 'pathology' };

/** "the imaging and the records" from the open expect-material Tasks' inputs. */
function missingMaterials(tasks: readonly Task[]): string {
  const kinds = new Set<string>();
  for (const task of open(tasks, 'expect-material')) {
    for (const { valueCoding } of task.input ?? []) {
      const word =
        valueCoding?.system === MATERIAL_SYSTEM && valueCoding.code ? MATERIAL_WORDS[valueCoding.code] : undefined;
      if (word !== undefined) {
        kinds.add(word);
      }
    }
  }
  const words = [...kinds].map((kind) => `the ${kind}`);
  return words.length === 0 ? 'the materials' : words.join(' and ');
}

/**
 * The next action of a case, or undefined when it waits for nobody (a closed case). `me` is the
 * signed-in person's reference (`Practitioner/…`), named "you".
 */
export function nextAction({ coordination, children }: CaseTasks, nameOf: NameOf, me?: string): NextAction | undefined {
  const holder = (reference: Reference | undefined, otherwise: string): string =>
    reference?.reference !== undefined && reference.reference === me ? 'you' : (nameOf(reference) ?? otherwise);
  // The coordinator who took the case holds the coordinators' work; else any of them.
  const coordinators = holder(coordination.owner, 'the coordinators');
  const physician = holder(coordination.requester, 'the referring physician');
  const by = (action: string, who: string): NextAction => ({ action, holder: who });
  const approval = open(children, 'approve')[0];
  const offer = open(children, 'specialist-opinion').at(-1);
  const specialist = holder(offer?.owner, 'the specialist');

  switch (stateOf(coordination)) {
    case 'intake':
      return by('Submit the request', physician);
    case 'submitted':
      return by('Check the residence and accept the case', coordinators);
    case 'awaiting-materials':
      return by(`Send ${missingMaterials(children)}`, physician);
    case 'pre-review': {
      const reviews = [...open(children, 'pre-review-radiology'), ...open(children, 'pre-review-pathology')];
      const kind = (task: Task) => (codeOf(task) === 'pre-review-radiology' ? 'radiology' : 'pathology');
      const unassigned = reviews.find((task) => task.owner === undefined);
      if (unassigned !== undefined) {
        return by(`Assign the ${kind(unassigned)} pre-review`, coordinators);
      }
      const assigned = reviews[0];
      return assigned === undefined
        ? by('Move the case on to matching', coordinators)
        : by(
            `Write the ${kind(assigned)} pre-review`,
            holder(assigned.owner, `the ${kind(assigned) === 'radiology' ? 'radiologist' : 'pathologist'}`),
          );
    }
    case 'matching':
      if (offer !== undefined && UNANSWERED.has(offer.status)) {
        return by('Accept or decline the offer', specialist);
      }
      return reasonOf(coordination) === 'no-specialist'
        ? by('Find a specialist', coordinators)
        : by('Offer the case to a specialist', 'the hub');
    case 'specialist-review':
      return reasonOf(coordination) === 'report-returned'
        ? by('Revise the returned report', specialist)
        : by('Write the opinion', specialist);
    case 'awaiting-information':
      return by('Answer the specialist’s question', physician);
    case 'report-review':
      return by('Approve or return the report', coordinators);
    case 'report-released':
      return approval !== undefined && approval.focus?.reference?.startsWith('Composition/')
        ? by('Approve or return the amendment', coordinators)
        : by('Read the report', physician);
    case 'report-accessed':
      return approval !== undefined && approval.focus?.reference?.startsWith('Composition/')
        ? by('Approve or return the amendment', coordinators)
        : undefined;
    default:
      return undefined;
  }
}
