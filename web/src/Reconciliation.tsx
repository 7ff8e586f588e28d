/**
 * The reconciliation inbox, at /dashboard/reconciliation (coordinators and admins): every stored
 * study that matched no case, or several, oldest first, with what its DICOM says (patient name, ID,
 * birth date, accession number, date, modality, a thumbnail) beside the cases it could belong to.
 * The coordinator attaches it to a case or rejects it; the hub applies the match in the background
 * (reconciliation/api.ts), and a resolution it cannot apply comes back here with its reason. Studies
 * whose case's claim refused an imaging system's instances wait here too (reconciliation/ClaimCard.tsx).
 */
import { Alert, Anchor, Badge, Button, Group, Loader, Stack, Text, Title } from '@mantine/core';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import type { Session } from './auth.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { StaffOnly } from './queues/StaffOnly.tsx';
import { attachStudy, firstInboxPage, inboxPage, rejectStudy, studyIdentities } from './reconciliation/api.ts';
import type { CaseSummary, InboxItem } from './reconciliation/api.ts';
import { CaseChoices } from './reconciliation/CaseChoices.tsx';
import { ClaimCard } from './reconciliation/ClaimCard.tsx';
import { InboxCardFrame } from './reconciliation/InboxCardFrame.tsx';
import type { StudyIdentity as Identity } from './reconciliation/dicom.ts';
import { RejectStudy } from './reconciliation/RejectStudy.tsx';
import { StudyIdentity } from './reconciliation/StudyIdentity.tsx';

const PAGE_SIZE = 10;
const REFRESH_MS = 15_000;
const INBOX = 'reconcile-inbox';

interface Notice {
  key: string;
  text: string;
  caseId?: string;
}

const REASONS = {
  unmatched: 'Matched no case',
  ambiguous: 'Matched several cases',
} as const;

function studyLabel(identity: Identity | undefined): string {
  return identity?.patientName ?? 'an unnamed patient';
}

function InboxCard({
  item,
  identity,
  onDone,
}: {
  item: InboxItem;
  identity: Identity | undefined;
  onDone: (notice: Notice) => void;
}) {
  const queryClient = useQueryClient();
  const label = studyLabel(identity);
  const settle = (notice: Notice): void => {
    onDone(notice);
    void queryClient.invalidateQueries({ queryKey: [INBOX] });
  };
  const attach = useMutation({
    mutationFn: (choice: CaseSummary) => attachStudy(item.task, choice.serviceRequest.id ?? ''),
    onSuccess: (_task, choice) =>
      settle({
        key: `${item.task.id}-attached`,
        text: `The study of ${label} is being attached to case ${choice.referenceNumber ?? choice.serviceRequest.id}.`,
        caseId: choice.serviceRequest.id,
      }),
  });
  const reject = useMutation({
    mutationFn: (reason: string) => rejectStudy(item.task, reason),
    onSuccess: () => settle({ key: `${item.task.id}-rejected`, text: `The study of ${label} was rejected.` }),
  });
  const busy = attach.isPending || reject.isPending;
  if (item.kind === 'claim') {
    return <ClaimCard item={item} identity={identity} label={label} onSettled={settle} />;
  }
  return (
    <InboxCardFrame
      item={item}
      label={label}
      ariaLabel={`Study of ${label}`}
      since="Arrived"
      badge={
        item.reason === undefined ? null : (
          <Badge
            color={item.reason === 'ambiguous' ? 'dark' : 'gray'}
            variant={item.reason === 'ambiguous' ? 'outline' : 'light'}
            data-testid="reason"
          >
            {REASONS[item.reason]}
          </Badge>
        )
      }
    >
      <div className="two-columns">
        <StudyIdentity identity={identity} study={item.study} studyInstanceUid={item.studyInstanceUid} />
        <CaseChoices
          candidates={item.candidates}
          birthDate={identity?.birthDate}
          studyLabel={label}
          busy={busy}
          onAttach={(choice) => attach.mutate(choice)}
        />
      </div>
      {attach.error ? <ErrorAlert error={attach.error} title="Not attached" /> : null}
      {reject.error ? <ErrorAlert error={reject.error} title="Not rejected" /> : null}
      <RejectStudy busy={busy} onReject={(reason) => reject.mutate(reason)} />
    </InboxCardFrame>
  );
}

function Inbox() {
  const first = firstInboxPage(PAGE_SIZE);
  const [urls, setUrls] = useState<string[]>([first]);
  const current = urls[urls.length - 1] ?? first;
  const [notices, setNotices] = useState<Notice[]>([]);
  const page = useQuery({
    queryKey: [INBOX, current],
    queryFn: () => inboxPage(current),
    placeholderData: keepPreviousData,
    refetchInterval: REFRESH_MS,
  });
  const items = page.data?.items ?? [];
  const uids = items.map((item) => item.studyInstanceUid).filter((uid): uid is string => uid !== undefined);
  const identities = useQuery({
    queryKey: ['reconcile-identities', uids],
    queryFn: () => studyIdentities(uids),
    enabled: uids.length > 0,
    placeholderData: keepPreviousData,
  });
  const next = page.data?.next;
  return (
    <Stack>
      <Title order={2}>Reconciliation</Title>
      <Text size="sm">
        Studies the hub could not match to one case by their accession number, reference number or patient ID and birth
        date: attach each to its case, or reject it. And studies stored into a case whose later instances, from an
        imaging system, name another patient: confirm the case’s claim, or keep refusing them.
      </Text>
      {notices.map((notice) => (
        <Alert
          key={notice.key}
          color="green"
          role="status"
          data-testid="reconcile-notice"
          withCloseButton
          closeButtonLabel="Dismiss"
          onClose={() => setNotices((all) => all.filter((other) => other.key !== notice.key))}
        >
          {notice.text}{' '}
          {notice.caseId === undefined ? null : (
            <Anchor component={Link} to={`/cases/${encodeURIComponent(notice.caseId)}`}>
              Open the case
            </Anchor>
          )}
        </Alert>
      ))}
      {page.error ? <ErrorAlert error={page.error} /> : null}
      {identities.error ? <ErrorAlert error={identities.error} title="The studies' DICOM could not be read" /> : null}
      {page.isPending ? <Loader aria-label="Loading the studies to reconcile" /> : null}
      {page.data !== undefined && items.length === 0 ? (
        <Text data-testid="reconcile-empty">No study is waiting: every stored study is matched to its case.</Text>
      ) : null}
      <Stack gap="md" data-testid="reconcile-inbox" aria-busy={page.isFetching}>
        {items.map((item) => (
          <InboxCard
            key={item.task.id}
            item={item}
            identity={item.studyInstanceUid === undefined ? undefined : identities.data?.get(item.studyInstanceUid)}
            onDone={(notice) => setNotices((all) => [notice, ...all.filter((other) => other.key !== notice.key)])}
          />
        ))}
      </Stack>
      <Group>
        <Button variant="default" disabled={urls.length < 2} onClick={() => setUrls(urls.slice(0, -1))}>
          Previous page
        </Button>
        <Button
          variant="default"
          disabled={next === undefined}
          onClick={() => next !== undefined && setUrls([...urls, next])}
        >
          Next page
        </Button>
      </Group>
    </Stack>
  );
}

export function Reconciliation({ session }: { session: Session }) {
  return (
    <StaffOnly session={session} screen="Reconciliation">
      <Inbox />
    </StaffOnly>
  );
}
