/**
 * Who made an HTTP request, as the audit trail names them: the user or client of the bearer token
 * `authenticate` verified, and the network address. The composition root hands it to the Auditor.
 * A token of this hub refused as no longer valid names its user or client too, marked `claimed`.
 */
import type { Request, Response } from 'express';
import type { AuditActor } from '../audit/audit-event.ts';
import { clientAddress } from '../audit/client-address.ts';
import { claimedIdentity, requestIdentity } from './authenticate.ts';

/** The actor of a request that went through bearer authentication. */
export function requestActor(req: Request, res: Response): AuditActor {
  const identity = requestIdentity(res);
  const address = clientAddress(req);
  if (identity?.kind === 'user') {
    return {
      userId: identity.userId,
      fhirUser: identity.fhirUser,
      clientId: identity.clientId,
      clientIsRequestor: false,
      address,
    };
  }
  if (identity?.kind === 'client') {
    return { clientId: identity.clientId, clientIsRequestor: true, address };
  }
  const claimed = identity === undefined ? claimedIdentity(res) : undefined;
  if (claimed?.kind === 'user') {
    return {
      userId: claimed.userId,
      fhirUser: claimed.fhirUser,
      clientId: claimed.clientId,
      clientIsRequestor: false,
      address,
      claimed: true,
      sessionId: claimed.sessionId,
    };
  }
  if (claimed?.kind === 'client') {
    return { clientId: claimed.clientId, clientIsRequestor: true, address, claimed: true };
  }
  // Anonymous (AUTH_REQUIRED=false): the network address is all there is.
  return { clientIsRequestor: true, address };
}
