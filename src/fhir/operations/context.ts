/** What the hub's operations need besides the request's repository. */
import type { JurisdictionPolicy } from '../../cases/jurisdictions.ts';
import type { RepositoryContext } from '../repository.ts';

export interface OperationContext {
  /** The store, for operations that run their own transaction (Patient/$register). */
  readonly repository: Omit<RepositoryContext, 'strictSearch'>;
  /** The operator's policy versions, or the shipped default (eligibility.ts, loadJurisdictionPolicies). */
  readonly jurisdictionPolicies: readonly JurisdictionPolicy[];
  readonly now: () => Date;
}
