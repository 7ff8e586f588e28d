/**
 * The quote of a case as FHIR (docs/case-workflow.md): the materials (planned, or what
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
import type { QuestionCountOverride } from '../cases/questions.ts';
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
        if (typeof answer.valueString === 'string') {
          into.push(answer.valueString);
        }
      }
    }
    collectQuestions(item.item, into);
    for (const answer of item.answer ?? []) {
      collectQuestions(answer.item, into);
    }
  }
}

/** The physician's questions, one text per question (item `question`, each answer valueString). */
export function questionTexts(responses: readonly QuestionnaireResponse[]): string[] {
  const texts: string[] = [];
  for (const response of responses) {
    collectQuestions(response.item, texts);
  }
  return texts;
}

/** The QuestionnaireResponses the request points at in supportingInfo (unreadable ones are skipped). */
export async function requestQuestionnaires(
  repo: HubRepository,
  request: ServiceRequest,
): Promise<WithId<QuestionnaireResponse>[]> {
  const responses: WithId<QuestionnaireResponse>[] = [];
  for (const info of request.supportingInfo ?? []) {
    const id = referencedId(info, 'QuestionnaireResponse');
    if (!id) {
      continue;
    }
    try {
      responses.push(await repo.readResource<QuestionnaireResponse>('QuestionnaireResponse', id));
    } catch (err) {
      // A dangling reference asks no questions (intake then says the request has none).
      if (!(err instanceof OperationOutcomeError && [404, 410].includes(getStatus(err.outcome)))) {
        throw err;
      }
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
  /** The questions as counted, recorded with the quote; absent, the quote records none. */
  questions?: QuestionSummary;
  /** A follow-up question (a request `basedOn` an earlier one): its own fee instead of the opinion's. */
  followUp?: boolean;
}

/** How the quote counted the questions: the count billed, the detected one, and whether a coordinator set it. */
export interface QuestionSummary {
  count: number;
  detected: number;
  overridden: boolean;
  /** Why the coordinator's override could not be applied. */
  overrideProblem?: string;
}

/** A quote with how its questions were counted (the coordination Task's quote extension records both). */
export type CaseQuote = Quote & { questions?: QuestionSummary };

/** The larger of two counts of the same kind of material, field by field (what is expected, at least what came). */
function atLeast(planned: CaseMaterials, arrived: CaseMaterials): CaseMaterials {
  const more = (a: readonly string[] | undefined, b: readonly string[] | undefined) =>
    ((b?.length ?? 0) > (a?.length ?? 0) ? b : a) ?? [];
  const max = (a: number | undefined, b: number | undefined) => Math.max(a ?? 0, b ?? 0);
  return {
    imagingSites: more(planned.imagingSites, arrived.imagingSites),
    biopsySites: more(planned.biopsySites, arrived.biopsySites),
    blocks: max(planned.blocks, arrived.blocks),
    unstainedSlides: max(planned.unstainedSlides, arrived.unstainedSlides),
    specialStains: max(planned.specialStains, arrived.specialStains),
    recordPages: max(planned.recordPages, arrived.recordPages),
    recordCollectionService: (planned.recordCollectionService ?? false) || (arrived.recordCollectionService ?? false),
  };
}

/**
 * The materials to price, per kind, from the plan and what arrived (planned ∪ arrived): a kind whose
 * expect-material Task is completed is priced as it arrived, and billable; one still expected is
 * priced at the larger of the plan and what came so far; one cancelled (waived by a coordinator, or
 * no longer planned) only for what arrived anyway, billable; material of a kind nobody planned is
 * priced from its Task (materials.ts creates one when it arrives).
 */
export function quoteInputs(
  request: ServiceRequest,
  questionCount: number,
  expectTasks: ReadonlyMap<MaterialKind, Task>,
): QuoteInputs & { planned: PlannedMaterial[] } {
  const planned = plannedMaterials(request);
  const received = new Set<MaterialKind>();
  const perKind: CaseMaterials[] = [];
  for (const kind of MATERIAL_KINDS) {
    const plan = planned.kinds.find((candidate) => candidate.kind === kind);
    const task = expectTasks.get(kind);
    const arrived = task && arrivedMaterial(kind, task);
    if (task?.status === 'completed' || (task?.status === 'cancelled' && arrived)) {
      received.add(kind);
    }
    if (task?.status === 'completed') {
      const counted = arrived ?? plan;
      if (counted) {
        perKind.push(caseMaterialsOf(counted));
      }
    } else if (task?.status === 'cancelled' || task?.status === 'entered-in-error') {
      if (arrived) {
        perKind.push(caseMaterialsOf(arrived));
      }
    } else if (plan && arrived) {
      perKind.push(atLeast(caseMaterialsOf(plan), caseMaterialsOf(arrived)));
    } else {
      const known = plan ?? arrived;
      if (known) {
        perKind.push(caseMaterialsOf(known));
      }
    }
  }
  const problems = [...planned.problems];
  const materials = priceableMaterials(combineMaterials(perKind), problems);
  return { materials, problems, questionCount, received, planned: planned.kinds };
}

/**
 * A follow-up question's quote: the `follow-up-question` fee in place of the opinion and the
 * question lines (its questions belong to the first case's opinion), plus any material it brings.
 */
function followUpQuote(materials: CaseMaterials, schedule: FeeSchedule): Quote {
  const quote = quoteCase({ ...materials, questionCount: 0, followUpQuestions: 1 }, schedule);
  const lines = quote.lines.filter((line) => line.code !== 'specialist-opinion');
  const subtotalCents = lines.reduce((sum, line) => sum + (line.amountCents ?? 0), 0);
  return {
    ...quote,
    lines,
    subtotalCents,
    totalCents: quote.needsManualQuote ? null : subtotalCents,
    usesPlaceholderPrices: lines.some((line) => line.placeholderPrice),
  };
}

/** quoteCase (or the follow-up's quote), with unreadable inputs turning the quote into a manual one. */
export function computeQuote(inputs: QuoteInputs, schedule: FeeSchedule): CaseQuote {
  const priced = inputs.followUp
    ? followUpQuote(inputs.materials, schedule)
    : quoteCase({ ...inputs.materials, questionCount: inputs.questionCount }, schedule);
  const quote: CaseQuote = inputs.questions ? { ...priced, questions: inputs.questions } : priced;
  if (inputs.problems.length === 0) {
    return quote;
  }
  const reasons = [quote.manualQuoteReason, ...inputs.problems].filter(
    (reason): reason is string => reason !== undefined,
  );
  return { ...quote, needsManualQuote: true, totalCents: null, manualQuoteReason: reasons.join(' ') };
}

const money = (cents: number): Money => ({ value: cents / 100, currency: 'USD' });

export function chargeItemFor(
  line: QuoteLine,
  context: {
    serviceRequestId: string;
    patient: Reference<Patient>;
    received: ReadonlySet<MaterialKind>;
    scheduleVersion: string;
    manualQuoteReason?: string;
  },
): ChargeItem {
  const material = LINE_MATERIAL[line.code];
  const extension: Extension[] = [];
  if (line.unitPriceCents !== null) {
    extension.push({ url: UNIT_PRICE_EXTENSION, valueMoney: money(line.unitPriceCents) });
  }
  if (line.placeholderPrice) {
    extension.push({ url: PLACEHOLDER_PRICE_EXTENSION, valueBoolean: true });
  }
  return {
    resourceType: 'ChargeItem',
    ...(extension.length > 0 ? { extension } : {}),
    status: material && !context.received.has(material) ? 'planned' : 'billable',
    definitionUri: [`urn:hub:fee-schedule:${encodeURIComponent(context.scheduleVersion)}`],
    code: {
      coding: [{ system: FEE_CODE_SYSTEM, code: line.code, display: FEE_DESCRIPTIONS[line.code] }],
      text: line.description,
    },
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
  const existing = await findCaseResources<ChargeItem>(
    repo,
    'ChargeItem',
    serviceRequestId,
    ALL_FEE_CODES.map(CASE_ROLES.charge),
  );
  const quoted = new Set<string>();
  if (quote) {
    for (const line of quote.lines) {
      const role = CASE_ROLES.charge(line.code);
      quoted.add(role);
      const item = chargeItemFor(line, {
        ...context,
        scheduleVersion: quote.scheduleVersion,
        manualQuoteReason: quote.manualQuoteReason,
      });
      await putCaseResource(repo, serviceRequestId, role, item);
    }
  }
  for (const [role, item] of existing) {
    if (!quoted.has(role) && item.status !== 'entered-in-error') {
      const { meta: _meta, ...rest } = item;
      await putCaseResource(repo, serviceRequestId, role, { ...rest, status: 'entered-in-error' });
    }
  }
}

/** The quote's summary for the coordination Task (extension `urn:hub:extension:quote`). */
export function quoteExtension(quote: CaseQuote): Extension {
  const questions = quote.questions;
  return {
    url: QUOTE_EXTENSION,
    extension: [
      { url: 'scheduleVersion', valueString: quote.scheduleVersion },
      { url: 'subtotal', valueMoney: money(quote.subtotalCents) },
      ...(quote.totalCents !== null ? [{ url: 'total', valueMoney: money(quote.totalCents) }] : []),
      ...(quote.manualQuoteReason ? [{ url: 'manualQuote', valueString: quote.manualQuoteReason }] : []),
      { url: 'placeholderPrices', valueBoolean: quote.usesPlaceholderPrices },
      ...(questions
        ? [
            { url: 'questionCount', valueUnsignedInt: questions.count },
            { url: 'detectedQuestionCount', valueUnsignedInt: questions.detected },
            { url: 'questionCountOverridden', valueBoolean: questions.overridden },
            ...(questions.overrideProblem
              ? [{ url: 'questionCountOverrideProblem', valueString: questions.overrideProblem }]
              : []),
          ]
        : []),
    ],
  };
}

/** The Task's notes with the quote's own note replaced: a manual quote says why; others say nothing. */
export function withQuoteNote(notes: readonly Annotation[] | undefined, quote: Quote | undefined): Annotation[] {
  const others = (notes ?? []).filter((note) => note.authorString !== QUOTE_NOTE_AUTHOR);
  return quote?.needsManualQuote
    ? [...others, { authorString: QUOTE_NOTE_AUTHOR, text: `Manual quote needed: ${quote.manualQuoteReason}` }]
    : others;
}

/** The question count the physician's questions make (questions.ts), before any coordinator's override. */
export function questionCountOf(responses: readonly QuestionnaireResponse[]): number {
  return countQuestions(questionTexts(responses)).count;
}

/**
 * Coordination Task extension: a coordinator's correction of the question count, with sub-extensions
 * `count` (valueUnsignedInt or valueInteger), `reason` (valueString) and `setBy` (valueReference to
 * the coordinator, or valueString). The quote bills `count` and records the detected count beside it.
 */
export const QUESTION_COUNT_OVERRIDE_EXTENSION = 'urn:hub:extension:question-count-override';

/** The override a coordination Task carries: none, one, or what is wrong with it (for the manual-quote note). */
export function questionCountOverrideOf(task: Task | undefined): {
  override?: QuestionCountOverride;
  problem?: string;
} {
  const extension = task?.extension?.find((candidate) => candidate.url === QUESTION_COUNT_OVERRIDE_EXTENSION);
  if (!extension) {
    return {};
  }
  const part = (url: string) => extension.extension?.find((candidate) => candidate.url === url);
  const count = part('count')?.valueUnsignedInt ?? part('count')?.valueInteger;
  const reason = part('reason')?.valueString?.trim() ?? '';
  const setBy = part('setBy')?.valueReference?.reference ?? part('setBy')?.valueString ?? '';
  if (count === undefined || !Number.isSafeInteger(count) || count < 0) {
    return { problem: 'The coordinator’s question-count override needs a `count`: a whole number, 0 or more.' };
  }
  if (reason === '') {
    return { problem: 'The coordinator’s question-count override needs a `reason`.' };
  }
  if (setBy.trim() === '') {
    return { problem: 'The coordinator’s question-count override must say who set it (`setBy`).' };
  }
  return { override: { count, reason, setBy: setBy.trim() } };
}

/** The question count to bill: the coordinator's override when valid; an invalid one makes the quote manual. */
export function billedQuestions(
  responses: readonly QuestionnaireResponse[],
  coordination: Task | undefined,
): { questions: QuestionSummary; problems: string[] } {
  const texts = questionTexts(responses);
  const { override, problem } = questionCountOverrideOf(coordination);
  const counted = countQuestions(texts, override);
  return {
    questions: {
      count: counted.count,
      detected: counted.detectedCount,
      overridden: counted.override !== undefined,
      ...(problem ? { overrideProblem: problem } : {}),
    },
    problems: problem ? [problem] : [],
  };
}

/** The earlier request a follow-up question is `basedOn`, when this request is one. */
export function followUpOf(request: ServiceRequest): string | undefined {
  return (request.basedOn ?? [])
    .map((reference) => referencedId(reference, 'ServiceRequest'))
    .find((id) => id !== undefined && id !== request.id);
}

/**
 * Everything the quote of a case prices, read from the store: the request's materials (planned, or
 * arrived per expect-material Task), its questions with the coordinator's override from the
 * coordination Task, and whether it is a follow-up question.
 */
export async function caseQuoteInputs(
  repo: HubRepository,
  request: ServiceRequest,
  coordination: Task | undefined,
  expectTasks: ReadonlyMap<MaterialKind, Task>,
): Promise<QuoteInputs & { planned: PlannedMaterial[] }> {
  const { questions, problems } = billedQuestions(await requestQuestionnaires(repo, request), coordination);
  const inputs = quoteInputs(request, questions.count, expectTasks);
  return {
    ...inputs,
    problems: [...inputs.problems, ...problems],
    questions,
    followUp: followUpOf(request) !== undefined,
  };
}
