/**
 * The specialties the hub's matching seeks (src/cases/specialties.ts SPECIALTIES: NUCC code and name),
 * for the worklist's specialty filter. Not imported from there, since web/ takes only types from src/;
 * test/web-worklist.test.ts checks that the filter offers exactly the hub's list.
 */
import type { CodeableConcept } from '@medplum/fhirtypes';
import { NUCC_SYSTEM } from './search.ts';

export const SPECIALTIES: readonly { code: string; label: string }[] = [
  { code: '207RX0202X', label: 'Medical Oncology' },
  { code: '207RC0000X', label: 'Cardiovascular Disease' },
  { code: '2084N0400X', label: 'Neurology' },
  { code: '207T00000X', label: 'Neurological Surgery' },
  { code: '207X00000X', label: 'Orthopaedic Surgery' },
  { code: '207N00000X', label: 'Dermatology' },
  { code: '207RG0100X', label: 'Gastroenterology' },
  { code: '208800000X', label: 'Urology' },
  { code: '207RP1001X', label: 'Pulmonary Disease' },
  { code: '207RE0101X', label: 'Endocrinology, Diabetes & Metabolism' },
  { code: '207RR0500X', label: 'Rheumatology' },
  { code: '207RH0000X', label: 'Hematology' },
  { code: '2085R0202X', label: 'Diagnostic Radiology' },
  { code: '207ZP0102X', label: 'Anatomic Pathology & Clinical Pathology' },
];

/** The specialties sought as the coordination Task's performerType says them, in words. */
export function specialtyNames(performerType: readonly CodeableConcept[] | undefined): string[] {
  return (performerType ?? []).flatMap((concept) => {
    const coding = concept.coding?.find((candidate) => candidate.system === NUCC_SYSTEM);
    const known = SPECIALTIES.find((specialty) => specialty.code === coding?.code)?.label;
    const name = known ?? concept.text ?? coding?.display;
    return name === undefined ? [] : [name];
  });
}
