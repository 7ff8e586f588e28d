/**
 * The EHR's side of the hub's subscriptions (docs/api.md, "Subscriptions"): a small HTTP receiver on
 * 127.0.0.1 (a port the system picks) that takes the hub's rest-hook notifications, and the EHR's
 * topic-based Subscriptions to one case, id-only, with a bearer secret the receiver checks. The hub
 * delivers only to networks its operator allows: it must run with SUBSCRIPTION_ALLOWED_NETWORKS
 * covering 127.0.0.1.
 *
 * Notifications are kept as they arrive and printed when the demo waits for them, so that they appear
 * under the step that caused them, in the order received.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DemoClient, Resource } from './client.ts';
import { show } from './print.ts';

export const TOPIC_PREFIX = 'urn:hub:subscription-topic:';
export const TOPICS = ['case-state-changed', 'information-requested', 'opinion-released'] as const;
export type Topic = (typeof TOPICS)[number];

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
/** The largest notification the receiver reads; the hub's id-only bundles are a few kilobytes. */
const MAX_BODY_BYTES = 1_000_000;

export interface Notification {
  /** The topic's last part (case-state-changed, …). */
  topic: string;
  subscriptionId: string;
  /** handshake, heartbeat, event-notification. */
  type: string;
  eventNumber?: number;
  /** The focus as a path under the FHIR base (`Task/…`), whatever base the hub names. */
  focus?: string;
}

const part = (parts: Resource[] | undefined, name: string): Resource | undefined =>
  (parts ?? []).find((candidate) => candidate.name === name);

/** `https://hub.example.org/fhir/Task/1` → `Task/1`. */
const underFhirBase = (reference: string): string => reference.replace(/^.*\/fhir\//, '');

/** What a notification Bundle says: its status Parameters (the first entry), read leniently. */
function readNotification(bundle: Resource): Notification | undefined {
  const parameters: Resource[] | undefined = bundle?.entry?.[0]?.resource?.parameter;
  const subscription = part(parameters, 'subscription')?.valueReference?.reference;
  const type = part(parameters, 'type')?.valueCode;
  if (typeof subscription !== 'string' || typeof type !== 'string') {
    return undefined;
  }
  const event = part(parameters, 'notification-event')?.part;
  const eventNumber = Number(part(event, 'event-number')?.valueString);
  const focus = part(event, 'focus')?.valueReference?.reference;
  return {
    topic: String(part(parameters, 'topic')?.valueCanonical ?? '').replace(TOPIC_PREFIX, ''),
    subscriptionId: subscription.split('/').at(-1) ?? subscription,
    type,
    ...(Number.isInteger(eventNumber) ? { eventNumber } : {}),
    ...(typeof focus === 'string' ? { focus: underFhirBase(focus) } : {}),
  };
}

/** The EHR's receiver, and its subscriptions to one case's topics. */
export class EhrReceiver {
  readonly received: Notification[] = [];
  private readonly ehr: DemoClient;
  /** The receiver's secret, which the hub sends as the channel's Authorization header. */
  private readonly secret = randomBytes(24).toString('base64url');
  private readonly server: http.Server;
  private readonly subscriptions = new Map<Topic, string>();
  /** Per topic, the events the demo has waited for so far. */
  private readonly expected = new Map<Topic, number>();
  private printed = 0;
  private endpoint = '';

  constructor(ehr: DemoClient) {
    this.ehr = ehr;
    this.server = http.createServer((req, res) => this.take(req, res));
  }

  /** Listens on 127.0.0.1 on a port the system picks; the endpoint URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = this.server.address() as AddressInfo;
    this.endpoint = `http://127.0.0.1:${port}/ehr/fhir-notifications`;
    return this.endpoint;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private take(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'POST' || req.url !== new URL(this.endpoint).pathname) {
      res.writeHead(404).end();
      req.resume();
      return;
    }
    if (req.headers.authorization !== `Bearer ${this.secret}`) {
      res.writeHead(401).end();
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      let notification: Notification | undefined;
      try {
        notification = readNotification(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Resource);
      } catch {
        notification = undefined;
      }
      if (!notification) {
        res.writeHead(400).end();
        return;
      }
      this.received.push(notification);
      res.writeHead(200).end();
    });
  }

  /**
   * The EHR subscribes to every topic for one case (a filter on the ServiceRequest's id), and waits
   * for the handshakes that make the subscriptions active. Returns their ids by topic.
   */
  async follow(serviceRequestId: string): Promise<ReadonlyMap<Topic, string>> {
    for (const topic of TOPICS) {
      this.subscriptions.set(topic, await this.subscribe(topic, serviceRequestId));
      this.expected.set(topic, 0);
    }
    await this.ehr.until(
      () =>
        Promise.resolve(
          this.received.filter((notification) => notification.type === 'handshake').length >= TOPICS.length,
        ),
      "the handshakes at the EHR's receiver",
    );
    this.print();
    return this.subscriptions;
  }

  private async subscribe(topic: Topic, serviceRequestId: string): Promise<string> {
    const response = await this.ehr.request('POST', 'Subscription', {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'The referring EHR follows its case',
      criteria: `${TOPIC_PREFIX}${topic}`,
      _criteria: {
        extension: [
          { url: `${BACKPORT}backport-filter-criteria`, valueString: `ServiceRequest?_id=${serviceRequestId}` },
        ],
      },
      channel: {
        type: 'rest-hook',
        endpoint: this.endpoint,
        payload: 'application/fhir+json',
        _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] },
        header: [`Authorization: Bearer ${this.secret}`],
      },
    });
    if (response.status !== 201 || typeof response.body?.id !== 'string') {
      const issues = (response.body?.issue ?? []).map((issue: Resource) => issue.details?.text ?? issue.diagnostics);
      throw new Error(
        `POST /fhir/Subscription (${topic}): HTTP ${response.status} ${issues.join('; ')}; the hub must allow ` +
          'notifications to this machine: start it with SUBSCRIPTION_ALLOWED_NETWORKS=127.0.0.1/32 npm start',
      );
    }
    const id: string = response.body.id;
    await this.ehr.until(async () => {
      const subscription = await this.ehr.fhir('GET', `Subscription/${id}`);
      if (subscription.status === 'error') {
        throw new Error(`Subscription/${id} (${topic}) failed its handshake: ${subscription.error ?? ''}`);
      }
      return subscription.status === 'active';
    }, `the handshake of the ${topic} subscription`);
    return id;
  }

  /** The events of a topic's subscription, in the order received. */
  events(topic: Topic): Notification[] {
    const id = this.subscriptions.get(topic);
    return this.received.filter(
      (notification) => notification.subscriptionId === id && notification.type === 'event-notification',
    );
  }

  /**
   * Waits (with the demo's timeout) for the next event of `topic`, prints every notification not
   * printed yet, and returns that event. Events are numbered per subscription from 1 without gaps:
   * the one awaited is the next number, whatever order the deliveries arrived in.
   */
  async told(topic: Topic, what: string): Promise<Notification> {
    const number = (this.expected.get(topic) ?? 0) + 1;
    this.expected.set(topic, number);
    const event = await this.ehr.until(
      () => Promise.resolve(this.events(topic).find((notification) => notification.eventNumber === number)),
      `the EHR's receiver to be told ${what} (event ${number} of ${topic})`,
    );
    this.print();
    return event;
  }

  /** The EHR ends its subscriptions (the case is done). */
  async unsubscribe(): Promise<void> {
    for (const [topic, id] of this.subscriptions) {
      await this.ehr.fhir('DELETE', `Subscription/${id}`);
      this.subscriptions.delete(topic);
    }
  }

  /** Prints the notifications received since the last call, in the order received. */
  print(): void {
    for (const notification of this.received.slice(this.printed)) {
      const event = notification.eventNumber === undefined ? '' : ` event ${notification.eventNumber}`;
      const focus = notification.focus === undefined ? '' : `, focus ${notification.focus}`;
      show(
        `the EHR's receiver got: ${notification.type} of ${notification.topic} (Subscription/${notification.subscriptionId})${event}${focus}`,
      );
    }
    this.printed = this.received.length;
  }
}
