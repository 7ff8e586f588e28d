/**
 * Bull Board's cookie (security finding F7): the web app trades an admin's access token for a
 * board pass, which the board keeps in its cookie. A copy of the cookie must open the board and
 * nothing else: not /fhir, /dicomweb or the admin API, sent as a bearer token. It ends when the
 * token it came from would have, and when the admin signs out.
 */
import type { Clock } from '../src/runtime/clock.ts';
import { signInPeople } from './support/login-flow.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const APP = 'board-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';

describe('the Bull Board pass', () => {
  let testHub: TestHub;
  /** The hub's clock: the test moves it past the pass's end. */
  let now = Date.now();
  const clock: Clock = { now: () => new Date(now) };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' }, clock });
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  const signIn = async (who: string): Promise<string> =>
    (
      await signInPeople(
        testHub,
        { [who]: { role: 'admin', fhirUser: `Practitioner/prac-${who.toLowerCase()}` } },
        { clientId: `${APP}-${who.toLowerCase()}`, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs' },
      )
    )[who] as string;

  /** The pass the hand-over sets, as the browser would keep it. */
  const openBoard = async (token: string): Promise<{ pass: string; maxAge: number }> => {
    const response = await fetch(`${testHub.baseUrl}/admin/queues/board/session`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(204);
    const cookie = response.headers.get('set-cookie') ?? '';
    const [, pass] = /^hub_board=([^;]+);/.exec(cookie) ?? [];
    expect(cookie).toContain('Path=/admin/queues/board; HttpOnly; SameSite=Strict');
    return { pass: pass as string, maxAge: Number(/Max-Age=(\d+)/.exec(cookie)?.[1]) };
  };
  const board = (path: string, pass: string) =>
    fetch(`${testHub.baseUrl}/admin/queues/board${path}`, { headers: { cookie: `hub_board=${pass}` } });
  const asBearer = (path: string, pass: string) =>
    fetch(`${testHub.baseUrl}${path}`, { headers: { authorization: `Bearer ${pass}` } });

  test('the cookie opens the board and nothing else, and ends with the token it came from', async () => {
    const token = await signIn('Ada');
    const { pass, maxAge } = await openBoard(token);
    expect(pass).not.toBe(token);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(600);

    const page = await board('', pass);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root"></div>');
    const queues = await board('/api/queues', pass);
    expect(queues.status).toBe(200);
    expect(JSON.stringify(await queues.json())).toContain('case-materials');

    // The admin's own token works where the pass must not.
    expect(
      (await fetch(`${testHub.baseUrl}/admin/queues`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    for (const path of [
      '/fhir/Patient',
      '/dicomweb/studies',
      '/admin/queues',
      '/admin/queues/dead-letter',
      '/metrics',
    ]) {
      const response = await asBearer(path, pass);
      await response.arrayBuffer();
      expect([path, response.status]).toEqual([path, 401]);
    }
    // Nor as a bearer token at the board itself: the pass is a cookie for the board's page.
    expect((await asBearer('/admin/queues/board/api/queues', pass)).status).toBe(401);
    // Nor can it be traded for another pass.
    expect(
      (
        await fetch(`${testHub.baseUrl}/admin/queues/board/session`, {
          method: 'POST',
          headers: { authorization: `Bearer ${pass}` },
        })
      ).status,
    ).toBe(401);

    // Past the token's end, the pass has ended too: the board says where to open it again.
    now += (maxAge + 5) * 1000;
    const ended = await board('', pass);
    expect(ended.status).toBe(401);
    expect(await ended.text()).toContain('Open Bull Board from the Queues screen');
    expect(ended.headers.get('set-cookie')).toContain('hub_board=; Path=/admin/queues/board');
  }, 120_000);

  test('signing out ends the pass', async () => {
    const token = await signIn('Grace');
    const { pass } = await openBoard(token);
    expect((await board('/api/queues', pass)).status).toBe(200);
    const logout = await fetch(`${testHub.baseUrl}/oauth2/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(logout.status).toBe(200);
    expect((await board('/api/queues', pass)).status).toBe(401);
  }, 120_000);
});
