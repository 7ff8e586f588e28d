/**
 * The `expect-material` child Tasks of a case: one per material kind the physician plans to send,
 * `partOf` the coordination Task. Input: the material and the planned counts. Whoever records the
 * arrival (the materials jobs) completes the Task with `output` references to what arrived and the
 * counts that arrived, under the same types as the input; the quote then prices those counts.
 */
import { deepEquals } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { Reference, ServiceRequest, Task, TaskInput, TaskOutput } from '@medplum/fhirtypes';
import type { HubRepository } from '../fhir/repository.ts';
import {
  CASE_ROLES,
  MATERIAL_COUNT_SYSTEM,
  MATERIAL_KINDS,
  MATERIAL_SYSTEM,
  findCaseResources,
  putCaseResource,
  taskCode,
} from './case-resources.ts';
import type { MaterialKind } from './case-resources.ts';
import type { PlannedMaterial } from './order-detail.ts';

const DESCRIPTIONS: Record<MaterialKind, string> = {
  records: 'Medical records the referring physician plans to send',
  imaging: 'Imaging studies the referring physician plans to send',
  pathology: 'Pathology material the referring physician plans to send',
};

type CountCode =
  'imaging-sites' | 'biopsy-sites' | 'pathology-blocks' | 'unstained-slides' | 'special-stains' | 'record-pages';
const COUNT_CODES: readonly [CountCode, keyof PlannedMaterial][] = [
  ['imaging-sites', 'imagingSites'],
  ['biopsy-sites', 'biopsySites'],
  ['pathology-blocks', 'pathologyBlocks'],
  ['unstained-slides', 'unstainedSlides'],
  ['special-stains', 'specialStains'],
  ['record-pages', 'recordPages'],
];

const countType = (code: string): TaskInput['type'] => ({ coding: [{ system: MATERIAL_COUNT_SYSTEM, code }] });
const typeCode = (entry: TaskInput | TaskOutput): string | undefined =>
  entry.type.coding?.find((coding) => coding.system === MATERIAL_COUNT_SYSTEM)?.code;

/** The input of an expect-material Task: the material, then each stated count and site name. */
export function materialInputs(planned: PlannedMaterial): TaskInput[] {
  const inputs: TaskInput[] = [
    { type: countType('material'), valueCoding: { system: MATERIAL_SYSTEM, code: planned.kind } },
  ];
  for (const [code, field] of COUNT_CODES) {
    const value = planned[field];
    if (typeof value === 'number') {
      inputs.push({ type: countType(code), valueInteger: value });
    }
  }
  for (const name of planned.imagingSiteNames ?? []) {
    inputs.push({ type: countType('imaging-site'), valueString: name });
  }
  for (const name of planned.biopsySiteNames ?? []) {
    inputs.push({ type: countType('biopsy-site'), valueString: name });
  }
  if (planned.recordCollection !== undefined) {
    inputs.push({ type: countType('record-collection'), valueBoolean: planned.recordCollection });
  }
  return inputs;
}

/**
 * The counts recorded in a Task's output (what arrived), or undefined when it records none: then
 * the planned counts still stand.
 */
export function arrivedMaterial(kind: MaterialKind, task: Task): PlannedMaterial | undefined {
  const arrived: PlannedMaterial = { kind };
  let any = false;
  for (const output of task.output ?? []) {
    const code = typeCode(output);
    const count = COUNT_CODES.find(([candidate]) => candidate === code);
    if (count && typeof output.valueInteger === 'number') {
      (arrived[count[1]] as number | undefined) =
        ((arrived[count[1]] as number | undefined) ?? 0) + output.valueInteger;
      any = true;
    } else if ((code === 'imaging-site' || code === 'biopsy-site') && output.valueString) {
      const names = code === 'imaging-site' ? (arrived.imagingSiteNames ??= []) : (arrived.biopsySiteNames ??= []);
      names.push(output.valueString);
      any = true;
    } else if (code === 'record-collection' && typeof output.valueBoolean === 'boolean') {
      arrived.recordCollection = output.valueBoolean;
      any = true;
    }
  }
  return any ? arrived : undefined;
}

export interface CaseLinks {
  serviceRequest: WithId<ServiceRequest>;
  patient: Reference | undefined;
  referenceNumber: string | undefined;
  coordinationTask: WithId<Task>;
}

/** The expect-material Tasks of a case, by kind. */
export async function expectMaterialTasks(
  repo: HubRepository,
  serviceRequestId: string,
): Promise<Map<MaterialKind, WithId<Task>>> {
  const roles = MATERIAL_KINDS.map((kind) => CASE_ROLES.expectMaterial(kind));
  const found = await findCaseResources<Task>(repo, 'Task', serviceRequestId, roles);
  return new Map(
    MATERIAL_KINDS.flatMap((kind) => {
      const task = found.get(CASE_ROLES.expectMaterial(kind));
      return task ? [[kind, task] as const] : [];
    }),
  );
}

// A Task someone works on or finished keeps its state; only untouched ones follow the plan.
const FOLLOWS_PLAN: readonly Task['status'][] = ['requested', 'cancelled'];

/**
 * Makes the expect-material Tasks match the plan: one `requested` per planned kind (its input
 * updated when the plan changes), and a kind no longer planned `cancelled`. With `planned` empty,
 * every untouched Task is cancelled (a declined case).
 */
export async function syncExpectMaterialTasks(
  repo: HubRepository,
  links: CaseLinks,
  planned: readonly PlannedMaterial[],
  existing: Map<MaterialKind, WithId<Task>>,
  now: Date,
): Promise<void> {
  const serviceRequestId = links.serviceRequest.id;
  for (const kind of MATERIAL_KINDS) {
    const plan = planned.find((candidate) => candidate.kind === kind);
    const current = existing.get(kind);
    if (current && !FOLLOWS_PLAN.includes(current.status)) {
      continue;
    }
    if (!plan && (!current || current.status === 'cancelled')) {
      continue;
    }
    const status: Task['status'] = plan ? 'requested' : 'cancelled';
    const input = plan ? materialInputs(plan) : current?.input;
    const changed = !current || current.status !== status || !deepEquals(current.input ?? [], input ?? []);
    const task: Task = {
      resourceType: 'Task',
      ...(links.referenceNumber
        ? { groupIdentifier: { system: 'urn:hub:reference-number', value: links.referenceNumber } }
        : {}),
      basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
      partOf: [{ reference: `Task/${links.coordinationTask.id}` }],
      status,
      ...(plan
        ? {}
        : {
            statusReason: { text: 'The referring physician no longer plans to send this material, or the case ended.' },
          }),
      intent: 'order',
      code: taskCode('expect-material'),
      description: DESCRIPTIONS[kind],
      focus: { reference: `ServiceRequest/${serviceRequestId}` },
      ...(links.patient ? { for: links.patient } : {}),
      authoredOn: current?.authoredOn ?? now.toISOString(),
      lastModified: changed ? now.toISOString() : (current?.lastModified ?? now.toISOString()),
      ...(input ? { input } : {}),
    };
    await putCaseResource(repo, serviceRequestId, CASE_ROLES.expectMaterial(kind), task);
  }
}
