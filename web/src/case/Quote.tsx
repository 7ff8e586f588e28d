/**
 * The case's quote: one row per ChargeItem (the fee, quantity, unit price, amount, and whether it is
 * billable or still planned while its material is expected), the total from the coordination Task's
 * `urn:hub:extension:quote` (or why a person must quote it), and how the questions were counted. A
 * coordinator may correct the question count with a reason (Quote-correction.tsx); while the hub
 * re-quotes, the section reads the case again until the new quote is in.
 */
import { Alert, Badge, Card, Group, Loader, Stack, Table, Text, Title } from '@mantine/core';
import type { ChargeItem, Extension, Practitioner, ServiceRequest, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet } from '../fhir.ts';
import { caseStateOf, formatName } from '../format.ts';
import { QuestionCountCorrection } from './Quote-correction.tsx';
import {
  CLOSED_STATES,
  OVERRIDE_EXTENSION,
  QUOTE_EXTENSION,
  extensionOf,
  formatMoney,
  mayCoordinate,
  partOf,
  useChargeItems,
  useCoordinationTask,
} from './Quote-data.ts';

const FEE_SYSTEM = 'urn:hub:fee-code';
const UNIT_PRICE = 'urn:hub:extension:unit-price';
const PLACEHOLDER_PRICE = 'urn:hub:extension:placeholder-price';
/** The order a patient reads a quote in: the opinion and its questions, then the materials. */
const FEE_ORDER = [
  'specialist-opinion',
  'extra-question',
  'follow-up-question',
  'imaging-review',
  'biopsy-review',
  'pathology-block',
  'unstained-slide',
  'special-stain',
  'record-pages',
  'record-collection',
];
const POLL_MS = 1500;

const feeCode = (item: ChargeItem): string =>
  item.code?.coding?.find((coding) => coding.system === FEE_SYSTEM)?.code ?? '';
const rank = (item: ChargeItem): number => {
  const index = FEE_ORDER.indexOf(feeCode(item));
  return index === -1 ? FEE_ORDER.length : index;
};
const countOf = (part: Extension | undefined): number | undefined => part?.valueUnsignedInt ?? part?.valueInteger;

/**
 * Whether the coordination Task carries an override its quote does not reflect yet (the hub's
 * re-quote is on its way); an override the hub could not apply is reported, not awaited.
 */
function overridePending(task: Task): boolean {
  const quote = extensionOf(task, QUOTE_EXTENSION);
  const override = extensionOf(task, OVERRIDE_EXTENSION);
  if (quote === undefined) {
    return false;
  }
  const overridden = partOf(quote, 'questionCountOverridden')?.valueBoolean === true;
  const problem = partOf(quote, 'questionCountOverrideProblem')?.valueString;
  if (override === undefined) {
    return overridden || problem !== undefined;
  }
  const count = countOf(partOf(override, 'count'));
  const complete =
    count !== undefined && partOf(override, 'reason')?.valueString?.trim() && partOf(override, 'setBy') !== undefined;
  if (!complete) {
    return false;
  }
  return !overridden || problem !== undefined || countOf(partOf(quote, 'questionCount')) !== count;
}

function SetBy({ setBy }: { setBy: Extension | undefined }) {
  const reference = setBy?.valueReference?.reference;
  const practitioner = useQuery({
    queryKey: ['read', reference],
    queryFn: () => fhirGet<Practitioner>(reference as string),
    enabled: reference !== undefined && /^Practitioner\/[A-Za-z0-9\-.]{1,64}$/.test(reference),
  });
  const name = formatName(practitioner.data?.name) ?? reference ?? setBy?.valueString ?? 'a coordinator';
  return <>{name}</>;
}

function Questions({ task }: { task: Task }) {
  const quote = extensionOf(task, QUOTE_EXTENSION);
  const override = extensionOf(task, OVERRIDE_EXTENSION);
  const billed = countOf(partOf(quote, 'questionCount'));
  const detected = countOf(partOf(quote, 'detectedQuestionCount'));
  const overridden = partOf(quote, 'questionCountOverridden')?.valueBoolean === true;
  const problem = partOf(quote, 'questionCountOverrideProblem')?.valueString;
  if (billed === undefined) {
    return null;
  }
  return (
    <Stack gap={4} data-testid="quote-questions">
      <Text size="sm">
        Questions billed: <strong>{billed}</strong>
        {detected !== undefined && detected !== billed ? ` (the physician’s questions count ${detected})` : ''}
      </Text>
      {overridden && override ? (
        <Text size="sm" data-testid="quote-correction">
          Corrected by <SetBy setBy={partOf(override, 'setBy')} />: {partOf(override, 'reason')?.valueString}
        </Text>
      ) : null}
      {problem ? (
        <Text size="sm" c="red.8">
          The correction could not be applied: {problem}
        </Text>
      ) : null}
    </Stack>
  );
}

function Lines({ items }: { items: ChargeItem[] }) {
  if (items.length === 0) {
    return <Text c="dimmed">No quote lines yet.</Text>;
  }
  return (
    <Table.ScrollContainer minWidth={560}>
      <Table data-testid="quote-lines">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Fee</Table.Th>
            <Table.Th ta="right">Quantity</Table.Th>
            <Table.Th ta="right">Unit price</Table.Th>
            <Table.Th ta="right">Amount</Table.Th>
            <Table.Th>Status</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {[...items]
            .sort((a, b) => rank(a) - rank(b))
            .map((item) => {
              const placeholder = extensionOf(item, PLACEHOLDER_PRICE)?.valueBoolean === true;
              return (
                <Table.Tr key={item.id} data-fee={feeCode(item)}>
                  <Table.Td>
                    {item.code?.text ?? item.code?.coding?.[0]?.display ?? feeCode(item)}
                    {placeholder ? (
                      <Text size="xs" c="dimmed">
                        Placeholder price
                      </Text>
                    ) : null}
                    {item.note?.map((note, index) => (
                      <Text size="xs" key={index}>
                        {note.text}
                      </Text>
                    ))}
                  </Table.Td>
                  <Table.Td ta="right" data-testid="quote-quantity">
                    {item.quantity?.value ?? '—'}
                  </Table.Td>
                  <Table.Td ta="right">{formatMoney(extensionOf(item, UNIT_PRICE)?.valueMoney)}</Table.Td>
                  <Table.Td ta="right" data-testid="quote-amount">
                    {formatMoney(item.priceOverride)}
                  </Table.Td>
                  <Table.Td>
                    {item.status === 'planned'
                      ? 'Planned: material expected'
                      : item.status === 'billable'
                        ? 'Billable'
                        : item.status}
                  </Table.Td>
                </Table.Tr>
              );
            })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

function Total({ task }: { task: Task }) {
  const quote = extensionOf(task, QUOTE_EXTENSION);
  const total = partOf(quote, 'total')?.valueMoney;
  const manual = partOf(quote, 'manualQuote')?.valueString;
  const placeholders = partOf(quote, 'placeholderPrices')?.valueBoolean === true;
  return (
    <Stack gap={4}>
      {manual ? (
        <Alert color="orange" title="A person must quote this case" data-testid="quote-total">
          {manual} Priced lines come to {formatMoney(partOf(quote, 'subtotal')?.valueMoney)}.
        </Alert>
      ) : (
        <Group gap="xs">
          <Text fw={600}>Total</Text>
          <Text fw={700} size="lg" data-testid="quote-total">
            {formatMoney(total)}
          </Text>
        </Group>
      )}
      <Text size="xs" c="dimmed">
        Fee schedule {partOf(quote, 'scheduleVersion')?.valueString ?? 'not recorded'}
        {placeholders ? '; some prices are placeholders the business has not set yet' : ''}.
      </Text>
    </Stack>
  );
}

function QuoteBody({ serviceRequest, task }: { serviceRequest: ServiceRequest; task: Task }) {
  const id = serviceRequest.id ?? '';
  const pending = overridePending(task);
  // While the hub re-quotes, both the Task and its lines are read again until the new quote is in.
  const polled = useCoordinationTask(id, pending ? POLL_MS : false);
  const current = polled.data ?? task;
  const charges = useChargeItems(
    id,
    serviceRequest.subject?.reference,
    current.meta?.versionId,
    pending ? POLL_MS : false,
  );
  const state = caseStateOf(current);
  const quote = extensionOf(current, QUOTE_EXTENSION);
  if (quote === undefined) {
    return <Text c="dimmed">No quote yet: the hub quotes the case when it is submitted.</Text>;
  }
  const open = state !== undefined && !CLOSED_STATES.includes(state) && state !== 'intake';
  return (
    <Stack gap="sm">
      {pending ? (
        <Group gap="xs" data-testid="quote-pending">
          <Loader size="xs" role="status" aria-label="Re-quoting" />
          <Text size="sm">The hub is recomputing the quote…</Text>
        </Group>
      ) : null}
      {charges.error ? <ErrorAlert error={charges.error} title="The quote lines could not be read" /> : null}
      {charges.isPending ? (
        <Loader size="sm" role="status" aria-label="Loading the quote lines" />
      ) : (
        <Lines items={charges.data ?? []} />
      )}
      <Total task={current} />
      <Questions task={current} />
      {mayCoordinate() && open && current.id ? (
        <QuestionCountCorrection
          serviceRequestId={id}
          taskId={current.id}
          billed={countOf(partOf(quote, 'questionCount'))}
          overridden={partOf(quote, 'questionCountOverridden')?.valueBoolean === true}
        />
      ) : null}
      {state !== undefined && CLOSED_STATES.includes(state) ? (
        <Badge color="gray" variant="light">
          The case is closed: its quote no longer changes
        </Badge>
      ) : null}
    </Stack>
  );
}

export function Quote({ serviceRequest }: { serviceRequest: ServiceRequest }) {
  const coordination = useCoordinationTask(serviceRequest.id ?? '');
  return (
    <Card withBorder padding="md" data-testid="case-quote">
      <Title order={3} size="h4" mb="xs">
        Quote
      </Title>
      {coordination.error ? (
        <ErrorAlert error={coordination.error} title="The quote could not be read" />
      ) : coordination.isPending ? (
        <Loader size="sm" role="status" aria-label="Loading the quote" />
      ) : coordination.data ? (
        <QuoteBody serviceRequest={serviceRequest} task={coordination.data} />
      ) : (
        <Text c="dimmed">No quote yet: the case has not been through intake.</Text>
      )}
    </Card>
  );
}
