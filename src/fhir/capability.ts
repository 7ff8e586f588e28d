/**
 * /fhir/metadata: the CapabilityStatement, generated from what the code actually serves — the
 * router's route table, the resource types and search parameters the store indexes, and the
 * modifiers the search planner implements.
 */
import type { FhirRouter } from '@medplum/fhir-router';
import type {
  CapabilityStatement,
  CapabilityStatementRest,
  CapabilityStatementRestResource,
  CapabilityStatementRestResourceSearchParam,
} from '@medplum/fhirtypes';
import { getAllResourceTypes, getSupportedSearchParameters } from './definitions.ts';
import { indexTableFor } from './indexer.ts';
import { registeredOperations } from './operations/index.ts';
import { AUDIT_SEARCH_PARAMETERS } from './search/audit-search.ts';

/** Modifiers and prefixes per parameter type, as implemented in search/conditions.ts. */
export const SUPPORTED_MODIFIERS: Record<string, string> = {
  token: ':missing, :not, :text, :of-type (identifier)',
  string: ':missing, :exact, :contains, :not',
  reference: ':missing, :not, :identifier, :[type], chained one level (a.b, a:Type.b), _has one level',
  date: ':missing; prefixes eq ne gt lt ge le sa eb ap',
  number: ':missing; prefixes eq ne gt lt ge le sa eb ap',
  quantity: ':missing; prefixes eq ne gt lt ge le sa eb ap; value|system|code',
  uri: ':missing, :below, :above, :not',
};

const TYPE_INTERACTIONS: Record<string, string> = {
  read: 'read',
  vread: 'vread',
  update: 'update',
  patch: 'patch',
  delete: 'delete',
  'history-instance': 'history-instance',
  'history-type': 'history-type',
  create: 'create',
  'search-type': 'search-type',
};

export interface CapabilityOptions {
  baseUrl: string;
  version: string;
  /** When the statement was built (the hub's start). */
  date: Date;
  /** Operations served beside the router's routes, e.g. none yet. */
  operations?: { name: string; definition: string }[];
  /** The subscription topics (workflow/subscriptions/topics.ts), when /Subscription is served by the hub's own routes. */
  subscriptionTopics?: readonly { canonical: string; title: string; description: string }[];
  /** SMART on FHIR (src/auth): the authorization server's endpoints and whether tokens are required (AUTH_REQUIRED). */
  security?: { tokenEndpoint: string; authorizeEndpoint?: string; revokeEndpoint?: string; authRequired: boolean };
}

/** rest.security: SMART on FHIR with the oauth-uris extension (SMART App Launch, "FHIR Authorization Endpoint and Capabilities Discovery"). */
function restSecurity(security: CapabilityOptions['security']): CapabilityStatementRest['security'] {
  if (!security) {
    return { cors: true, description: 'No authentication is enforced by this version of the hub.' };
  }
  const people = security.authorizeEndpoint !== undefined;
  const how = people
    ? 'SMART App Launch (people: authorization code with PKCE S256 at the authorize endpoint, user/ scopes) and SMART Backend Services (systems: client_credentials with a private_key_jwt assertion, system/ scopes)'
    : 'SMART Backend Services: client_credentials with a private_key_jwt assertion';
  return {
    cors: true,
    service: [
      {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }],
        text: how,
      },
    ],
    extension: [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [
          ...(security.authorizeEndpoint !== undefined
            ? [{ url: 'authorize', valueUri: security.authorizeEndpoint }]
            : []),
          { url: 'token', valueUri: security.tokenEndpoint },
          ...(security.revokeEndpoint !== undefined ? [{ url: 'revoke', valueUri: security.revokeEndpoint }] : []),
        ],
      },
    ],
    description: security.authRequired
      ? `Every request except this CapabilityStatement needs a Bearer access token from the token endpoint (${how}); its scopes limit what it may do.`
      : `Bearer access tokens from the token endpoint (${how}) are verified and their scopes enforced, but this deployment does not require a token yet: anonymous requests are served.`,
  };
}

function searchParams(resourceType: string): CapabilityStatementRestResourceSearchParam[] {
  const params: CapabilityStatementRestResourceSearchParam[] = [];
  for (const [code, param] of getSupportedSearchParameters(resourceType)) {
    if (!indexTableFor(param) && code !== '_id' && code !== '_lastUpdated') {
      continue;
    }
    if (resourceType === 'AuditEvent' && !AUDIT_SEARCH_PARAMETERS.has(code)) {
      continue;
    }
    params.push({
      name: code,
      definition: param.url,
      type: param.type,
      documentation: `Modifiers: ${SUPPORTED_MODIFIERS[param.type as string] ?? 'none'}`,
    });
  }
  return params;
}

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/';

/** Subscription as routes/subscriptions.ts serves it: topic-based (R4 Subscriptions Backport IG). */
function subscriptionResource(
  topics: NonNullable<CapabilityOptions['subscriptionTopics']>,
): CapabilityStatementRestResource {
  return {
    type: 'Subscription',
    profile: `${BACKPORT}StructureDefinition/backport-subscription`,
    extension: topics.map((topic) => ({
      url: `${BACKPORT}StructureDefinition/capabilitystatement-subscriptiontopic-canonical`,
      valueCanonical: topic.canonical,
    })),
    documentation:
      'Topic-based subscriptions (Subscriptions R5 Backport IG): rest-hook channels, id-only or empty payloads, ' +
      'handshake and heartbeats, events numbered per subscription. Topics: ' +
      topics.map((topic) => `${topic.canonical} (${topic.description})`).join(' ') +
      ' Filters: the case, as ServiceRequest?_id|patient|requester=…',
    interaction: ['create', 'read', 'update', 'delete', 'search-type'].map((code) => ({ code: code as 'read' })),
    versioning: 'versioned',
    readHistory: false,
    updateCreate: false,
    searchParam: [{ name: 'status', type: 'token' }],
    operation: [
      { name: 'status', definition: `${BACKPORT}OperationDefinition/backport-subscription-status` },
      { name: 'events', definition: `${BACKPORT}OperationDefinition/backport-subscription-events` },
    ],
  };
}

/** Builds the statement; call once at start-up and serve the result. */
export function buildCapabilityStatement(router: FhirRouter, options: CapabilityOptions): CapabilityStatement {
  const routed = new Set<string>();
  const systemInteractions = new Set<string>();
  for (const route of router.router.routes) {
    const interaction = route.data?.interaction;
    if (!interaction) {
      continue;
    }
    if (route.path[0]?.param && TYPE_INTERACTIONS[interaction]) {
      routed.add(TYPE_INTERACTIONS[interaction]);
    } else if (route.path.length <= 1 && !route.path[0]?.param) {
      if (interaction === 'batch') {
        systemInteractions.add('batch').add('transaction');
      } else if (interaction === 'search-system' || interaction === 'history-system') {
        systemInteractions.add(interaction);
      }
    }
  }
  const types = getAllResourceTypes().sort();
  const referencedBy = new Map<string, string[]>();
  for (const type of types) {
    for (const [code, param] of getSupportedSearchParameters(type)) {
      if (param.type === 'reference') {
        for (const target of param.target ?? []) {
          referencedBy.set(target, [...(referencedBy.get(target) ?? []), `${type}:${code}`]);
        }
      }
    }
  }
  // The operations the router routes (operations/index.ts), each where it is invoked.
  const routedOperations = registeredOperations(router).map((definition) => ({
    definition,
    entry: { name: definition.code, definition: definition.url as string },
  }));
  const typeOperations = (type: string) =>
    routedOperations
      .filter(({ definition }) => definition.type && definition.resource?.includes(type as never))
      .map(({ entry }) => entry);
  const resources: CapabilityStatementRestResource[] = types.map((type) => ({
    type: type as CapabilityStatementRestResource['type'],
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    interaction: [...routed]
      // AuditEvents are written by the hub alone (routes/fhir.ts answers 405 to any client write).
      .filter((code) => type !== 'AuditEvent' || code === 'read' || code === 'search-type')
      .map((code) => ({ code: code as 'read' })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: 'full-support',
    conditionalUpdate: true,
    conditionalDelete: 'single',
    referencePolicy: ['literal', 'logical', 'local'],
    searchInclude: [...getSupportedSearchParameters(type)]
      .filter(([, param]) => param.type === 'reference')
      .map(([code]) => `${type}:${code}`),
    searchRevInclude: referencedBy.get(type) ?? [],
    searchParam: searchParams(type),
    ...(typeOperations(type).length > 0 ? { operation: typeOperations(type) } : {}),
  }));
  const topics = options.subscriptionTopics;
  const served = topics
    ? resources.map((resource) => (resource.type === 'Subscription' ? subscriptionResource(topics) : resource))
    : resources;
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: options.date.toISOString(),
    kind: 'instance',
    software: { name: 'second-opinion-hub', version: options.version },
    implementation: { description: 'Second-opinion FHIR/DICOM hub', url: `${options.baseUrl}/fhir` },
    fhirVersion: '4.0.1',
    ...(topics ? { instantiates: [`${BACKPORT}CapabilityStatement/backport-subscription-server-r4`] } : {}),
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Searches page with a keyset cursor (_cursor) that stays correct while data changes; _offset is also accepted. ' +
          'Unknown search parameters are ignored (and left out of the self link) unless the request says Prefer: handling=strict.',
        security: restSecurity(options.security),
        resource: served,
        interaction: [...systemInteractions].map((code) => ({ code: code as 'transaction' })),
        searchParam: [
          { name: '_id', type: 'token' },
          { name: '_lastUpdated', type: 'date' },
          { name: '_count', type: 'number' },
          { name: '_sort', type: 'string' },
          { name: '_include', type: 'string' },
          { name: '_revinclude', type: 'string' },
          { name: '_summary', type: 'string' },
          { name: '_total', type: 'string' },
          { name: '_elements', type: 'string' },
        ],
        operation: [
          ...routedOperations.filter(({ definition }) => definition.system).map(({ entry }) => entry),
          ...(options.operations?.map((op) => ({ name: op.name, definition: op.definition })) ?? []),
        ],
      },
    ],
  };
}
