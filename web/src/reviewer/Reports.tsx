/**
 * The case's reports the person may read, but for the opinion itself: the radiology and pathology
 * pre-reviews (findings, impression and whether the material was adequate) and outside reports.
 */
import { Badge, Card, Group, Loader, Stack, Text } from '@mantine/core';
import type { DiagnosticReport } from '@medplum/fhirtypes';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatDateTime } from '../format.ts';
import { CONSULTATION_NOTE, LOINC } from './codes.ts';
import { useCaseReports } from './case-data.ts';
import { divToText } from './letter.ts';
import { ADEQUACY_SYSTEM } from './pre-review.ts';

const isOpinion = (report: DiagnosticReport): boolean =>
  report.code.coding?.some((coding) => coding.system === LOINC && coding.code === CONSULTATION_NOTE) === true;

export function ReportCard({ report }: { report: DiagnosticReport }) {
  const adequacy = report.conclusionCode
    ?.flatMap((concept) => concept.coding ?? [])
    .find((coding) => coding.system === ADEQUACY_SYSTEM);
  const findings = divToText(report.text?.div);
  return (
    <Card withBorder padding="sm" data-testid="case-report" data-report={report.id}>
      <Group justify="space-between" mb={4}>
        <Text fw={600}>{report.code.text ?? report.code.coding?.[0]?.display ?? 'Report'}</Text>
        <Group gap="xs">
          {adequacy ? (
            <Badge color={adequacy.code === 'adequate' ? 'green' : 'orange'} variant="light">
              {adequacy.display ?? adequacy.code}
            </Badge>
          ) : null}
          <Text size="sm" c="dimmed">
            {formatDateTime(report.issued ?? report.meta?.lastUpdated)} · {report.status}
          </Text>
        </Group>
      </Group>
      {findings !== '' ? (
        <Text size="sm" className="letter-section-question">
          {findings}
        </Text>
      ) : null}
      {report.conclusion ? (
        <Text size="sm" mt={4}>
          <strong>Impression:</strong> {report.conclusion}
        </Text>
      ) : null}
    </Card>
  );
}

export function Reports({ caseId }: { caseId: string }) {
  const reports = useCaseReports(caseId);
  if (reports.error) {
    return <ErrorAlert error={reports.error} title="The reports could not be read" />;
  }
  if (reports.isPending) {
    return <Loader size="sm" aria-label="Loading the reports" />;
  }
  const shown = reports.data.filter((report) => !isOpinion(report));
  if (shown.length === 0) {
    return <Text c="dimmed">No pre-review or other reports yet.</Text>;
  }
  return (
    <Stack gap="sm">
      {shown.map((report) => (
        <ReportCard key={report.id} report={report} />
      ))}
    </Stack>
  );
}
