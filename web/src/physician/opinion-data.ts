/**
 * The released opinion as the hub keeps it (docs/case-workflow.md, "The opinion"): the
 * DiagnosticReport the coordination Task's output names, its letter (the Composition the report's
 * letter extension names, with a section per part and one answer per question), the addenda that
 * append to that letter, and the signed PDF (the report's presentedForm).
 *
 * For the referring physician, reading the report is what records that they have read it and
 * releases it to their patient (docs/access.md, "Release"): these queries run only once they chose to
 * read it. For the patient they run only once the case is report-accessed; before that the hub
 * answers 404 anyway.
 */
import type { Bundle, Composition, CompositionSection, DiagnosticReport, Practitioner } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { fhirGet, searchEntries } from '../fhir.ts';
import { idOf } from '../format.ts';

export const LETTER_LINK = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
export const SECTION_SYSTEM = 'urn:hub:letter-section';
export const QUESTION_NUMBER = 'urn:hub:extension:question-number';

const q = encodeURIComponent;

/** The hub's path of the bytes a `Binary/<id>` attachment URL (relative or absolute) names. */
export function binaryPath(url: string | undefined): string | undefined {
  const id = /(?:^|\/)Binary\/([A-Za-z0-9\-.]{1,64})$/.exec(url ?? '')?.[1];
  return id === undefined ? undefined : `/fhir/Binary/${id}`;
}

export function sectionCode(section: CompositionSection): string | undefined {
  return section.code?.coding?.find((coding) => coding.system === SECTION_SYSTEM)?.code;
}

export function questionNumberOf(section: CompositionSection): number | undefined {
  return section.extension?.find((extension) => extension.url === QUESTION_NUMBER)?.valueUnsignedInt;
}

export function useOpinion(reportId: string | undefined) {
  const report = useQuery({
    queryKey: ['opinion-report', reportId],
    queryFn: () => fhirGet<DiagnosticReport>(`DiagnosticReport/${q(reportId ?? '')}`),
    enabled: reportId !== undefined,
  });
  const letterId = idOf(
    report.data?.extension?.find((extension) => extension.url === LETTER_LINK)?.valueReference?.reference,
    'Composition',
  );
  const letter = useQuery({
    queryKey: ['read', `Composition/${letterId ?? ''}`],
    queryFn: () => fhirGet<Composition>(`Composition/${q(letterId ?? '')}`),
    enabled: letterId !== undefined,
  });
  const addenda = useQuery({
    queryKey: ['addenda', letterId, report.data?.meta?.versionId],
    queryFn: () =>
      fhirGet<Bundle>(`Composition?related-ref=${q(`Composition/${letterId ?? ''}`)}&status=final&_sort=date`),
    enabled: letterId !== undefined,
  });
  const authorReference = report.data?.resultsInterpreter?.[0]?.reference;
  const author = useQuery({
    queryKey: ['read', authorReference],
    queryFn: () => fhirGet<Practitioner>(authorReference ?? ''),
    enabled: authorReference !== undefined && /^Practitioner\/[A-Za-z0-9\-.]{1,64}$/.test(authorReference),
  });
  return {
    report,
    letter,
    addenda: addenda.data
      ? searchEntries<Composition>(addenda.data, 'Composition').filter((addendum) =>
          (addendum.relatesTo ?? []).some((relation) => relation.code === 'appends'),
        )
      : [],
    author: author.data,
    pdfPath: binaryPath(report.data?.presentedForm?.[0]?.url),
  };
}
