/**
 * The case's materials, expected against arrived: one block per kind with an expect-material Task
 * (what the physician planned, what came: records with their pages, imaging studies with their
 * thumbnails, specimens), what is still missing, and, for a coordinator once the case is accepted,
 * the waiver of a material still awaited (Materials-waive.tsx). Before acceptance the physician's
 * plan decides what is expected (the hub's intake re-syncs it), so nothing is waived then.
 */
import { Alert, Badge, Card, Divider, Group, Loader, Stack, Text, Title } from '@mantine/core';
import type { ServiceRequest, Task } from '@medplum/fhirtypes';
import { useEffect, useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { caseStateOf, writerOf } from '../format.ts';
import { expectedMaterials, idsOf, KIND_LABELS } from './Materials-data.ts';
import type { ExpectedMaterial } from './Materials-data.ts';
import { Records, Specimens, Studies } from './Materials-items.tsx';
import { WaiveMaterial } from './Materials-waive.tsx';
import { mayCoordinate, useChargeItems, useCoordinationTask, useExpectMaterialTasks } from './Quote-data.ts';

/** States in which a coordinator may waive what is still awaited: accepted, and not over. */
const WAIVABLE_STATES = [
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
  'report-review',
];
const POLL_MS = 1500;
/** How long the section reads the case again after a waiver, for the re-quote to show. */
const REQUOTE_WINDOW_MS = 20_000;

function statusBadge(task: Task) {
  const byCoordinator = /^urn:hub:actor:(coordinator|admin):/.test(task.meta?.source ?? '');
  const [label, color] =
    task.status === 'completed'
      ? ['Arrived', 'green']
      : task.status === 'in-progress'
        ? ['Partly arrived', 'blue']
        : task.status === 'cancelled'
          ? [byCoordinator ? 'Waived' : 'No longer expected', 'gray']
          : task.status === 'requested'
            ? ['Expected', 'blue']
            : [task.status, 'gray'];
  return (
    <Badge color={color} variant="light" data-testid="material-status">
      {label}
    </Badge>
  );
}

function arrivedWords(material: ExpectedMaterial): string {
  const { arrived, arrivals } = material;
  if (arrivals.length === 0) {
    return 'nothing yet';
  }
  if (material.kind === 'records') {
    const documents = `${arrivals.length} ${arrivals.length === 1 ? 'document' : 'documents'}`;
    return arrived.recordPages !== undefined ? `${documents}, ${arrived.recordPages} pages counted` : documents;
  }
  if (material.kind === 'imaging') {
    return `${arrivals.length} ${arrivals.length === 1 ? 'study' : 'studies'}`;
  }
  const sites = arrived.biopsySites;
  return `${arrivals.length} ${arrivals.length === 1 ? 'specimen' : 'specimens'}${sites !== undefined ? ` from ${sites} biopsy ${sites === 1 ? 'site' : 'sites'}` : ''}`;
}

function Kind({
  material,
  serviceRequestId,
  state,
  onWaived,
}: {
  material: ExpectedMaterial;
  serviceRequestId: string;
  state: string | undefined;
  onWaived: () => void;
}) {
  const { task, kind } = material;
  const coordinator = mayCoordinate();
  return (
    <Stack gap="xs" data-testid={`material-${kind}`}>
      <Group gap="sm">
        <Title order={4} size="h5">
          {KIND_LABELS[kind]}
        </Title>
        {statusBadge(task)}
      </Group>
      <Text size="sm" data-testid="material-expected">
        Expected: {material.planned.length > 0 ? material.planned.join('; ') : 'not planned by the physician'}
      </Text>
      <Text size="sm" data-testid="material-arrived">
        Arrived: {arrivedWords(material)}
      </Text>
      {task.status === 'cancelled' ? (
        <Text size="sm" data-testid="material-waiver">
          {task.statusReason?.text ?? 'No reason recorded.'} ({writerOf(task.meta?.source)})
        </Text>
      ) : null}
      {kind === 'records' ? (
        <Records serviceRequestId={serviceRequestId} ids={idsOf([material], 'DocumentReference')} />
      ) : null}
      {kind === 'imaging' ? (
        <Studies serviceRequestId={serviceRequestId} ids={idsOf([material], 'ImagingStudy')} />
      ) : null}
      {kind === 'pathology' ? (
        <Specimens serviceRequestId={serviceRequestId} ids={idsOf([material], 'Specimen')} />
      ) : null}
      {coordinator && material.open && task.id && state !== undefined && WAIVABLE_STATES.includes(state) ? (
        <WaiveMaterial serviceRequestId={serviceRequestId} taskId={task.id} kind={kind} onWaived={onWaived} />
      ) : null}
      {coordinator && material.open && state === 'submitted' ? (
        <Text size="xs" c="dimmed">
          Accept the case to waive this material: until then the physician’s plan decides what is expected.
        </Text>
      ) : null}
    </Stack>
  );
}

export function Materials({ serviceRequest }: { serviceRequest: ServiceRequest }) {
  const id = serviceRequest.id ?? '';
  const [requoting, setRequoting] = useState(false);
  useEffect(() => {
    if (!requoting) {
      return undefined;
    }
    const timer = setTimeout(() => setRequoting(false), REQUOTE_WINDOW_MS);
    return () => clearTimeout(timer);
  }, [requoting]);
  const interval = requoting ? POLL_MS : false;
  const tasks = useExpectMaterialTasks(id, interval);
  const coordination = useCoordinationTask(id, interval);
  // The quote's lines are read again with the rest while the hub re-quotes after a waiver.
  useChargeItems(id, serviceRequest.subject?.reference, coordination.data?.meta?.versionId, interval);
  const state = caseStateOf(coordination.data ?? undefined);
  const materials = expectedMaterials(tasks.data ?? []);
  const missing = materials.filter((material) => material.missing !== undefined);
  return (
    <Card withBorder padding="md" data-testid="case-materials">
      <Title order={3} size="h4" mb="xs">
        Materials
      </Title>
      {tasks.error ? (
        <ErrorAlert error={tasks.error} title="The expected materials could not be read" />
      ) : tasks.isPending ? (
        <Loader size="sm" role="status" aria-label="Loading the materials" />
      ) : materials.length === 0 ? (
        <Text c="dimmed">No material is expected, and none has arrived.</Text>
      ) : (
        <Stack gap="md">
          {missing.length > 0 ? (
            <Alert color="yellow" title="Still missing" data-testid="materials-missing">
              {missing.map((material) => `${KIND_LABELS[material.kind]}: ${material.missing}`).join('; ')}
            </Alert>
          ) : (
            <Text size="sm" data-testid="materials-missing">
              Nothing is missing: every expected material has arrived or was waived.
            </Text>
          )}
          {materials.map((material, index) => (
            <Stack key={material.task.id ?? material.kind} gap="md">
              {index > 0 ? <Divider /> : null}
              <Kind material={material} serviceRequestId={id} state={state} onWaived={() => setRequoting(true)} />
            </Stack>
          ))}
        </Stack>
      )}
    </Card>
  );
}
