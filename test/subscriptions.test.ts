/**
 * EHR notifications (issue 14, step 7): an EHR subscribes over the FHIR API to a topic of the hub
 * (R4 Subscriptions Backport IG), and a real HTTP receiver on this machine gets the handshake, the
 * numbered id-only notifications of a real referral's case, and heartbeats; a receiver that fails
 * gets bounded retries, then its subscription says `error`, nothing else waits for it, and a
 * heartbeat that gets through sends what was kept. What the hub would not honour is refused on create,
 * and a subscription is its owner's alone.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClientRegistry } from '../src/auth/clients.ts';
import { registerPatient, workflowSettled } from './support/case-fixtures.ts';
import { auditEventsSince, clientToken } from './support/client-token.ts';
import { userToken } from './support/user-token.ts';
import { fhirFetch, startTestHub, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const TOPIC = 'urn:hub:subscription-topic:';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
const REFERENCE = 'urn:hub:reference-number';
const NPI = 'http://hl7.org/fhir/sid/us-npi';
const PATIENT_FAMILY = 'Vandersloot';

interface Received {
  body: any;
  raw: string;
  headers: http.IncomingHttpHeaders;
}

/** An HTTP receiver on loopback that records what it is sent and answers `status`. */
class Receiver {
  readonly received: Received[] = [];
  status = 200;
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      this.received.push({ body: JSON.parse(raw), raw, headers: req.headers });
      res.writeHead(this.status).end();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  of(type: string): Received[] {
    return this.received.filter((item) => statusOf(item.body).type === type);
  }
}

/** The Parameters of a notification (its first entry), as name → value. */
function statusOf(bundle: any): Record<string, any> {
  const parameters = bundle?.entry?.[0]?.resource?.parameter ?? [];
  const out: Record<string, any> = { events: [] };
  for (const parameter of parameters) {
    if (parameter.name === 'notification-event') {
      const part = Object.fromEntries(
        parameter.part.map((p: any) => [
          p.name,
          p.valueString ?? p.valueInstant ?? p.valueReference?.reference ?? p.valueCode,
        ]),
      );
      part.context = parameter.part
        .filter((p: any) => p.name === 'additional-context')
        .map((p: any) => p.valueReference.reference);
      out.events.push(part);
    } else {
      out[parameter.name] =
        parameter.valueCode ??
        parameter.valueString ??
        parameter.valueCanonical ??
        parameter.valueReference?.reference ??
        parameter.valueCodeableConcept?.text;
    }
  }
  return out;
}

function subscription(endpoint: string, topic: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Follow our referrals',
    criteria: `${TOPIC}${topic}`,
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] },
      header: ['Authorization: Bearer receiver-secret'],
    },
    ...extra,
  };
}

function withFilter(body: Record<string, unknown>, filter: string): Record<string, unknown> {
  return { ...body, _criteria: { extension: [{ url: `${BACKPORT}backport-filter-criteria`, valueString: filter }] } };
}

function withHeartbeat(body: Record<string, unknown>, seconds: number): Record<string, unknown> {
  const channel = body.channel as Record<string, unknown>;
  return {
    ...body,
    channel: { ...channel, extension: [{ url: `${BACKPORT}backport-heartbeat-period`, valueUnsignedInt: seconds }] },
  };
}

describe('subscriptions (R4 Subscriptions Backport)', () => {
  let hub: TestHub;
  let ehr: string;
  let blind: string;
  let receiver: Receiver;
  let endpoint: string;

  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const api = (path: string, token: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.fhir}/${path}`, { ...init, headers: as(token) });

  beforeAll(async () => {
    hub = await startTestHub({
      db: 'postgres',
      env: { ...WITH_WORKERS, AUTH_REQUIRED: 'true', SUBSCRIPTION_ALLOWED_NETWORKS: '127.0.0.1/32' },
    });
    ehr = await clientToken(hub, 'ehr-subscriber', 'system/*.cruds');
    // Sees cases but not their Tasks or reports: it may not be told of them.
    blind = await clientToken(hub, 'ehr-blind', 'system/Subscription.cruds system/ServiceRequest.rs');
    receiver = new Receiver();
    endpoint = await receiver.start();
  }, 60_000);

  afterAll(async () => {
    await receiver?.stop();
    await hub?.stop();
  });

  async function create(body: Record<string, unknown>, token = ehr): Promise<any> {
    const response = await api('Subscription', token, { method: 'POST', body });
    expect([response.status, response.status === 201 ? '' : JSON.stringify(response.body)]).toEqual([201, '']);
    return response.body;
  }

  async function statusOfSubscription(id: string, token = ehr): Promise<Record<string, any>> {
    const response = await api(`Subscription/${id}/$status`, token);
    expect(response.status).toBe(200);
    return statusOf({ entry: [response.body.entry[0]] });
  }

  /** A referral as an EHR sends it, through the intake job to `submitted`: returns the request's id. */
  async function refer(): Promise<{ serviceRequestId: string; patientId: string }> {
    const patient = await registerPatientWithToken();
    const response = await api('', ehr, {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:5a0c1d7e-0000-4000-8000-000000000001',
            resource: {
              resourceType: 'Practitioner',
              identifier: [{ system: NPI, value: '1234567893' }],
              name: [{ family: 'Okafor', given: ['Chidi'] }],
            },
            request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|1234567893` },
          },
          {
            fullUrl: 'urn:uuid:5a0c1d7e-0000-4000-8000-000000000002',
            resource: {
              resourceType: 'QuestionnaireResponse',
              status: 'completed',
              subject: { reference: `Patient/${patient.id}` },
              item: [{ linkId: 'question', answer: [{ valueString: 'Is the lesion benign?' }] }],
            },
            request: { method: 'POST', url: 'QuestionnaireResponse' },
          },
          {
            fullUrl: 'urn:uuid:5a0c1d7e-0000-4000-8000-000000000003',
            resource: {
              resourceType: 'ServiceRequest',
              status: 'active',
              intent: 'order',
              code: { coding: [{ system: 'urn:hub:service', code: 'second-opinion' }] },
              identifier: [{ system: REFERENCE, value: patient.referenceNumber }],
              requisition: { system: REFERENCE, value: patient.referenceNumber },
              subject: { reference: `Patient/${patient.id}` },
              requester: { reference: 'urn:uuid:5a0c1d7e-0000-4000-8000-000000000001' },
              supportingInfo: [{ reference: 'urn:uuid:5a0c1d7e-0000-4000-8000-000000000002' }],
            },
            request: { method: 'POST', url: 'ServiceRequest' },
          },
        ],
      },
    });
    expect([response.status, response.status === 200 ? '' : JSON.stringify(response.body)]).toEqual([200, '']);
    return {
      serviceRequestId: response.body.entry[2].response.location.split('/')[1],
      patientId: patient.id,
    };
  }

  const registerPatientWithToken = () =>
    registerPatient(
      hub.fhir,
      {
        name: [{ family: PATIENT_FAMILY, given: ['Imke'] }],
        birthDate: '1970-02-03',
        telecom: [{ system: 'email', value: 'imke@example.org' }],
        address: [{ use: 'home', city: 'Boston', state: 'MA', country: 'US' }],
      },
      as(ehr),
    );

  it('advertises its topics and the $status and $events operations', async () => {
    const response = await fhirFetch(`${hub.fhir}/metadata`);
    const resource = response.body.rest[0].resource.find((r: any) => r.type === 'Subscription');
    expect(resource.extension.map((e: any) => e.valueCanonical).sort()).toEqual([
      `${TOPIC}case-state-changed`,
      `${TOPIC}information-requested`,
      `${TOPIC}opinion-released`,
    ]);
    expect(resource.extension[0].url).toBe(`${BACKPORT}capabilitystatement-subscriptiontopic-canonical`);
    expect(resource.operation.map((o: any) => o.name).sort()).toEqual(['events', 'status']);
  });

  it('refuses, with the reason, what it would not honour', async () => {
    const cases: [string, Record<string, unknown>, number, RegExp][] = [
      ['unknown topic', subscription(endpoint, 'patient-admitted'), 422, /topic this hub offers/],
      [
        'full-resource payload',
        {
          ...subscription(endpoint, 'case-state-changed'),
          channel: {
            type: 'rest-hook',
            endpoint,
            payload: 'application/fhir+json',
            _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'full-resource' }] },
          },
        },
        422,
        /full-resource/,
      ],
      [
        'websocket channel',
        { ...subscription(endpoint, 'case-state-changed'), channel: { type: 'websocket' } },
        422,
        /rest-hook/,
      ],
      ['private address', subscription('http://10.1.2.3/hook', 'case-state-changed'), 422, /not an address/],
      ['cloud metadata', subscription('http://169.254.169.254/latest', 'case-state-changed'), 422, /not an address/],
      ['IPv6 loopback', subscription('http://[::1]:9/hook', 'case-state-changed'), 422, /not an address/],
      ['IPv4-mapped', subscription('http://[::ffff:10.0.0.1]/hook', 'case-state-changed'), 422, /not an address/],
      ['IPv4-compatible', subscription('http://[::7f00:1]/hook', 'case-state-changed'), 422, /not an address/],
      ['6to4', subscription('https://[2002:7f00:1::1]/hook', 'case-state-changed'), 422, /not an address/],
      ['NAT64', subscription('https://[64:ff9b::a00:1]/hook', 'case-state-changed'), 422, /not an address/],
      ['public over http', subscription('http://93.184.216.34/hook', 'case-state-changed'), 422, /https/],
      ['credentials in URL', subscription('https://u:p@93.184.216.34/hook', 'case-state-changed'), 422, /credentials/],
      [
        'a filter on another type',
        withFilter(subscription(endpoint, 'case-state-changed'), 'Patient?name=x'),
        422,
        /ServiceRequest\?/,
      ],
      [
        'a header that the hub sets',
        {
          ...subscription(endpoint, 'case-state-changed'),
          channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json', header: ['Host: elsewhere'] },
        },
        422,
        /Host/,
      ],
      ['heartbeat too often', withHeartbeat(subscription(endpoint, 'case-state-changed'), 1), 422, /heartbeat/],
      ['not a Subscription', { resourceType: 'Basic' }, 400, /Subscription/],
      [
        'too large',
        {
          ...subscription(endpoint, 'case-state-changed'),
          contact: Array.from({ length: 400 }, (_, i) => ({ system: 'email', value: `someone-${i}@example.org` })),
        },
        422,
        /at most 16 KB/,
      ],
    ];
    for (const [what, body, status, message] of cases) {
      const response = await api('Subscription', ehr, { method: 'POST', body });
      expect([what, response.status]).toEqual([what, status]);
      expect([what, JSON.stringify(response.body.issue)]).toEqual([what, expect.stringMatching(message)]);
    }
    // Nothing refused was kept: the EHR has no subscription yet.
    const list = await api('Subscription', ehr);
    expect(list.body.entry).toEqual([]);
  });

  it('is its owner’s alone; persons other than staff cannot subscribe; no batch writes one', async () => {
    const mine = await create(subscription(endpoint, 'opinion-released'));
    for (const [method, path] of [
      ['GET', `Subscription/${mine.id}`],
      ['GET', `Subscription/${mine.id}/$status`],
      ['GET', `Subscription/${mine.id}/$events`],
      ['PUT', `Subscription/${mine.id}`],
      ['DELETE', `Subscription/${mine.id}`],
    ] as const) {
      const response = await api(path, blind, {
        method,
        ...(method === 'PUT' ? { body: { ...subscription(endpoint, 'opinion-released'), id: mine.id } } : {}),
      });
      expect([method, path, response.status]).toEqual([method, path, 404]);
    }
    expect((await api('Subscription', blind)).body.entry).toEqual([]);
    const physician = await userToken(hub, 'referring-physician');
    const refused = await api('Subscription', physician, {
      method: 'POST',
      body: subscription(endpoint, 'case-state-changed'),
    });
    expect(refused.status).toBe(403);
    const batch = await api('', ehr, {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: subscription(endpoint, 'case-state-changed'), request: { method: 'POST', url: 'Subscription' } },
        ],
      },
    });
    expect(batch.body.entry[0].response.status).toMatch(/^4/);
    expect(JSON.stringify(batch.body.entry[0].response.outcome)).toMatch(/request of their own to \/Subscription/);
    expect((await api(`Subscription/${mine.id}`, ehr, { method: 'DELETE' })).status).toBe(204);
    expect((await api(`Subscription/${mine.id}`, ehr)).status).toBe(404);
  });

  it('shakes hands, then sends numbered id-only events of a case that $events can replay', async () => {
    const created = await create(subscription(endpoint, 'case-state-changed'));
    expect(created.status).toBe('requested');
    const handshake = await until(
      () =>
        Promise.resolve(receiver.of('handshake').find((item) => statusOf(item.body).subscription.endsWith(created.id))),
      'the handshake',
    );
    expect(handshake.headers.authorization).toBe('Bearer receiver-secret');
    expect(statusOf(handshake.body)).toMatchObject({
      type: 'handshake',
      topic: `${TOPIC}case-state-changed`,
      subscription: `${hub.fhir}/Subscription/${created.id}`,
    });
    await until(async () => (await api(`Subscription/${created.id}`, ehr)).body.status === 'active', 'active');

    // Two more subscriptions that must hear nothing of this case: a filter it fails, an owner without Task access.
    const filtered = await create(
      withFilter(subscription(endpoint, 'case-state-changed'), 'ServiceRequest?patient=Patient/someone-else'),
    );
    const unseen = await create(subscription(endpoint, 'case-state-changed'), blind);

    const { serviceRequestId } = await refer();
    const events = await until(async () => {
      const found = receiver
        .of('event-notification')
        .filter((item) => statusOf(item.body).subscription.endsWith(created.id));
      return found.length > 0 ? found : undefined;
    }, 'the first case-state event');
    const first = defined(events[0]);
    expect(first.body).toMatchObject({ resourceType: 'Bundle', type: 'history' });
    expect(first.body.entry[0].resource.meta.profile).toEqual([`${BACKPORT}backport-subscription-status-r4`]);
    const status = statusOf(first.body);
    expect(status.events).toHaveLength(1);
    const [event] = status.events;
    expect(event['event-number']).toBe('1');
    expect(event.focus).toMatch(new RegExp(`^${hub.fhir}/Task/[A-Za-z0-9-]+$`));
    expect(event.context).toEqual([`${hub.fhir}/ServiceRequest/${serviceRequestId}`]);
    expect(first.body.entry[1]).toEqual({
      fullUrl: event.focus,
      request: { method: 'PUT', url: event.focus.slice(hub.fhir.length + 1) },
      response: { status: '200' },
    });
    // Ids only: nothing of the patient travels.
    expect(first.raw).not.toContain(PATIENT_FAMILY);
    expect(first.raw).not.toContain('1970-02-03');
    // The receiver reads what changed with its own token: the case is submitted.
    const task = await api(event.focus.slice(hub.fhir.length + 1), ehr);
    expect(task.body.businessStatus.coding[0].code).toBe('submitted');

    // $events replays from any number; $status counts.
    const count = Number((await statusOfSubscription(created.id))['events-since-subscription-start']);
    expect(count).toBeGreaterThanOrEqual(1);
    const replay = await api(`Subscription/${created.id}/$events?eventsSinceNumber=1&eventsUntilNumber=${count}`, ehr);
    expect(replay.status).toBe(200);
    const replayed = statusOf(replay.body);
    expect(replayed.type).toBe('query-event');
    expect(replayed.events.map((e: any) => e['event-number'])).toEqual(
      Array.from({ length: count }, (_, i) => String(i + 1)),
    );
    expect(replayed.events[0].focus).toBe(event.focus);

    // Every event the hub recorded for the others would have been numbered; none was.
    expect((await statusOfSubscription(filtered.id))['events-since-subscription-start']).toBe('0');
    expect((await statusOfSubscription(unseen.id, blind))['events-since-subscription-start']).toBe('0');
  });

  it('keeps the receiver’s secrets: masked when read, kept when written back, and audits every write', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const created = await create(subscription(endpoint, 'opinion-released'));
    expect(created.channel.header).toEqual(['Authorization: ****']);
    await until(async () => (await api(`Subscription/${created.id}`, ehr)).body.status === 'active', 'active');
    const read = (await api(`Subscription/${created.id}`, ehr)).body;
    expect(JSON.stringify(read)).not.toContain('receiver-secret');
    const handshakes = () =>
      receiver.of('handshake').filter((item) => statusOf(item.body).subscription.endsWith(created.id));
    const { meta: _meta, ...content } = read;
    const written = await api(`Subscription/${created.id}`, ehr, {
      method: 'PUT',
      body: { ...content, status: 'requested', reason: 'Follow our referrals, again' },
    });
    expect(written.status).toBe(200);
    await until(() => Promise.resolve(handshakes().length === 2), 'a second handshake');
    expect(handshakes().map((item) => item.headers.authorization)).toEqual([
      'Bearer receiver-secret',
      'Bearer receiver-secret',
    ]);
    expect((await api(`Subscription/${created.id}`, ehr, { method: 'DELETE' })).status).toBe(204);
    const auditor = await clientToken(hub, `auditor-${Date.now()}`, 'system/AuditEvent.rs');
    const audits = await until(async () => {
      const found = (await auditEventsSince(hub, auditor, since)).filter((event) =>
        (event.entity ?? []).some((entity: any) => entity.what?.reference?.endsWith(`Subscription/${created.id}`)),
      );
      const actions = new Set(found.map((event) => event.action));
      return ['C', 'U', 'D'].every((action) => actions.has(action)) ? found : undefined;
    }, 'the subscription’s create, update and delete audited');
    expect(audits.filter((event) => event.action === 'C')).toHaveLength(1);
  });

  it('tells a person only what their app may read, and nothing of a refused move; a disabled owner’s is turned off', async () => {
    const { serviceRequestId } = await refer();
    await workflowSettled(hub);
    const coordinator = await userToken(hub, 'coordinator');
    const narrow = await userToken(hub, 'coordinator', 'user/Subscription.cruds');
    const byCase = withFilter(subscription(endpoint, 'case-state-changed'), `ServiceRequest?_id=${serviceRequestId}`);
    const staff = await create(byCase, coordinator);
    const limited = await create(byCase, narrow);
    const watcherId = `watcher-${Date.now()}`;
    const watcher = await clientToken(hub, watcherId, 'system/Subscription.cruds system/Task.rs');
    const disabled = await create(withHeartbeat(byCase, 5), watcher);
    for (const id of [staff.id, limited.id, disabled.id]) {
      await until(async () => {
        const body = (
          await api(`Subscription/${id}`, id === staff.id ? coordinator : id === limited.id ? narrow : watcher)
        ).body;
        return body.status === 'active';
      }, 'active');
    }
    // The operator disables the watcher's client: its subscription is turned off at its next heartbeat.
    expect(await new ClientRegistry(hub.hub.db).setStatus(watcherId, 'disabled')).toBe(true);
    await until(
      async () =>
        (await hub.hub.db.query<{ status: string }>('SELECT status FROM subscription WHERE id = $1', [disabled.id]))
          .rows[0]?.status === 'off',
      'the disabled client’s subscription off',
      20_000,
    );

    // A move the state machine refuses, written back by the hub: no event.
    const task = (
      await api(
        `Task?identifier=${encodeURIComponent(`urn:hub:case-resource|${serviceRequestId}/coordination`)}`,
        coordinator,
      )
    ).body.entry[0].resource;
    const moved = await api(`Task/${task.id}`, coordinator, {
      method: 'PUT',
      body: {
        ...task,
        meta: undefined,
        businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-released' }] },
      },
    });
    expect(moved.status).toBe(200);
    await workflowSettled(hub);
    const restored = (await api(`Task/${task.id}`, coordinator)).body;
    expect(restored.businessStatus.coding[0].code).toBe('submitted');
    expect((await statusOfSubscription(staff.id, coordinator))['events-since-subscription-start']).toBe('0');
    // Then a move it accepts: events from the first on.
    const accepted = await api(`Task/${task.id}`, coordinator, {
      method: 'PUT',
      body: {
        ...restored,
        meta: undefined,
        businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'awaiting-materials' }] },
      },
    });
    expect(accepted.status).toBe(200);
    await workflowSettled(hub);
    const events = (id: string) =>
      receiver
        .of('event-notification')
        .filter((item) => statusOf(item.body).subscription.endsWith(id))
        .map((item) => statusOf(item.body).events[0]['event-number']);
    await until(() => Promise.resolve(events(staff.id).includes('1')), 'the accepted move’s event');
    // The app granted Subscription access alone hears nothing of Tasks.
    expect((await statusOfSubscription(limited.id, narrow))['events-since-subscription-start']).toBe('0');
    expect(events(limited.id)).toEqual([]);
  }, 120_000);

  const activeSoon = (id: string, timeoutMs?: number) =>
    until(
      async () => (await api(`Subscription/${id}`, ehr)).body.status === 'active',
      'the subscription active',
      timeoutMs,
    );

  it('retries a failing endpoint five times, then says error without delaying others; a new handshake sends what was kept', async () => {
    const failing = new Receiver();
    const failingEndpoint = await failing.start();
    try {
      const troubled = await create(subscription(failingEndpoint, 'case-state-changed'));
      await activeSoon(troubled.id);
      const healthy = await create(subscription(endpoint, 'case-state-changed'));
      await activeSoon(healthy.id);
      failing.status = 500;

      await refer();
      // The healthy receiver is told at once, while the failing one is still being retried.
      await until(
        () =>
          Promise.resolve(
            receiver.of('event-notification').some((item) => statusOf(item.body).subscription.endsWith(healthy.id)),
          ),
        'the healthy subscriber’s event',
        10_000,
      );
      expect((await api(`Subscription/${troubled.id}`, ehr)).body.status).toBe('active');
      // Five tries of its first event (1, 2, 4 and 8 s apart), then error, saying why.
      const errored = await until(
        async () => {
          const body = (await api(`Subscription/${troubled.id}`, ehr)).body;
          return body.status === 'error' ? body : undefined;
        },
        'the subscription in error',
        45_000,
      );
      expect(errored.error).toMatch(/HTTP 500/);
      const tries = failing
        .of('event-notification')
        .filter((item) => statusOf(item.body).events[0]?.['event-number'] === '1');
      expect(tries).toHaveLength(5);
      const status = await statusOfSubscription(troubled.id);
      expect(status.status).toBe('error');
      expect(status.error).toMatch(/HTTP 500/);
      // The job that ran out of tries is in the operators' dead-letter view.
      const admin = await clientToken(hub, 'ops-console', 'hub:admin');
      const dead = await fetch(`${hub.hub.url}/admin/queues/dead-letter`, { headers: as(admin) });
      expect(JSON.stringify(await dead.json())).toContain('subscription-delivery');

      // The endpoint is back and the EHR asks again (PUT): a new handshake, then every kept event.
      const recovery = failing.received.length;
      failing.status = 200;
      const { meta: _meta, error: _error, ...content } = errored;
      const again = await api(`Subscription/${troubled.id}`, ehr, {
        method: 'PUT',
        body: { ...content, status: 'requested' },
      });
      expect([again.status, again.body.status]).toEqual([200, 'requested']);
      await activeSoon(troubled.id);
      const count = Number((await statusOfSubscription(troubled.id))['events-since-subscription-start']);
      expect(count).toBeGreaterThanOrEqual(1);
      await until(
        () => Promise.resolve(numbersSent(failing, recovery).size === count),
        'every kept event sent after the recovery',
      );
      expect([...numbersSent(failing, recovery)].sort()).toEqual(
        Array.from({ length: count }, (_, i) => String(i + 1)).sort(),
      );
    } finally {
      await failing.stop();
    }
  }, 120_000);

  it('sends heartbeats while idle; a missed one says error, and the next that gets through makes it active', async () => {
    const beating = new Receiver();
    const beatingEndpoint = await beating.start();
    try {
      const pulse = await create(withHeartbeat(subscription(beatingEndpoint, 'opinion-released'), 5));
      await activeSoon(pulse.id);
      await until(() => Promise.resolve(beating.of('heartbeat').length > 0), 'a heartbeat', 15_000);
      const beat = statusOf(defined(beating.of('heartbeat')[0]).body);
      expect(beat).toMatchObject({ type: 'heartbeat', status: 'active', 'events-since-subscription-start': '0' });
      beating.status = 503;
      await until(
        async () => (await api(`Subscription/${pulse.id}`, ehr)).body.status === 'error',
        'error after a missed heartbeat',
        15_000,
      );
      beating.status = 200;
      await activeSoon(pulse.id, 15_000);
    } finally {
      await beating.stop();
    }
  }, 60_000);
});

/** The event numbers a receiver was sent since the `from`-th request. */
function numbersSent(receiver: Receiver, from: number): Set<string> {
  return new Set(
    receiver.received
      .slice(from)
      .filter((item) => statusOf(item.body).type === 'event-notification')
      .map((item) => String(statusOf(item.body).events[0]?.['event-number'])),
  );
}

function defined<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Error('expected a value');
  }
  return value;
}
