/**
 * The materials a referring physician plans to send, as the request states them (docs/case-workflow.md,
 * "Resources the jobs write"): one `ServiceRequest.orderDetail` per kind, coded in `urn:hub:material`, with counts as
 * extensions. Mapped field by field onto fees.ts CaseMaterials. What cannot be read is reported as a
 * problem for a coordinator (the quote then needs a person), never guessed.
 */
import type { CodeableConcept, Extension, ServiceRequest } from '@medplum/fhirtypes';
import type { CaseMaterials } from '../cases/fees.ts';
import { MATERIAL_KINDS, MATERIAL_SYSTEM } from './case-resources.ts';
import type { MaterialKind } from './case-resources.ts';

export const MATERIAL_EXTENSIONS = {
  imagingSites: 'urn:hub:extension:imaging-sites',
  biopsySites: 'urn:hub:extension:biopsy-sites',
  pathologyBlocks: 'urn:hub:extension:pathology-blocks',
  unstainedSlides: 'urn:hub:extension:unstained-slides',
  specialStains: 'urn:hub:extension:special-stains',
  recordPages: 'urn:hub:extension:record-pages',
  recordCollection: 'urn:hub:extension:record-collection',
} as const;

/** What is planned of one kind; counts absent when the request does not state them. */
export interface PlannedMaterial {
  kind: MaterialKind;
  imagingSites?: number;
  /** Body parts named for the imaging sites (each distinct one is one site). */
  imagingSiteNames?: string[];
  biopsySites?: number;
  biopsySiteNames?: string[];
  pathologyBlocks?: number;
  unstainedSlides?: number;
  specialStains?: number;
  /** The physician's estimate. */
  recordPages?: number;
  recordCollection?: boolean;
}

export interface PlannedMaterials {
  kinds: PlannedMaterial[];
  /** Everything planned, as the fee schedule prices it (questions not included). */
  materials: CaseMaterials;
  /** What could not be read, in words for a coordinator. */
  problems: string[];
}

type CountField =
  'imagingSites' | 'biopsySites' | 'pathologyBlocks' | 'unstainedSlides' | 'specialStains' | 'recordPages';
const COUNT_FIELDS: readonly CountField[] = [
  'imagingSites',
  'biopsySites',
  'pathologyBlocks',
  'unstainedSlides',
  'specialStains',
  'recordPages',
];

function extensionName(url: string): string {
  return url.slice('urn:hub:extension:'.length);
}

function integerValue(extension: Extension): number | undefined {
  return extension.valueInteger ?? extension.valueUnsignedInt ?? extension.valuePositiveInt ?? extension.valueDecimal;
}

function siteName(extension: Extension): string | undefined {
  const concept: CodeableConcept | undefined = extension.valueCodeableConcept;
  const name = extension.valueString ?? concept?.text ?? concept?.coding?.[0]?.display ?? concept?.coding?.[0]?.code;
  return name?.trim() ? name.trim() : undefined;
}

function readMaterial(kind: MaterialKind, detail: CodeableConcept, problems: string[]): PlannedMaterial {
  const planned: PlannedMaterial = { kind };
  const add = (field: CountField, value: number): void => {
    planned[field] = (planned[field] ?? 0) + value;
  };
  for (const extension of detail.extension ?? []) {
    const field = COUNT_FIELDS.find((candidate) => MATERIAL_EXTENSIONS[candidate] === extension.url);
    if (field) {
      const count = integerValue(extension);
      const name = field === 'imagingSites' || field === 'biopsySites' ? siteName(extension) : undefined;
      if (count !== undefined) {
        if (Number.isSafeInteger(count) && count >= 0) {
          add(field, count);
        } else {
          problems.push(
            `The planned ${kind} give ${extensionName(extension.url)} as ${count}; a count is a whole number, 0 or more.`,
          );
        }
      } else if (name !== undefined && (field === 'imagingSites' || field === 'biopsySites')) {
        const names = field === 'imagingSites' ? (planned.imagingSiteNames ??= []) : (planned.biopsySiteNames ??= []);
        names.push(name);
      } else {
        problems.push(`The planned ${kind} give ${extensionName(extension.url)} without a count.`);
      }
    } else if (extension.url === MATERIAL_EXTENSIONS.recordCollection) {
      if (typeof extension.valueBoolean === 'boolean') {
        planned.recordCollection = (planned.recordCollection ?? false) || extension.valueBoolean;
      } else {
        problems.push('The planned records give record-collection without a true/false value.');
      }
    }
  }
  return planned;
}

function merge(into: PlannedMaterial, from: PlannedMaterial): void {
  for (const field of COUNT_FIELDS) {
    if (from[field] !== undefined) {
      into[field] = (into[field] ?? 0) + from[field];
    }
  }
  if (from.imagingSiteNames) {
    into.imagingSiteNames = [...(into.imagingSiteNames ?? []), ...from.imagingSiteNames];
  }
  if (from.biopsySiteNames) {
    into.biopsySiteNames = [...(into.biopsySiteNames ?? []), ...from.biopsySiteNames];
  }
  if (from.recordCollection !== undefined) {
    into.recordCollection = (into.recordCollection ?? false) || from.recordCollection;
  }
}

/**
 * The sites of a kind for the fee schedule (which counts distinct body parts): the named ones, and
 * as many unnamed ones as the stated count exceeds the names.
 */
export function sitesFor(kind: string, count: number | undefined, names: readonly string[] | undefined): string[] {
  const distinct = [...new Set((names ?? []).map((name) => name.replace(/\s+/g, ' ').toLowerCase()))];
  const unnamed = Math.max(0, (count ?? 0) - distinct.length);
  return [...distinct, ...Array.from({ length: unnamed }, (_, index) => `unnamed ${kind} site ${index + 1}`)];
}

/** Planned materials of one kind as fees.ts counts them. */
export function caseMaterialsOf(planned: PlannedMaterial): CaseMaterials {
  return {
    imagingSites: sitesFor('imaging', planned.imagingSites, planned.imagingSiteNames),
    biopsySites: sitesFor('biopsy', planned.biopsySites, planned.biopsySiteNames),
    blocks: planned.pathologyBlocks ?? 0,
    unstainedSlides: planned.unstainedSlides ?? 0,
    specialStains: planned.specialStains ?? 0,
    recordPages: planned.recordPages ?? 0,
    recordCollectionService: planned.recordCollection ?? false,
  };
}

/** Sums the materials of several kinds. */
export function combineMaterials(parts: readonly CaseMaterials[]): CaseMaterials {
  return {
    imagingSites: parts.flatMap((part) => part.imagingSites ?? []),
    biopsySites: parts.flatMap((part) => part.biopsySites ?? []),
    blocks: parts.reduce((sum, part) => sum + (part.blocks ?? 0), 0),
    unstainedSlides: parts.reduce((sum, part) => sum + (part.unstainedSlides ?? 0), 0),
    specialStains: parts.reduce((sum, part) => sum + (part.specialStains ?? 0), 0),
    recordPages: parts.reduce((sum, part) => sum + (part.recordPages ?? 0), 0),
    recordCollectionService: parts.some((part) => part.recordCollectionService),
  };
}

const UNSOURCED_PATHOLOGY =
  'The request plans pathology blocks, unstained slides or special stains without naming or counting the biopsy sites they come from.';

/**
 * Materials fees.ts can price: blocks, unstained slides and special stains belong to a biopsy site,
 * so without one they are left out and a problem says so (the quote becomes a manual one).
 */
export function priceableMaterials(materials: CaseMaterials, problems: string[]): CaseMaterials {
  const pathologyCounts = (materials.blocks ?? 0) + (materials.unstainedSlides ?? 0) + (materials.specialStains ?? 0);
  if ((materials.biopsySites?.length ?? 0) > 0 || pathologyCounts === 0) {
    return materials;
  }
  if (!problems.includes(UNSOURCED_PATHOLOGY)) {
    problems.push(UNSOURCED_PATHOLOGY);
  }
  return { ...materials, blocks: 0, unstainedSlides: 0, specialStains: 0 };
}

/** The planned materials of a request, by kind in the order of MATERIAL_KINDS. */
export function plannedMaterials(request: ServiceRequest): PlannedMaterials {
  const problems: string[] = [];
  const byKind = new Map<MaterialKind, PlannedMaterial>();
  for (const detail of request.orderDetail ?? []) {
    const code = detail.coding?.find((coding) => coding.system === MATERIAL_SYSTEM)?.code;
    if (code === undefined) {
      continue;
    }
    if (!(MATERIAL_KINDS as readonly string[]).includes(code)) {
      problems.push(
        `The request plans a material "${code}" the hub does not know (expected one of ${MATERIAL_KINDS.join(', ')}).`,
      );
      continue;
    }
    const kind = code as MaterialKind;
    const planned = readMaterial(kind, detail, problems);
    const earlier = byKind.get(kind);
    if (earlier) {
      merge(earlier, planned);
    } else {
      byKind.set(kind, planned);
    }
  }
  const kinds = MATERIAL_KINDS.flatMap((kind) => byKind.get(kind) ?? []);
  const materials = priceableMaterials(combineMaterials(kinds.map(caseMaterialsOf)), problems);
  return { kinds, materials, problems };
}
