/**
 * A person's daily STOW-RS quota (DICOM_PERSON_DAILY_BYTES, routes/dicomweb/stow-quota.ts): a
 * referring physician storing into their case gets up to the quota, a part over it fails alone with
 * 0xA700, and the next request is refused before its body is read (429, Retry-After). An identical
 * instance stored again takes no room, a system client is not limited, the count holds on a second hub
 * process on the same database, and 24 hours later on the hub's clock the physician stores again.
 */
import { jest } from '@jest/globals';
import { ClientRegistry } from '../src/auth/clients.ts';
import { totpCode } from '../src/auth/totp.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import type { Clock } from '../src/runtime/clock.ts';
import { clientToken } from './support/client-token.ts';
import { Browser, logIn } from './support/login-flow.ts';
import { stow as stowFiles } from './support/stow.ts';
import { dicomInstance, newUid } from './support/dicom/patient-cd.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

jest.setTimeout(120_000);

const FAILED = '00081198';
const REFERENCED = '00081199';
const OUT_OF_RESOURCES = 0xa700;
const APP = {
  clientId: 'quota-app',
  redirectUri: 'http://127.0.0.1:5173/callback',
  scope: 'openid fhirUser user/*.cruds',
};
const PHYSICIAN = { email: 'quota-physician@example.org', password: 'a long enough password' };

const FIXTURES = [
  { resourceType: 'Practitioner', id: 'prac-q' },
  { resourceType: 'Patient', id: 'pat-q' },
  {
    resourceType: 'ServiceRequest',
    id: 'sr-q',
    status: 'active',
    intent: 'order',
    code: { text: 'Second opinion' },
    subject: { reference: 'Patient/pat-q' },
    requester: { reference: 'Practitioner/prac-q' },
  },
];

/** Instances of one study, made before the hub starts so that the quota can be set from their sizes. */
const study = newUid();
const series = newUid();
const files = Array.from({ length: 8 }, (_, n) => dicomInstanceOf(study, series, { instanceNumber: n + 1 }));
const size = (n: number): number => files[n]!.length;
/** Room for files 0, 1 and 2 exactly. */
const QUOTA = size(0) + size(1) + size(2);

describe('a person’s daily STOW-RS quota', () => {
  let th: TestHub;
  let second: TestHub | undefined;
  let now = Date.now();
  const clock: Clock = { now: () => new Date(now) };
  let pacs: string;
  let totpSecret: string | undefined;

  /** The physician's token from this hub, through the login flow at the hub's current time. */
  const physicianToken = async (hub: TestHub): Promise<string> => {
    const { token } = await logIn(
      new Browser(),
      hub.baseUrl,
      { clientId: APP.clientId, redirectUri: APP.redirectUri, scope: APP.scope },
      { ...PHYSICIAN, totp: totpSecret ? totpCode(totpSecret, now) : undefined },
    );
    return token.access_token as string;
  };

  async function stow(hub: TestHub, token: string, query: string, parts: Buffer[]) {
    const response = await stowFiles(hub.baseUrl, parts, { authorization: `Bearer ${token}` }, query);
    const text = await response.text();
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: text === '' ? undefined : JSON.parse(text),
    };
  }
  const failureReasons = (body: any): number[] =>
    (body?.[FAILED]?.Value ?? []).map((item: any) => item['00081197'].Value[0] as number);
  const referenced = (body: any): number => body?.[REFERENCED]?.Value?.length ?? 0;

  beforeAll(async () => {
    th = await startTestHub({
      db: 'postgres',
      env: { AUTH_REQUIRED: 'true', DICOM_PERSON_DAILY_BYTES: String(QUOTA) },
      clock,
    });
    pacs = await clientToken(th, 'quota-pacs', 'system/*.cruds');
    const loaded = await fhirFetch(th.fhir, {
      method: 'POST',
      headers: { authorization: `Bearer ${pacs}` },
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: FIXTURES.map((resource) => ({
          resource,
          request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` },
        })),
      },
    });
    expect(loaded.status).toBe(200);
    await new ClientRegistry(th.hub.db).addPublic({
      id: APP.clientId,
      redirectUris: [APP.redirectUri],
      userScopes: parseUserScopes(APP.scope),
    });
    ({ totpSecret } = await new UserStore(th.hub.db).add({
      ...PHYSICIAN,
      role: 'referring-physician',
      fhirUser: 'Practitioner/prac-q',
    }));
  });

  afterAll(async () => {
    await second?.stop();
    await th?.stop();
  });

  test('up to the quota, the part over it refused alone, then the whole request; not a system client; a day later again', async () => {
    const physician = await physicianToken(th);

    const first = await stow(th, physician, '?case=sr-q', [files[0]!, files[1]!]);
    expect([first.status, referenced(first.body)]).toEqual([200, 2]);
    // The same bytes again are stored already: they take no room.
    const again = await stow(th, physician, '?case=sr-q', [files[0]!]);
    expect([again.status, referenced(again.body)]).toEqual([200, 1]);

    // File 2 fits; file 3 would take the physician over the quota: refused alone, out of resources.
    const over = await stow(th, physician, '?case=sr-q', [files[2]!, files[3]!]);
    expect(over.status).toBe(202);
    expect(referenced(over.body)).toBe(1);
    expect(failureReasons(over.body)).toEqual([OUT_OF_RESOURCES]);
    expect(over.body[FAILED].Value[0]['00081155'].Value).toBeDefined();

    // A system client (a PACS) stores on, unlimited by the physician's quota or its own.
    const fromPacs = await stow(th, pacs, '', [files[4]!, files[5]!, files[6]!, files[7]!]);
    expect([fromPacs.status, referenced(fromPacs.body)]).toEqual([200, 4]);

    // The physician, at the quota, is refused before the body is read, and told when to try again.
    const refused = await stow(th, physician, '?case=sr-q', [dicomInstanceOf(study, series)]);
    expect(refused.status).toBe(429);
    expect(refused.body.resourceType).toBe('OperationOutcome');
    expect(refused.body.issue[0].details.text).toMatch(/daily limit/);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(24 * 3600);

    // A second hub process on the same database (or the hub after a restart) counts the same bytes.
    now += 60_000;
    second = await startTestHub({
      db: 'postgres',
      env: { AUTH_REQUIRED: 'true', DICOM_PERSON_DAILY_BYTES: String(QUOTA), DATABASE_URL: th.databaseUrl! },
      clock,
    });
    const onSecond = await stow(second, await physicianToken(second), '?case=sr-q', [dicomInstanceOf(study, series)]);
    expect(onSecond.status).toBe(429);
    expect(onSecond.body.resourceType).toBe('OperationOutcome');

    // A day on, the bytes have left the window: the physician stores again.
    now += 24 * 3600 * 1000;
    const nextDay = await stow(th, await physicianToken(th), '?case=sr-q', [dicomInstanceOf(study, series)]);
    expect([nextDay.status, referenced(nextDay.body)]).toEqual([200, 1]);

    // A request whose every part is refused for the quota alone answers 429 too, not the hub's 503.
    const tooLarge = await stow(th, await physicianToken(th), '?case=sr-q', [Buffer.concat(files.slice(0, 4))]);
    expect(tooLarge.status).toBe(429);
    expect(failureReasons(tooLarge.body)).toEqual([OUT_OF_RESOURCES]);
  });

  test('an instance stored already takes no room, even when it is larger than the room left', async () => {
    // Another day: the window is empty again.
    now += 2 * 24 * 3600 * 1000;
    const physician = await physicianToken(th);
    // A larger instance (a longer description), and one of the usual size: the room left is smaller than the first.
    const larger = dicomInstanceOf(study, series, {
      studyDescription: 'A description long enough to make this instance the largest',
    });
    expect(larger.length).toBeGreaterThan(size(2));
    const stored = await stow(th, physician, '?case=sr-q', [larger, dicomInstanceOf(study, series)]);
    expect([stored.status, referenced(stored.body)]).toEqual([200, 2]);

    // Sent again (a retried upload), it is stored already: no room needed.
    const again = await stow(th, physician, '?case=sr-q', [larger]);
    expect([again.status, referenced(again.body)]).toEqual([200, 1]);
    // A new instance of that size is still refused.
    const fresh = await stow(th, physician, '?case=sr-q', [dicomInstanceOf(study, series), larger]);
    expect(fresh.status).toBe(202);
    expect(failureReasons(fresh.body)).toEqual([OUT_OF_RESOURCES]);
  });
});

/** A new instance of the physician's patient in this study and series (instance number 99 unless given). */
function dicomInstanceOf(
  studyUid: string,
  seriesUid: string,
  { instanceNumber = 99, studyDescription }: { instanceNumber?: number; studyDescription?: string } = {},
): Buffer {
  return dicomInstance({
    ...(studyDescription === undefined ? {} : { studyDescription }),
    studyUid,
    seriesUid,
    sopUid: newUid(),
    modality: 'CT',
    patientId: 'HOSPITAL-MRN-9',
    patientName: 'Quota^Patient',
    birthDate: '19700101',
    seriesNumber: 1,
    instanceNumber,
  });
}
