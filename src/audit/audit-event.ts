/**
 * AuditEvent resources (R4) after IHE Basic Audit Log Patterns (BALP): the RESTful patterns (type
 * `rest`, subtype the restful-interaction code) with the client as Source Role ID, the hub as
 * Destination Role ID and the person (when there is one) as the OAuth user agent; logins, logouts
 * and token issuance as DICOM User Authentication (110114). Pure: the caller passes the clock and the id.
 * Only references and codes go in: no names, no search values except BALP's base64 `entity.query`.
 */
import { randomFillSync } from 'node:crypto';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding, Reference, Resource } from '@medplum/fhirtypes';

export const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
export const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
export const DICOM = 'http://dicom.nema.org/resources/ontology/DCM';
/** The hub's own subtypes, for what neither BALP nor DICOM has a code for. */
export const HUB_AUDIT_SUBTYPE = 'urn:second-opinion-hub:audit-subtype';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const BALP_USER_AGENT = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';

/** AuditEvent.outcome: 0 success, 4 minor failure (refused request), 8 serious failure, 12 major failure. */
export type AuditOutcome = '0' | '4' | '8' | '12';

/** Who asked, as the HTTP layer knows it. */
export interface AuditActor {
  /** The registered client the request came through (a system client, or the app a person used). */
  clientId?: string;
  /** A person: the hub's user id and, when linked, their FHIR resource (`Practitioner/…`, `Patient/…`). */
  userId?: string;
  fhirUser?: string;
  /** True when the client itself is the requestor (SMART Backend Services). */
  clientIsRequestor: boolean;
  /** The hub itself acting (a queue worker, the ImagingStudy refresher): which part of it. */
  application?: string;
  /** The requesting network address. */
  address?: string;
  /**
   * The ids above were named, not proved (on refusals only): a token this hub signed that is no
   * longer valid (expired, or its login session ended), or a client assertion naming a registered
   * client that did not verify. The refusal throttle budgets such refusals per identity named.
   */
  claimed?: boolean;
  /** The login session of the person's token, named when the token was refused for it (`agent.policy`). */
  sessionId?: string;
}

/** The outcome text of a request refused for a token of this hub that is no longer valid. */
export const CLAIMED_TOKEN_REFUSED =
  'The access token was signed by this hub but is no longer valid: it has expired, or its login session has ended.';

/** What the hub knows about itself for every event. */
export interface AuditSite {
  /** BASE_URL */
  baseUrl: string;
}

export interface AuditEventInput {
  id: string;
  recorded: Date;
  actor: AuditActor;
  outcome: AuditOutcome;
  /** Only a fixed, non-revealing text (never an exception message). */
  outcomeDesc?: string;
}

const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

/**
 * A new AuditEvent id: a UUID version 7 (RFC 9562 §5.7), its first 48 bits the time in ms, the other
 * 74 random. Ids in time order keep the audit store's primary key growing at its right edge as an
 * audit trail of millions of rows outgrows the cache, instead of touching a random page per event.
 */
export function auditEventId(now = Date.now()): string {
  if (randomOffset + 10 > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const o = randomOffset;
  randomOffset += 10;
  const time = now.toString(16).padStart(12, '0');
  // 20 hex digits, two per random byte; digit 0 gives way to the version (7) and digit 4 to the variant.
  const random = randomPool.toString('hex', o, o + 10);
  // The variant digit: bits 10, then two random bits of byte 2 (so 8, 9, a or b).
  const variant = (0x8 | ((randomPool.readUInt8(o + 2) >> 4) & 0x3)).toString(16);
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(1, 4)}-${variant}${random.slice(5, 8)}-` +
    random.slice(8, 20)
  );
}

export function outcomeForStatus(status: number): AuditOutcome {
  if (status < 400) {
    return '0';
  }
  return status >= 500 ? '8' : '4';
}

const REST_ACTIONS: Record<string, AuditEvent['action']> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  update: 'U',
  patch: 'U',
  delete: 'D',
};

/**
 * The agents of the actors seen last, each list with its JSON text: a client or a person makes many
 * requests in a row, and the agents are the largest part of an event's text, so serialising them
 * once per actor instead of once per event is most of what an audited read costs in JSON
 * (auditEventJson). The lists are frozen: events share them.
 */
const recentAgents = new Map<string, readonly AuditEventAgent[]>();
const agentsJson = new WeakMap<readonly AuditEventAgent[], string>();
const RECENT_AGENTS = 1024;

/**
 * The agents of a request: the person (when there is one), the client or the hub itself (Source Role
 * ID), and the hub's service that was asked, `endpoint` under BASE_URL (Destination Role ID).
 */
export function requestAgents(
  site: AuditSite,
  actor: AuditActor,
  endpoint: '/fhir' | '/dicomweb' = '/fhir',
): AuditEventAgent[] {
  const key = [
    site.baseUrl,
    endpoint,
    actor.userId,
    actor.fhirUser,
    actor.clientId,
    actor.clientIsRequestor,
    actor.address,
    actor.application,
    actor.sessionId,
  ].join('\u001f');
  let list = recentAgents.get(key);
  if (list === undefined) {
    if (recentAgents.size >= RECENT_AGENTS) {
      recentAgents.clear();
    }
    list = Object.freeze(buildAgents(site, actor, `${site.baseUrl}${endpoint}`));
    recentAgents.set(key, list);
    agentsJson.set(list, JSON.stringify(list));
  }
  return list as AuditEventAgent[];
}

/** An event's JSON text, with its agents' text reused when they came from requestAgents(). */
export function auditEventJson(event: AuditEvent): string {
  const cached = event.agent === undefined ? undefined : agentsJson.get(event.agent);
  if (cached === undefined) {
    return JSON.stringify(event);
  }
  const { agent: _agent, ...rest } = event;
  return `${JSON.stringify(rest).slice(0, -1)},"agent":${cached}}`;
}

function buildAgents(site: AuditSite, actor: AuditActor, service: string): AuditEventAgent[] {
  const result: AuditEventAgent[] = [];
  if (actor.userId !== undefined) {
    result.push({
      type: { coding: [{ system: BALP_USER_AGENT, code: 'UserOauthAgent', display: 'User OAuth Agent participant' }] },
      who:
        actor.fhirUser !== undefined
          ? { reference: actor.fhirUser, identifier: { system: `${site.baseUrl}/users`, value: actor.userId } }
          : { identifier: { system: `${site.baseUrl}/users`, value: actor.userId } },
      altId: actor.userId,
      requestor: true,
      // R4: the policy "would also indicate the security token used"; BALP puts the token's id there.
      ...(actor.sessionId !== undefined ? { policy: [`${site.baseUrl}/sessions/${actor.sessionId}`] } : {}),
    });
  }
  result.push({
    type: { coding: [{ system: DICOM, code: '110153', display: 'Source Role ID' }] },
    ...(actor.clientId !== undefined
      ? { who: { identifier: { system: `${site.baseUrl}/clients`, value: actor.clientId } }, altId: actor.clientId }
      : {}),
    ...(actor.application !== undefined
      ? {
          who: {
            identifier: { system: 'urn:ietf:rfc:3986', value: site.baseUrl },
            display: `hub ${actor.application}`,
          },
          altId: actor.application,
        }
      : {}),
    requestor: actor.clientIsRequestor,
    ...(actor.address !== undefined ? { network: { address: actor.address, type: '2' as const } } : {}),
  });
  result.push({
    type: { coding: [{ system: DICOM, code: '110152', display: 'Destination Role ID' }] },
    who: { identifier: { system: 'urn:ietf:rfc:3986', value: service } },
    requestor: false,
    network: { address: service, type: '5' },
  });
  return result;
}

/** The hub as the events' source (Application Server). */
export function auditSource(site: AuditSite): AuditEvent['source'] {
  return {
    observer: { identifier: { system: 'urn:ietf:rfc:3986', value: site.baseUrl } },
    type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
  };
}

function resourceEntity(reference: string): AuditEventEntity {
  return {
    what: { reference },
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
  };
}

function patientEntity(reference: string): AuditEventEntity {
  return {
    what: { reference },
    type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
    role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
  };
}

/** Stored as version 1, last updated when recorded (audit/statement.ts): built so here, not copied later. */
function base(
  site: AuditSite,
  input: AuditEventInput,
  type: Coding,
  subtype: Coding[],
  action: AuditEvent['action'],
): AuditEvent {
  const recorded = input.recorded.toISOString();
  return {
    resourceType: 'AuditEvent',
    id: input.id,
    meta: { versionId: '1', lastUpdated: recorded },
    type,
    subtype,
    action,
    recorded,
    outcome: input.outcome,
    ...(input.outcomeDesc !== undefined ? { outcomeDesc: input.outcomeDesc } : {}),
    agent: requestAgents(site, input.actor),
    source: auditSource(site),
  };
}

export interface RestAuditInput extends AuditEventInput {
  /** A restful-interaction code (create, read, search-type, …) or `operation`. */
  interaction: string;
  /** The resources acted on, `Type/id`. */
  resources: string[];
  /** The patients whose data was written or returned, `Patient/id`. */
  patients: string[];
  /** Searches: the query string as sent (BALP: entity.query, base64). */
  query?: string;
}

/** A FHIR REST interaction (BALP Create/Read/Update/Delete/Query and their Patient variants). */
export function restAuditEvent(site: AuditSite, input: RestAuditInput): AuditEvent {
  const action = REST_ACTIONS[input.interaction] ?? 'E';
  const subtype =
    input.interaction === 'operation'
      ? [{ system: HUB_AUDIT_SUBTYPE, code: 'operation', display: 'FHIR operation' }]
      : [{ system: RESTFUL_INTERACTION, code: input.interaction }];
  const event = base(
    site,
    input,
    { system: AUDIT_EVENT_TYPE, code: 'rest', display: 'Restful Operation' },
    subtype,
    action,
  );
  const entity: AuditEventEntity[] = [];
  const patients = new Set(input.patients);
  for (const reference of new Set(input.resources)) {
    if (!patients.has(reference)) {
      entity.push(resourceEntity(reference));
    }
  }
  if (input.query !== undefined) {
    entity.push({
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
      query: Buffer.from(input.query, 'utf8').toString('base64'),
    });
  }
  for (const reference of patients) {
    entity.push(patientEntity(reference));
  }
  if (entity.length > 0) {
    event.entity = entity;
  }
  return event;
}

export type AuthenticationEvent = 'login' | 'logout' | 'token';

export interface AuthenticationAuditInput extends AuditEventInput {
  event: AuthenticationEvent;
  /** Token issuance: the granted scopes, as issued. */
  scope?: string;
}

/** A login, logout or token issuance (DICOM 110114 User Authentication). */
export function authenticationAuditEvent(site: AuditSite, input: AuthenticationAuditInput): AuditEvent {
  const subtype: Coding[] =
    input.event === 'logout'
      ? [{ system: DICOM, code: '110123', display: 'Logout' }]
      : [{ system: DICOM, code: '110122', display: 'Login' }];
  if (input.event === 'token') {
    subtype.push({ system: HUB_AUDIT_SUBTYPE, code: 'token-issued', display: 'Access token issued' });
  }
  const event = base(site, input, { system: DICOM, code: '110114', display: 'User Authentication' }, subtype, 'E');
  if (input.scope !== undefined) {
    event.entity = [
      {
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        role: { system: OBJECT_ROLE, code: '13', display: 'Security Resource' },
        detail: [{ type: 'scope', valueString: input.scope }],
      },
    ];
  }
  return event;
}

const PATIENT_FIELDS = ['subject', 'patient', 'for', 'beneficiary'] as const;
// Relative, or absolute on this or another base: the local part is what the store indexes.
const PATIENT_REFERENCE = /(?:^|\/)(Patient\/[A-Za-z0-9\-.]{1,64})$/;

/** The patient a resource is about (itself for a Patient, else its subject/patient/for/beneficiary). */
export function patientOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') {
    return resource.id === undefined ? undefined : `Patient/${resource.id}`;
  }
  const fields = resource as unknown as Record<string, Reference | undefined>;
  for (const field of PATIENT_FIELDS) {
    const reference = fields[field]?.reference;
    const match = typeof reference === 'string' ? PATIENT_REFERENCE.exec(reference) : null;
    if (match) {
      return match[1];
    }
  }
  return undefined;
}
