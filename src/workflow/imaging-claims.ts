/**
 * Instances refused by a person's provisional claim (dicom/case-claim.ts), brought to the
 * coordinators. A physician stores a patient's CD into their case; the study is the case's on their
 * word alone, so a later instance of it from an imaging system joins only when its patient agrees
 * with the study's. When it does not, the instance is refused (C-STORE 0124, STOW-RS FailureReason
 * 0124), and either the claim was false (someone claimed another patient's study) or the two sites
 * identify the same patient differently (a CD from one hospital, the PACS of another). Only a
 * coordinator can tell which.
 *
 * The first such refusal gives the study a `confirm-imaging-claim` Task (urn:hub:task-code), one per
 * study, focused on its ImagingStudy and filed under `reconcile-imaging/<ImagingStudy id>/claim`: it
 * names no ServiceRequest, so it belongs to no case and only coordinators and admins read it
 * (auth/case-links.ts). A coordinator who completes it confirms the claim: the study's claim becomes
 * firm, and the sender's instances, sent again, join it. Rejecting it keeps refusing them (and,
 * after a confirmation, refuses them again), and later refusals do not reopen it. A decision by
 * anyone else is not applied (the Task fails with the reason). Only the hub's own Task counts: its
 * code alone, which a person may give a Task of their case, is not enough (claimTaskStudy).
 */
import type { WithId } from '@medplum/core';
import type { Task } from '@medplum/fhirtypes';
import { actorOf } from '../auth/actor.ts';
import type { Database, Queryable } from '../db/database.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { Logger } from '../logger.ts';
import { STORED_INTO_CASE } from '../dicom/case-claim.ts';
import { createHubStudyTask, hubStudyTaskFocus } from './imaging-match.ts';
import { readOptional } from './materials.ts';

export const CONFIRM_IMAGING_CLAIM = 'confirm-imaging-claim';
/** A study whose Task was looked at this recently is not looked at again (a sender retrying a whole study). */
const RECORDED_FOR_MS = 60_000;
/** Studies remembered as recorded, at most. */
const RECORDED_MAX = 1_000;

export function claimTaskIdentifier(imagingStudyId: string): string {
  return `reconcile-imaging/${imagingStudyId}/claim`;
}

export interface ClaimRefusalsOptions {
  db: Database;
  repository: RepositoryContext;
  logger: Logger;
  now: () => Date;
}

/** Gives each study whose claim refused an instance its coordinators' Task, in the background. */
export class ClaimRefusals {
  private readonly options: ClaimRefusalsOptions;
  private readonly recorded = new Map<string, number>();

  constructor(options: ClaimRefusalsOptions) {
    this.options = options;
  }

  /** An instance of this study was refused by its provisional claim. The refusal does not wait for the Task. */
  refused(studyInstanceUid: string): void {
    const now = performance.now();
    const last = this.recorded.get(studyInstanceUid);
    if (last !== undefined && now - last < RECORDED_FOR_MS) {
      return;
    }
    if (this.recorded.size >= RECORDED_MAX) {
      this.recorded.clear();
    }
    this.recorded.set(studyInstanceUid, now);
    this.record(studyInstanceUid).catch((error: unknown) => {
      // The next refusal of the study tries again; the refusal itself is logged and audited anyway.
      this.recorded.delete(studyInstanceUid);
      this.options.logger.error(
        { studyInstanceUid, err: error instanceof Error ? error.message : String(error) },
        'the coordinators’ Task of a refused claim could not be written',
      );
    });
  }

  /** Writes the study's Task unless it has one (open, or closed by a coordinator). */
  async record(studyInstanceUid: string): Promise<void> {
    await this.options.db.transaction(async (tx) => {
      const found = await tx.query<{ imaging_study_id: string; claim_provisional: boolean }>(
        'SELECT imaging_study_id, claim_provisional FROM dicom_study WHERE study_instance_uid = $1 FOR UPDATE',
        [studyInstanceUid],
      );
      const study = found.rows[0];
      if (!study?.claim_provisional) {
        return;
      }
      await createHubStudyTask(new HubRepository(this.options.repository, tx), {
        identifier: claimTaskIdentifier(study.imaging_study_id),
        code: CONFIRM_IMAGING_CLAIM,
        description:
          'An imaging system sent instances of this study, which a person stored into a case, and their ' +
          'patient differs from the study’s; they were refused. Complete this Task to confirm the case’s ' +
          'claim (the sender may then send them again), or reject it to keep refusing them.',
        imagingStudyId: study.imaging_study_id,
        now: this.options.now(),
      });
    });
  }
}

export type ClaimResolution = 'not-claim' | 'gone' | 'open' | 'confirmed' | 'refused' | 'failed';

/**
 * The ImagingStudy id of the hub's confirm-imaging-claim Task: the code, no case (`basedOn`), and
 * the identifier only the hub writes for it, `reconcile-imaging/<id of the focus>/claim` (a person
 * cannot write `urn:hub:case-resource` identifiers). Undefined for any other Task, a Task of the
 * case that someone gave the code among its codings included: the job never acts on those.
 */
export function claimTaskStudy(task: Task): string | undefined {
  return (task.basedOn?.length ?? 0) > 0
    ? undefined
    : hubStudyTaskFocus(task, CONFIRM_IMAGING_CLAIM, claimTaskIdentifier);
}

/** The statuses of a claim Task the job applies: completed confirms the claim, the others withdraw a confirmation. */
export const DECIDED_CLAIM_STATUSES: ReadonlySet<Task['status']> = new Set(['completed', 'rejected', 'cancelled']);

/**
 * The hub's confirm-imaging-claim Task was written: a coordinator's completion makes the study's
 * claim firm; rejecting or cancelling it (after a confirmation too) makes the claim provisional
 * again, so the sender's instances are refused again. In the caller's transaction.
 */
export async function resolveClaimConfirmation(
  tx: Queryable,
  ctx: RepositoryContext,
  taskId: string,
): Promise<ClaimResolution> {
  const repo = new HubRepository(ctx, tx);
  const task: WithId<Task> | undefined = await readOptional<Task>(repo, 'Task', taskId);
  if (!task) {
    return 'gone';
  }
  const imagingStudyId = claimTaskStudy(task);
  if (imagingStudyId === undefined) {
    return 'not-claim';
  }
  if (!DECIDED_CLAIM_STATUSES.has(task.status)) {
    return 'open';
  }
  // Only a coordinator's decision is applied (or the trusted network's, without tokens).
  const decider = actorOf(task.meta?.source);
  if (decider && decider.role !== 'coordinator' && decider.role !== 'admin') {
    await repo.updateResource<Task>(
      {
        ...task,
        status: 'failed',
        statusReason: {
          text: `Only a coordinator may decide on a claim; a decision with the role ${decider.role} is not applied`,
        },
      },
      { ifMatch: task.meta?.versionId },
    );
    return 'failed';
  }
  const confirm = task.status === 'completed';
  await tx.query(`UPDATE dicom_study SET claim_provisional = $2 WHERE imaging_study_id = $1 AND match_method = $3`, [
    imagingStudyId,
    !confirm,
    STORED_INTO_CASE,
  ]);
  return confirm ? 'confirmed' : 'refused';
}
