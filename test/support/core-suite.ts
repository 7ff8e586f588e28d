/**
 * The core of the FHIR API, as an EHR uses it: run against PostgreSQL (fhir-core.test.ts) and,
 * as a smoke run, against the embedded PGlite (fhir-core.pglite.test.ts).
 */
import { fhirFetch, startTestHub } from './test-hub.ts';
import type { TestHub } from './test-hub.ts';

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Ann'] }],
  gender: 'female',
  birthDate: '1970-02-03',
  ...extra,
});

export function describeFhirCore(db: 'postgres' | 'pglite'): void {
  describe(`FHIR core interactions (${db})`, () => {
    let t: TestHub;
    beforeAll(async () => {
      t = await startTestHub({ db });
    });
    afterAll(async () => {
      await t?.stop();
    });

    test('create returns 201 with Location, ETag and Last-Modified; read returns the same resource', async () => {
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Create') });
      expect(created.status).toBe(201);
      expect(created.body.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.body.meta.versionId).toBe('1');
      expect(created.headers.get('location')).toBe(`${t.fhir}/Patient/${created.body.id}/_history/1`);
      expect(created.headers.get('etag')).toBe('W/"1"');
      expect(created.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(new Date(created.headers.get('last-modified') as string).getTime()).toBeGreaterThan(0);

      const read = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual(created.body);
    });

    test('update with If-Match: the current version succeeds, a stale one gets 412', async () => {
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Match') });
      const id = created.body.id;
      const updated = await fhirFetch(`${t.fhir}/Patient/${id}`, {
        method: 'PUT',
        headers: { 'if-match': 'W/"1"' },
        body: { ...created.body, gender: 'other' },
      });
      expect(updated.status).toBe(200);
      expect(updated.body.meta.versionId).toBe('2');
      const stale = await fhirFetch(`${t.fhir}/Patient/${id}`, {
        method: 'PUT',
        headers: { 'if-match': 'W/"1"' },
        body: { ...created.body, gender: 'male' },
      });
      expect(stale.status).toBe(412);
      expect(stale.body.resourceType).toBe('OperationOutcome');
      const v1 = await fhirFetch(`${t.fhir}/Patient/${id}/_history/1`);
      expect(v1.status).toBe(200);
      expect(v1.body.gender).toBe('female');
      const history = await fhirFetch(`${t.fhir}/Patient/${id}/_history`);
      expect(history.body.type).toBe('history');
      expect(history.body.total).toBe(2);
      expect(history.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['2', '1']);
    });

    test('update of an unknown id creates it (update as create)', async () => {
      const res = await fhirFetch(`${t.fhir}/Patient/client-chosen-1`, {
        method: 'PUT',
        body: patient('Chosen', { id: 'client-chosen-1' }),
      });
      expect(res.status).toBe(201);
      expect(res.body.id).toBe('client-chosen-1');
    });

    test('delete, then read is 410 Gone and history keeps the deletion', async () => {
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Gone') });
      const del = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`, { method: 'DELETE' });
      expect(del.status).toBe(200);
      const read = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`);
      expect(read.status).toBe(410);
      expect(read.body.resourceType).toBe('OperationOutcome');
      const history = await fhirFetch(`${t.fhir}/Patient/${created.body.id}/_history`);
      expect(history.body.entry[0].request.method).toBe('DELETE');
      const search = await fhirFetch(`${t.fhir}/Patient?family=Gone`);
      expect(search.body.entry).toBeUndefined(); // FHIR JSON has no empty arrays
    });

    test('JSON Patch changes one element and makes a new version', async () => {
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Patch') });
      const patched = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: [{ op: 'replace', path: '/gender', value: 'male' }],
      });
      expect(patched.status).toBe(200);
      expect(patched.body.gender).toBe('male');
      expect(patched.body.meta.versionId).toBe('2');
      const bad = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: [{ op: 'replace', path: '/gender', value: 'robot' }],
      });
      expect(bad.status).toBe(422); // R4: a patch that yields an invalid resource
      expect(bad.body.issue[0].expression).toEqual(['Patient.gender']);
      const unparseable = await fhirFetch(`${t.fhir}/Patient/${created.body.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: [{ op: 'replace', path: '/name/7/family', value: 'x' }],
      });
      expect(unparseable.status).toBe(400);
    });

    test('conditional create is race-safe: ten concurrent If-None-Exist creates make one resource', async () => {
      const body = patient('Racer', { identifier: [{ system: 'urn:test:mrn', value: 'race-1' }] });
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          fhirFetch(`${t.fhir}/Patient`, {
            method: 'POST',
            body,
            headers: { 'if-none-exist': 'identifier=urn:test:mrn|race-1' },
          }),
        ),
      );
      expect(results.filter((r) => r.status === 201)).toHaveLength(1);
      expect(results.filter((r) => r.status === 200)).toHaveLength(9);
      expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
      const search = await fhirFetch(`${t.fhir}/Patient?identifier=urn:test:mrn|race-1&_total=accurate`);
      expect(search.body.total).toBe(1);
    });

    test('conditional reads answer 304 Not Modified', async () => {
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Cache') });
      const url = `${t.fhir}/Patient/${created.body.id}`;
      expect((await fhirFetch(url, { headers: { 'if-none-match': 'W/"1"' } })).status).toBe(304);
      expect((await fhirFetch(url, { headers: { 'if-none-match': 'W/"7"' } })).status).toBe(200);
      const later = new Date(Date.now() + 60_000).toUTCString();
      expect((await fhirFetch(url, { headers: { 'if-modified-since': later } })).status).toBe(304);
      expect((await fhirFetch(url, { headers: { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' } })).status).toBe(
        200,
      );
    });

    test('Prefer: return=minimal and return=OperationOutcome', async () => {
      const minimal = await fhirFetch(`${t.fhir}/Patient`, {
        method: 'POST',
        body: patient('Min'),
        headers: { prefer: 'return=minimal' },
      });
      expect(minimal.status).toBe(201);
      expect(minimal.body).toBeUndefined();
      expect(minimal.headers.get('location')).toMatch(/\/Patient\/[^/]+\/_history\/1$/);
      const outcome = await fhirFetch(`${t.fhir}/Patient`, {
        method: 'POST',
        body: patient('Out'),
        headers: { prefer: 'return=OperationOutcome' },
      });
      expect(outcome.status).toBe(201);
      expect(outcome.body.resourceType).toBe('OperationOutcome');
    });

    test('invalid resources get 400 with an OperationOutcome pointing at the element', async () => {
      const res = await fhirFetch(`${t.fhir}/Patient`, {
        method: 'POST',
        body: patient('Bad', { gender: 'robot', birthDate: 'yesterday' }),
      });
      expect(res.status).toBe(400);
      const expressions = res.body.issue.flatMap((issue: any) => issue.expression ?? []);
      expect(expressions).toEqual(expect.arrayContaining(['Patient.gender', 'Patient.birthDate']));
      const unknown = await fhirFetch(`${t.fhir}/Patient`, {
        method: 'POST',
        body: { resourceType: 'Patient', colour: 'blue' },
      });
      expect(unknown.status).toBe(400);
      expect(unknown.body.issue[0].expression).toEqual(['Patient.colour']);
    });

    test('every error is an OperationOutcome with the right status', async () => {
      const cases: [string, { method?: string; body?: unknown; headers?: Record<string, string> }, number][] = [
        [`${t.fhir}/Patient/does-not-exist`, {}, 404],
        [`${t.fhir}/NoSuchType/1`, {}, 404],
        [`${t.fhir}/metadata`, { method: 'DELETE' }, 405],
        [
          `${t.fhir}/Patient`,
          {
            method: 'POST',
            body: '{"resourceType": "Patient", ',
            headers: { 'content-type': 'application/fhir+json' },
          },
          400,
        ],
        [
          `${t.fhir}/Patient`,
          { method: 'POST', body: '<Patient/>', headers: { 'content-type': 'application/fhir+xml' } },
          415,
        ],
        [`${t.fhir}/Patient`, { headers: { accept: 'application/fhir+xml' } }, 406],
        [
          `${t.fhir}/Patient`,
          { method: 'POST', body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } },
          400,
        ],
        [`${t.fhir}/Patient?birthdate=notadate`, {}, 400],
      ];
      for (const [url, init, status] of cases) {
        const res = await fhirFetch(url, init);
        expect({ url, method: init.method ?? 'GET', status: res.status }).toEqual({
          url,
          method: init.method ?? 'GET',
          status,
        });
        expect(res.body?.resourceType).toBe('OperationOutcome');
        expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      }
    });

    test('search by token, string and date with paging', async () => {
      for (let i = 0; i < 5; i++) {
        await fhirFetch(`${t.fhir}/Patient`, {
          method: 'POST',
          body: patient(`Pager${i}`, {
            identifier: [{ system: 'urn:test:page', value: `p${i}` }],
            birthDate: `198${i}-05-05`,
          }),
        });
      }
      const first = await fhirFetch(`${t.fhir}/Patient?identifier=urn:test:page|&_count=2&_sort=birthdate`);
      expect(first.body.entry.map((e: any) => e.resource.name[0].family)).toEqual(['Pager0', 'Pager1']);
      const next = first.body.link.find((l: any) => l.relation === 'next').url;
      const second = await fhirFetch(next);
      expect(second.body.entry.map((e: any) => e.resource.name[0].family)).toEqual(['Pager2', 'Pager3']);
      const byName = await fhirFetch(`${t.fhir}/Patient?family=pager3`);
      expect(byName.body.entry).toHaveLength(1);
      const byDate = await fhirFetch(`${t.fhir}/Patient?identifier=urn:test:page|&birthdate=ge1983&_total=accurate`);
      expect(byDate.body.total).toBe(2);
    });

    test('a transaction is atomic and rewrites urn:uuid references', async () => {
      const good = await fhirFetch(t.fhir, {
        method: 'POST',
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: 'urn:uuid:6a0e3c39-0d1c-4f3e-9a35-7f5f6a0d2b11',
              resource: patient('Tx'),
              request: { method: 'POST', url: 'Patient' },
            },
            {
              resource: {
                resourceType: 'Observation',
                status: 'final',
                code: { text: 'weight' },
                subject: { reference: 'urn:uuid:6a0e3c39-0d1c-4f3e-9a35-7f5f6a0d2b11' },
              },
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      expect(good.status).toBe(200);
      expect(good.body.type).toBe('transaction-response');
      const patientId = good.body.entry[0].resource.id;
      expect(good.body.entry[1].resource.subject.reference).toBe(`Patient/${patientId}`);

      const bad = await fhirFetch(t.fhir, {
        method: 'POST',
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: patient('TxRolledBack'), request: { method: 'POST', url: 'Patient' } },
            {
              resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } },
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.resourceType).toBe('OperationOutcome');
      const search = await fhirFetch(`${t.fhir}/Patient?family=TxRolledBack`);
      expect(search.body.entry).toBeUndefined(); // FHIR JSON has no empty arrays
    });
  });
}
