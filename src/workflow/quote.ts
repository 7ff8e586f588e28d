/**
 * The quote of a case as FHIR (case-model.md, "Submission" step 2): the materials (planned, or what
 * arrived where an expect-material Task records it) and the question count go through fees.ts
 * quoteCase; each line becomes a ChargeItem identified `urn:hub:case-resource|<sr>/charge/<code>`.
 * Recomputing updates the lines in place and marks lines no longer quoted `entered-in-error`.
 */
import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type {
  Annotation,
  ChargeItem,
  Extension,
  Money,
  Patient,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  Reference,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { FEE_CODE_SYSTEM, FEE_DESCRIPTIONS, quoteCase } from '../cases/fees.ts';
import type { CaseMaterials, FeeCode, FeeSchedule, Quote, QuoteLine } from '../cases/fees.ts';
import { countQuestions } from '../cases/questions.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { CASE_ROLES, MATERIAL_KINDS, findCaseResources, putCaseResource, referencedId } from './case-resources.ts';
import type { MaterialKind } from './case-resources.ts';
import { arrivedMaterial } from './expect-material.ts';
import { caseMaterialsOf, combineMaterials, plannedMaterials, priceableMaterials } from './order-detail.ts';
import type { PlannedMaterial } from './order-detail.ts';

export const QUOTE_EXTENSION = 'urn:hub:extension:quote';
export const PLACEHOLDER_PRICE_EXTENSION = 'urn:hub:extension:placeholder-price';
export const UNIT_PRICE_EXTENSION = 'urn:hub:extension:unit-price';
/** QuestionnaireResponse item holding the physician's questions, one answer per question. */
export const QUESTION_LINK_ID = 'question';
/** Annotation.authorString of the notes the quote writes on the coordination Task. */
export const QUOTE_NOTE_AUTHOR = 'Second-opinion hub: quote';

const ALL_FEE_CODES = Object.keys(FEE_DESCRIPTIONS) as FeeCode[];

/** The material a line prices; lines of no material (the opinion, questions) are billable at once. */
const LINE_MATERIAL: Partial<Record<FeeCode, MaterialKind>> = {
  'imaging-review': 'imaging',
  'biopsy-review': 'pathology',
  'pathology-block': 'pathology',
  'unstained-slide': 'pathology',
  'special-stain': 'pathology',
  'record-pages': 'records',
};

function collectQuestions(items: readonly QuestionnaireResponseItem[] | undefined, into: string[]): void {
  for (const item of items ?? []) {
    if (item.linkId === QUESTION_LINK_ID) {
      for (const answer of item.answer ?? []) {
        if (typeof answer.valueString === 'string') into.push(answer.valueString);
      }
    }
    collectQuestions(item.item, into);
    for (const answer of item.answer ?? []) collectQuestions(answer.item, into);
  }
}

/** The physician's questions, one text per question (item `question`, each answer valueString). */
export function questionTexts(responses: readonly QuestionnaireResponse[]): string[] {
  const texts: string[] = [];
  for (const response of responses) collectQuestions(response.item, texts);
  return texts;
}

/** The QuestionnaireResponses the request points at in supportingInfo (unreadable ones are skipped). */
export async function requestQuestionnaires(repo: HubRepository, request: ServiceRequest): Promise<WithId<QuestionnaireResponse>[]> {
  const responses: WithId<QuestionnaireResponse>[] = [];
  for (const info of request.supportingInfo ?? []) {
    const id = referencedId(info, 'QuestionnaireResponse');
    if (!id) continue;
    try {
      responses.push(await repo.readResource<QuestionnaireResponse>('QuestionnaireResponse', id));
    } catch (err) {
      // A dangling reference asks no questions (intake then says the request has none).
      if (!(err instanceof OperationOutcomeError && [404, 410].includes(getStatus(err.outcome)))) throw err;
    }
  }
  return responses;
}

export interface QuoteInputs {
  materials: CaseMaterials;
  /** What could not be read; any makes the quote a manual one. */
  problems: string[];
  questionCount: number;
  /** Kinds whose expect-material Task is completed: their lines are billable, the others planned. */
  received: ReadonlySet<MaterialKind>;
}

/**
 * The materials to price: per kind, the counts an expect-material Task records as arrived, else
 * the planned ones.
 */
export function quoteInputs(request: ServiceRequest, questionCount: number, expectTasks: ReadonlyMap<MaterialKind, Task>): QuoteInputs & { planned: PlannedMaterial[] } {
  const planned = plannedMaterials(request);
  const received = new Set<MaterialKind>();
  const perKind: CaseMaterials[] = [];
  for (const kind of MATERIAL_KINDS) {
    const plan = planned.kinds.find((candidate) => candidate.kind === kind);
    const task = expectTasks.get(kind);
    const arrived = task && arrivedMaterial(kind, task);
    if (task?.status === 'completed') received.add(kind);
    const counted = arrived ?? plan;
    if (counted) perKind.push(caseMaterialsOf(counted));
  }
  const problems = [...planned.problems];
  const materials = priceableMaterials(combineMaterials(perKind), problems);
  return { materials, problems, questionCount, received, planned: planned.kinds };
}

/** quoteCase, with unreadable inputs turning the quote into a manual one. */
export function computeQuote(inputs: QuoteInputs, schedule: FeeSchedule): Quote {
  const quote = quoteCase({ ...inputs.materials, questionCount: inputs.questionCount }, schedule);
  if (inputs.problems.length === 0) return quote;
  const reasons = [quote.manualQuoteReason, ...inputs.problems].filter((reason): reason is string => reason !== undefined);
  return { ...quote, needsManualQuote: true, totalCents: null, manualQuoteReason: reasons.join(' ') };
}

const money = (cents: number): Money => ({ value: cents / 100, currency: 'USD' });

export function chargeItemFor(
  line: QuoteLine,
  context: { serviceRequestId: string; patient: Reference<Patient>; received: ReadonlySet<MaterialKind>; scheduleVersion: string; manualQuoteReason?: string },
): ChargeItem {
  const material = LINE_MATERIAL[line.code];
  const extension: Extension[] = [];
  if (line.unitPriceCents !== null) extension.push({ url: UNIT_PRICE_EXTENSION, valueMoney: money(line.unitPriceCents) });
  if (line.placeholderPrice) extension.push({ url: PLACEHOLDER_PRICE_EXTENSION, valueBoolean: true });
  return {
    resourceType: 'ChargeItem',
    ...(extension.length > 0 ? { extension } : {}),
    status: material && !context.received.has(material) ? 'planned' : 'billable',
    definitionUri: [`urn:hub:fee-schedule:${encodeURIComponent(context.scheduleVersion)}`],
    code: { coding: [{ system: FEE_CODE_SYSTEM, code: line.code, display: FEE_DESCRIPTIONS[line.code] }], text: line.description },
    subject: context.patient,
    quantity: { value: line.quantity },
    ...(line.amountCents !== null ? { priceOverride: money(line.amountCents) } : {}),
    supportingInformation: [{ reference: `ServiceRequest/${context.serviceRequestId}` }],
    ...(line.amountCents === null && context.manualQuoteReason
      ? { note: [{ authorString: QUOTE_NOTE_AUTHOR, text: `Manual quote needed: ${context.manualQuoteReason}` }] }
      : {}),
  };
}

/**
 * Writes the quote's ChargeItems (created or updated in place) and marks every earlier line the
 * quote no longer has `entered-in-error`. With no quote (a declined case) every line is withdrawn.
 */
export async function writeChargeItems(
  repo: HubRepository,
  context: { serviceRequestId: string; patient: Reference<Patient>; received: ReadonlySet<MaterialKind> },
  quote: Quote | undefined,
): Promise<void> {
  const { serviceRequestId } = context;
  const existing = await findCaseResources<ChargeItem>(repo, 'ChargeItem', serviceRequestId, ALL_FEE_CODES.map(CASE_ROLES.charge));
  const quoted = new Set<string>();
  for (const line of quote?.lines ?? []) {
    const role = CASE_ROLES.charge(line.code);
    quoted.add(role);
    const item = chargeItemFor(line, { ...context, scheduleVersion: quote!.scheduleVersion, manualQuoteReason: quote!.manualQuoteReason });
    await putCaseResource(repo, serviceRequestId, role, item);
  }
  for (const [role, item] of existing) {
    if (!quoted.has(role) && item.status !== 'entered-in-error') {
      const { meta: _meta, ...rest } = item;
      await putCaseResource(repo, serviceRequestId, role, { ...rest, status: 'entered-in-error' });
    }
  }
}

/** The quote's summary for the coordination Task (extension `urn:hub:extension:quote`). */
export function quoteExtension(quote: Quote): Extension {
  return {
    url: QUOTE_EXTENSION,
    extension: [
      { url: 'scheduleVersion', valueString: quote.scheduleVersion },
      { url: 'subtotal', valueMoney: money(quote.subtotalCents) },
      ...(quote.totalCents !== null ? [{ url: 'total', valueMoney: money(quote.totalCents) }] : []),
      ...(quote.manualQuoteReason ? [{ url: 'manualQuote', valueString: quote.manualQuoteReason }] : []),
      { url: 'placeholderPrices', valueBoolean: quote.usesPlaceholderPrices },
    ],
  };
}

/** The Task's notes with the quote's own note replaced: a manual quote says why; others say nothing. */
export function withQuoteNote(notes: readonly Annotation[] | undefined, quote: Quote | undefined): Annotation[] {
  const others = (notes ?? []).filter((note) => note.authorString !== QUOTE_NOTE_AUTHOR);
  return quote?.needsManualQuote ? [...others, { authorString: QUOTE_NOTE_AUTHOR, text: `Manual quote needed: ${quote.manualQuoteReason}` }] : others;
}

/** The question count the quote uses (questions.ts; a coordinator's override is not stored yet). */
export function questionCountOf(responses: readonly QuestionnaireResponse[]): number {
  return countQuestions(questionTexts(responses)).count;
}
