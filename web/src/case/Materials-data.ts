/**
 * What an expect-material Task says (docs/case-workflow.md, "expect-material Task"): the kind and the
 * planned counts in its input, each arrival (a reference) and the arrived counts in its output, its
 * state; and from those, what is still missing. Imaging is complete when its planned sites have
 * arrived, records and pathology on their first arrival, as the hub decides.
 */
import type { Task, TaskInput, TaskOutput } from '@medplum/fhirtypes';

const MATERIAL_SYSTEM = 'urn:hub:material';
const COUNT_SYSTEM = 'urn:hub:material-count';
export const MATERIAL_KINDS = ['records', 'imaging', 'pathology'] as const;
export type MaterialKind = (typeof MATERIAL_KINDS)[number];
/** Statuses of a Task still waiting for its material. */
const OPEN = new Set<Task['status']>(['draft', 'requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold']);

export const KIND_LABELS: Record<MaterialKind, string> = {
  records: 'Medical records',
  imaging: 'Imaging',
  pathology: 'Pathology',
};

export interface ExpectedMaterial {
  task: Task;
  kind: MaterialKind;
  open: boolean;
  /** What the physician planned, in words (empty when the kind was not planned). */
  planned: string[];
  /** `DocumentReference/…`, `ImagingStudy/…`, `Specimen/…`, as the hub recorded them. */
  arrivals: string[];
  /** Counts the arrivals state: pages, imaging sites, biopsy sites. */
  arrived: { recordPages?: number; imagingSites?: number; biopsySites?: number };
  /** What is still awaited, in words; undefined when nothing is. */
  missing?: string;
}

const codeOf = (entry: TaskInput | TaskOutput): string | undefined =>
  entry.type.coding?.find((coding) => coding.system === COUNT_SYSTEM)?.code;

function integer(entries: readonly (TaskInput | TaskOutput)[], code: string): number | undefined {
  const values = entries.filter((entry) => codeOf(entry) === code && typeof entry.valueInteger === 'number');
  return values.length === 0 ? undefined : values.reduce((sum, entry) => sum + (entry.valueInteger ?? 0), 0);
}

const texts = (entries: readonly (TaskInput | TaskOutput)[], code: string): string[] =>
  entries.flatMap((entry) => (codeOf(entry) === code && entry.valueString ? [entry.valueString] : []));

const plural = (count: number, one: string, many = `${one}s`): string => `${count} ${count === 1 ? one : many}`;

export function kindOf(task: Task): MaterialKind | undefined {
  const code = task.input?.find((input) => codeOf(input) === 'material')?.valueCoding;
  const kind = code?.system === MATERIAL_SYSTEM ? code.code : undefined;
  return MATERIAL_KINDS.find((candidate) => candidate === kind);
}

function plannedWords(kind: MaterialKind, input: readonly TaskInput[]): string[] {
  const words: string[] = [];
  const count = (code: string, one: string, many?: string) => {
    const value = integer(input, code);
    if (value !== undefined) {
      words.push(plural(value, one, many));
    }
  };
  if (kind === 'records') {
    count('record-pages', 'page (the physician’s estimate)', 'pages (the physician’s estimate)');
    if (input.some((entry) => codeOf(entry) === 'record-collection' && entry.valueBoolean)) {
      words.push('the record collection service');
    }
  }
  if (kind === 'imaging') {
    count('imaging-sites', 'imaging site');
    const sites = texts(input, 'imaging-site');
    if (sites.length > 0) {
      words.push(sites.join(', '));
    }
  }
  if (kind === 'pathology') {
    count('biopsy-sites', 'biopsy site');
    const sites = texts(input, 'biopsy-site');
    if (sites.length > 0) {
      words.push(sites.join(', '));
    }
    count('pathology-blocks', 'block');
    count('unstained-slides', 'unstained slide');
    count('special-stains', 'special stain');
  }
  return words;
}

function missingWords(kind: MaterialKind, input: readonly TaskInput[], arrivals: number): string {
  if (kind === 'imaging') {
    const planned = Math.max(1, integer(input, 'imaging-sites') ?? texts(input, 'imaging-site').length);
    const left = Math.max(1, planned - arrivals);
    return `${plural(left, 'imaging study', 'imaging studies')}${arrivals > 0 ? ' more' : ''}`;
  }
  return kind === 'records' ? 'the medical records' : 'the pathology material';
}

export function expectedMaterial(task: Task): ExpectedMaterial | undefined {
  const kind = kindOf(task);
  if (kind === undefined) {
    return undefined;
  }
  const input = task.input ?? [];
  const output = task.output ?? [];
  const arrivals = output.flatMap((entry) =>
    codeOf(entry) === 'material' && entry.valueReference?.reference ? [entry.valueReference.reference] : [],
  );
  const open = OPEN.has(task.status);
  return {
    task,
    kind,
    open,
    planned: plannedWords(kind, input),
    arrivals,
    arrived: {
      recordPages: kind === 'records' ? integer(output, 'record-pages') : undefined,
      imagingSites: kind === 'imaging' ? integer(output, 'imaging-sites') : undefined,
      biopsySites: kind === 'pathology' ? integer(output, 'biopsy-sites') : undefined,
    },
    missing: open ? missingWords(kind, input, arrivals.length) : undefined,
  };
}

/** The Tasks of the case in a fixed order of kinds (a kind has one Task, the hub's `<sr>/expect-material/<kind>`). */
export function expectedMaterials(tasks: readonly Task[]): ExpectedMaterial[] {
  return tasks
    .map(expectedMaterial)
    .filter((material): material is ExpectedMaterial => material !== undefined)
    .sort((a, b) => MATERIAL_KINDS.indexOf(a.kind) - MATERIAL_KINDS.indexOf(b.kind));
}

/** The ids of one type among the arrivals, for a `_id` search. */
export function idsOf(materials: readonly ExpectedMaterial[], resourceType: string): string[] {
  const prefix = `${resourceType}/`;
  return [
    ...new Set(
      materials.flatMap((material) =>
        material.arrivals
          .filter((reference) => reference.startsWith(prefix))
          .map((reference) => reference.slice(prefix.length)),
      ),
    ),
  ].sort();
}
