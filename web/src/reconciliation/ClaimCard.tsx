/**
 * A case's claim that refused an imaging system's instances (a `confirm-imaging-claim` Task): a
 * person stored the study into the case, and the instances the imaging system then sent name
 * another patient. The coordinator sees the study as it was stored and the case that claims it, and
 * confirms the claim (the instances, sent again, join the study) or keeps refusing them.
 */
import { Anchor, Badge, Button, Group, Text } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { Link } from 'react-router';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { confirmClaim, rejectStudy } from './api.ts';
import type { InboxItem } from './api.ts';
import type { StudyIdentity as Identity } from './dicom.ts';
import { InboxCardFrame } from './InboxCardFrame.tsx';
import { RejectStudy } from './RejectStudy.tsx';
import { StudyIdentity } from './StudyIdentity.tsx';

export function ClaimCard({
  item,
  identity,
  label,
  onSettled,
}: {
  item: InboxItem;
  identity: Identity | undefined;
  label: string;
  onSettled: (notice: { key: string; text: string; caseId?: string }) => void;
}) {
  const confirm = useMutation({
    mutationFn: () => confirmClaim(item.task),
    onSuccess: () =>
      onSettled({
        key: `${item.task.id}-confirmed`,
        text: `The claim of the study of ${label} is being confirmed: its sender may send the refused instances again.`,
        ...(item.claimedFor === undefined ? {} : { caseId: item.claimedFor }),
      }),
  });
  const keep = useMutation({
    mutationFn: (reason: string) => rejectStudy(item.task, reason),
    onSuccess: () =>
      onSettled({
        key: `${item.task.id}-kept`,
        text: `The instances sent for the study of ${label} stay refused.`,
      }),
  });
  const busy = confirm.isPending || keep.isPending;
  return (
    <InboxCardFrame
      item={item}
      label={label}
      ariaLabel={`Refused instances of the study of ${label}`}
      since="First refused"
      badge={
        <Badge color="dark" variant="outline" data-testid="reason">
          Instances refused by a case’s claim
        </Badge>
      }
    >
      <Text size="sm">
        This study was stored into a case by a person. An imaging system then sent instances of it that name another
        patient, and the hub refused them. Confirm the case’s claim if they are the same patient (the sender may then
        send them again), or keep refusing them.
      </Text>
      <StudyIdentity identity={identity} study={item.study} studyInstanceUid={item.studyInstanceUid} />
      {item.claimedFor === undefined ? null : (
        <Text size="sm">
          Claimed for{' '}
          <Anchor component={Link} to={`/cases/${encodeURIComponent(item.claimedFor)}`}>
            the case
          </Anchor>
          .
        </Text>
      )}
      {confirm.error ? <ErrorAlert error={confirm.error} title="Not confirmed" /> : null}
      {keep.error ? <ErrorAlert error={keep.error} title="Not recorded" /> : null}
      <Group align="start">
        <Button onClick={() => confirm.mutate()} loading={confirm.isPending} disabled={busy}>
          Confirm the claim
        </Button>
        <RejectStudy
          busy={busy}
          onReject={(reason) => keep.mutate(reason)}
          action="Keep refusing"
          question="Why are the instances refused?"
          confirm="Confirm refusing"
        />
      </Group>
    </InboxCardFrame>
  );
}
