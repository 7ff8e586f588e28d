/**
 * Patient/$register from a client's side: screening first (an ineligible applicant gets a 422 and
 * nothing is stored), a valid and unique reference number, the letter PDF read back through Binary
 * and Debian's pdftotext, retries with a requestId, and bad input. Real PostgreSQL.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { dammCheckDigit, isValidReferenceNumber } from '../src/cases/reference-number.ts';
import { issueReferenceNumber } from '../src/fhir/operations/reference-numbers.ts';
import { auditEventsSince, clientToken } from './support/client-token.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { userToken } from './support/user-token.ts';

const run = promisify(execFile);
const SYSTEM = 'urn:hub:reference-number';

interface Param {
  name: string;
  valueString?: string;
  valueCode?: string;
  valueIdentifier?: { system: string; value: string };
  valueReference?: { reference: string };
  resource?: any;
  part?: Param[];
}

function param(body: { parameter: Param[] }, name: string): Param | undefined {
  return body.parameter.find((p) => p.name === name);
}

function patient(overrides: Record<string, unknown> = {}) {
  return {
    resourceType: 'Patient',
    name: [{ family: 'Quillfeather', given: ['Ottoline'] }],
    birthDate: '1961-04-23',
    telecom: [{ system: 'email', value: 'ottoline@example.org' }],
    address: [
      { use: 'home', line: ['12 Elm Street'], city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' },
    ],
    ...overrides,
  };
}

const registration = (resource: unknown, requestId?: string) => ({
  resourceType: 'Parameters',
  parameter: [{ name: 'patient', resource }, ...(requestId ? [{ name: 'requestId', valueString: requestId }] : [])],
});

/** A digit source that replays `text` over and over. */
function digits(text: string): () => number {
  let index = 0;
  return () => Number(text[index++ % text.length]);
}

async function pdfText(pdf: Buffer): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-letter-'));
  try {
    const file = path.join(dir, 'letter.pdf');
    await fs.writeFile(file, pdf);
    const { stdout } = await run('pdftotext', [file, '-']);
    // pdftotext breaks lines where the layout does; compare words, not line breaks.
    return stdout.replace(/\s+/g, ' ');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

describe('Patient/$register', () => {
  let hub: TestHub;
  let sql: pg.Client;
  beforeAll(async () => {
    hub = await startTestHub({ db: 'postgres' });
    sql = new pg.Client({ connectionString: hub.databaseUrl });
    await sql.connect();
  });
  afterAll(async () => {
    await sql?.end();
    await hub?.stop();
  });

  const register = (body: unknown) => fhirFetch(`${hub.fhir}/Patient/$register`, { method: 'POST', body });
  const count = async (type: string): Promise<number> => {
    const bundle = await fhirFetch(`${hub.fhir}/${type}?_count=1000&_elements=id`);
    expect(bundle.status).toBe(200);
    return bundle.body.entry?.length ?? 0;
  };
  const counts = async () => ({
    Patient: await count('Patient'),
    DocumentReference: await count('DocumentReference'),
    Binary: await count('Binary'),
    issued: Number((await sql.query('SELECT count(*) AS n FROM reference_number')).rows[0].n),
  });

  test('registers one Patient with a valid reference number and a letter for the physician', async () => {
    const before = await counts();
    const response = await register(registration(patient()));
    expect(response.status).toBe(201);
    expect(response.body.resourceType).toBe('Parameters');

    const number = param(response.body, 'referenceNumber')?.valueIdentifier;
    expect(number?.system).toBe(SYSTEM);
    expect(isValidReferenceNumber(number!.value)).toBe(true);
    const display = param(response.body, 'referenceNumberDisplay')?.valueString;
    expect(display).toBe(number!.value.replace(/^(\d{3})(\d{3})(\d{3})(\d)$/, '$1 $2 $3 $4'));

    const created = param(response.body, 'patient')?.resource;
    expect(created.identifier).toContainEqual(expect.objectContaining({ system: SYSTEM, value: number!.value }));
    expect(created.name[0].family).toBe('Quillfeather');
    const eligibility = param(response.body, 'eligibility')?.part ?? [];
    expect(eligibility.find((p) => p.name === 'outcome')?.valueCode).toBe('eligible');

    expect(await counts()).toEqual({
      Patient: before.Patient + 1,
      DocumentReference: before.DocumentReference + 1,
      Binary: before.Binary + 1,
      issued: before.issued + 1,
    });
    const found = await fhirFetch(`${hub.fhir}/Patient?identifier=${encodeURIComponent(`${SYSTEM}|${number!.value}`)}`);
    expect(found.body.entry.map((entry: { resource: { id: string } }) => entry.resource.id)).toEqual([created.id]);

    // The letter: a DocumentReference about the patient, pointing at the PDF.
    const letter = param(response.body, 'letter')?.resource;
    const stored = await fhirFetch(`${hub.fhir}/DocumentReference/${letter.id}`);
    expect(stored.status).toBe(200);
    expect(stored.body.subject.reference).toBe(`Patient/${created.id}`);
    expect(stored.body.type.coding).toContainEqual(
      expect.objectContaining({ system: 'http://loinc.org', code: '51852-2' }),
    );
    const attachment = stored.body.content[0].attachment;
    expect(attachment.contentType).toBe('application/pdf');
    expect(param(response.body, 'letterPdf')?.valueReference?.reference).toBe(attachment.url);

    const raw = await fetch(`${hub.fhir}/${attachment.url}`, { headers: { accept: 'application/pdf' } });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toMatch(/^application\/pdf/);
    const pdf = Buffer.from(await raw.arrayBuffer());
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(attachment.size).toBe(pdf.length);
    expect(attachment.hash).toBe(createHash('sha1').update(pdf).digest('base64'));

    const text = await pdfText(pdf);
    expect(text).toContain(`Reference number: ${display}`);
    expect(text).toContain('Please give this letter to your treating physician');
    expect(text).toContain(`Register as a physician at ${hub.baseUrl}`);
    expect(text).toContain(`Enter your patient's reference number: ${display}`);
    expect(text).toMatch(/Up to four questions are included/);
    // The letter identifies the case by its number only: no name, birth date, e-mail or address.
    for (const personal of ['Quillfeather', 'Ottoline', '1961', 'ottoline@example.org', 'Elm Street']) {
      expect(text).not.toContain(personal);
    }
    expect(text).not.toMatch(/do not allow us to review/);
  });

  test('a restricted residence registers, and the letter tells the physician what not to send', async () => {
    const response = await register(registration(patient({ address: [{ state: 'US-NH', country: 'us' }] })));
    expect(response.status).toBe(201);
    const eligibility = param(response.body, 'eligibility')?.part ?? [];
    expect(eligibility.find((p) => p.name === 'outcome')?.valueCode).toBe('eligible-with-restrictions');
    const binary = param(response.body, 'letterPdf')?.valueReference?.reference;
    const pdf = Buffer.from(
      await (await fetch(`${hub.fhir}/${binary}`, { headers: { accept: 'application/pdf' } })).arrayBuffer(),
    );
    const text = await pdfText(pdf);
    expect(text).toMatch(/do not allow us to review imaging studies for this case/);
    expect(text).not.toMatch(/New Hampshire/);
  });

  test('an ineligible residence is a 422 with the reasons, and nothing is created', async () => {
    const before = await counts();
    for (const [address, code] of [
      [{ use: 'home', state: 'NM', country: 'US' }, 'no-cross-state-opinion'],
      [{ use: 'home', city: 'Damascus', country: 'SY' }, 'no-service'],
    ] as const) {
      const response = await register(registration(patient({ address: [address] })));
      expect(response.status).toBe(422);
      expect(response.body.resourceType).toBe('OperationOutcome');
      expect(response.body.issue[0].code).toBe('business-rule');
      expect(response.body.issue[0].details.coding[0]).toEqual({ system: 'urn:hub:eligibility-reason', code });
      expect(response.body.issue[0].details.text).toMatch(/sorry/);
      expect(JSON.stringify(response.body)).not.toContain('Quillfeather');
    }
    expect(await counts()).toEqual(before);
  });

  test('bad input is a 400 naming the field, and nothing is created', async () => {
    const before = await counts();
    const cases: [unknown, string, RegExp][] = [
      [{ resourceType: 'Parameters', parameter: [] }, 'patient', /required/],
      [
        { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: { resourceType: 'Practitioner' } }] },
        'patient',
        /Patient resource/,
      ],
      [registration(patient({ name: [] })), 'patient.name', /name/],
      [registration(patient({ birthDate: undefined })), 'patient.birthDate', /date of birth/],
      [registration(patient({ birthDate: '2999-01-01' })), 'patient.birthDate', /not in the future/],
      [registration(patient({ telecom: [{ system: 'phone', value: '555-0100' }] })), 'patient.telecom', /e-mail/],
      [registration(patient({ address: [{ city: 'Boston' }] })), 'patient.address', /country/],
      [
        registration(patient({ address: [{ city: 'Boston', country: 'US' }] })),
        'patient.address[0].state',
        /state or territory/,
      ],
      [registration(patient({ address: [{ country: 'Atlantis' }] })), 'patient.address[0].country', /country code/],
      [
        registration(patient({ identifier: [{ system: SYSTEM, value: '1234567890' }] })),
        'patient.identifier',
        /issued by the hub/,
      ],
      [registration(patient(), 'not a valid id!'), 'requestId', /requestId/],
    ];
    for (const [body, expression, text] of cases) {
      const response = await register(body);
      expect({ expression, status: response.status }).toEqual({ expression, status: 400 });
      expect(response.body.issue[0].expression).toEqual([expression]);
      expect(response.body.issue[0].details.text).toMatch(text);
    }
    // R4 validation still applies to what passes our own checks.
    const invalid = await register(registration(patient({ gender: 'robot' })));
    expect(invalid.status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test('20 concurrent registrations get 20 distinct valid numbers', async () => {
    const before = await counts();
    const responses = await Promise.all(Array.from({ length: 20 }, () => register(registration(patient()))));
    expect(responses.map((response) => response.status)).toEqual(Array(20).fill(201));
    const numbers = responses.map((response) => param(response.body, 'referenceNumber')!.valueIdentifier!.value);
    expect(new Set(numbers).size).toBe(20);
    expect(numbers.every(isValidReferenceNumber)).toBe(true);
    expect(await counts()).toEqual({
      Patient: before.Patient + 20,
      DocumentReference: before.DocumentReference + 20,
      Binary: before.Binary + 20,
      issued: before.issued + 20,
    });
  });

  test('a retry with the same requestId returns the first registration; another patient under it is a 409', async () => {
    const before = await counts();
    const requestId = randomUUID();
    const first = await register(registration(patient(), requestId));
    expect(first.status).toBe(201);
    const again = await Promise.all(Array.from({ length: 4 }, () => register(registration(patient(), requestId))));
    expect(again.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    const number = param(first.body, 'referenceNumber')!.valueIdentifier!.value;
    for (const response of again) {
      expect(param(response.body, 'referenceNumber')!.valueIdentifier!.value).toBe(number);
      expect(param(response.body, 'patient')!.resource.id).toBe(param(first.body, 'patient')!.resource.id);
      expect(param(response.body, 'letter')!.resource.id).toBe(param(first.body, 'letter')!.resource.id);
    }
    const other = await register(registration(patient({ birthDate: '1970-01-01' }), requestId));
    expect(other.status).toBe(409);
    expect(await counts()).toEqual({
      Patient: before.Patient + 1,
      DocumentReference: before.DocumentReference + 1,
      Binary: before.Binary + 1,
      issued: before.issued + 1,
    });

    // Concurrent first attempts of one request also register once.
    const racing = randomUUID();
    const raced = await Promise.all(Array.from({ length: 5 }, () => register(registration(patient(), racing))));
    expect(raced.map((response) => response.status).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(raced.map((response) => param(response.body, 'referenceNumber')!.valueIdentifier!.value)).size).toBe(
      1,
    );
  });

  test('a number already issued is drawn again: the ledger never hands one out twice', async () => {
    const owner = { patientId: randomUUID(), letterId: randomUUID() };
    const first = await issueReferenceNumber(hub.hub.db, owner, digits('123456789'));
    expect(first).toBe(`123456789${dammCheckDigit('123456789')}`);
    // The next source draws the same number first, then another.
    const second = await issueReferenceNumber(hub.hub.db, owner, digits('123456789987654321'));
    expect(second).toBe(`987654321${dammCheckDigit('987654321')}`);
    await expect(issueReferenceNumber(hub.hub.db, owner, digits('123456789'))).rejects.toThrow(
      /No free reference number/,
    );
    const rows = await sql.query('SELECT value FROM reference_number WHERE patient_id = $1 ORDER BY value', [
      owner.patientId,
    ]);
    expect(rows.rows.map((row) => row.value)).toEqual([first, second]);
  });

  test('inside a Bundle it is refused (it commits on its own)', async () => {
    const before = await counts();
    const bundle = await fhirFetch(hub.fhir, {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ request: { method: 'POST', url: 'Patient/$register' }, resource: registration(patient()) }],
      },
    });
    expect(bundle.status).toBe(200);
    expect(bundle.body.entry[0].response.status).toMatch(/^400/);
    expect(await counts()).toEqual(before);
  });

  test('a registered number is found by $check-eligibility, which re-screens the patient', async () => {
    const response = await register(registration(patient({ address: [{ use: 'home', state: 'NC', country: 'US' }] })));
    const display = param(response.body, 'referenceNumberDisplay')!.valueString!;
    const check = await fhirFetch(`${hub.fhir}/$check-eligibility?referenceNumber=${encodeURIComponent(display)}`);
    expect(check.status).toBe(200);
    expect(param(check.body, 'outcome')?.valueCode).toBe('eligible-with-restrictions');
  });

  test('the CapabilityStatement lists $register on Patient only; GET is refused', async () => {
    const metadata = await fhirFetch(`${hub.fhir}/metadata`);
    const patientResource = metadata.body.rest[0].resource.find(
      (resource: { type: string }) => resource.type === 'Patient',
    );
    const operation = patientResource.operation?.find((op: { name: string }) => op.name === 'register');
    expect(operation).toBeDefined();
    const definition = await fhirFetch(operation.definition);
    expect(definition.body).toMatchObject({
      resourceType: 'OperationDefinition',
      code: 'register',
      resource: ['Patient'],
      type: true,
    });
    const observation = metadata.body.rest[0].resource.find(
      (resource: { type: string }) => resource.type === 'Observation',
    );
    expect(observation.operation).toBeUndefined();

    // $register changes data, so it is not offered by GET (R4 operations, "affectsState").
    const get = await fhirFetch(`${hub.fhir}/Patient/$register`);
    expect(get.status).toBeGreaterThanOrEqual(400);
  });
});

describe('Patient/$register on the embedded database', () => {
  test('registers and serves the letter', async () => {
    const hub = await startTestHub({ db: 'pglite' });
    try {
      const response = await fhirFetch(`${hub.fhir}/Patient/$register`, {
        method: 'POST',
        body: registration(patient(), 'embedded-1'),
      });
      expect(response.status).toBe(201);
      const number = param(response.body, 'referenceNumber')!.valueIdentifier!.value;
      expect(isValidReferenceNumber(number)).toBe(true);
      const retry = await fhirFetch(`${hub.fhir}/Patient/$register`, {
        method: 'POST',
        body: registration(patient(), 'embedded-1'),
      });
      expect(retry.status).toBe(200);
      expect(param(retry.body, 'referenceNumber')!.valueIdentifier!.value).toBe(number);
      const binary = param(response.body, 'letterPdf')!.valueReference!.reference;
      const pdf = Buffer.from(
        await (await fetch(`${hub.fhir}/${binary}`, { headers: { accept: 'application/pdf' } })).arrayBuffer(),
      );
      expect(await pdfText(pdf)).toContain(param(response.body, 'referenceNumberDisplay')!.valueString!);
    } finally {
      await hub.stop();
    }
  });
});

describe('Patient/$register checks its caller (AUTH_REQUIRED=true)', () => {
  let hub: TestHub;
  let sql: pg.Client;
  const started = new Date(Date.now() - 1000).toISOString();
  beforeAll(async () => {
    hub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    sql = new pg.Client({ connectionString: hub.databaseUrl });
    await sql.connect();
  });
  afterAll(async () => {
    await sql?.end();
    await hub?.stop();
  });

  const register = (token: string | undefined, body: unknown) =>
    fhirFetch(`${hub.fhir}/Patient/$register`, {
      method: 'POST',
      body,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  /** What a registration writes, counted in the database itself. */
  const written = async () => ({
    resources: Number(
      (
        await sql.query(
          "SELECT count(*) AS n FROM resource WHERE resource_type IN ('Patient', 'Binary', 'DocumentReference')",
        )
      ).rows[0].n,
    ),
    issued: Number((await sql.query('SELECT count(*) AS n FROM reference_number')).rows[0].n),
  });

  test('refused (403 OperationOutcome, nothing written) without the right to create a Patient', async () => {
    const callers = {
      anonymous: undefined,
      specialist: await userToken(hub, 'specialist'),
      patient: await userToken(hub, 'patient'),
      physicianReadOnly: await userToken(hub, 'referring-physician', 'user/*.rs'),
      clientReadOnly: await clientToken(hub, 'ehr-read-only', 'system/*.rs'),
      clientOtherType: await clientToken(hub, 'ehr-observations', 'system/Observation.cruds system/ServiceRequest.c'),
    };
    const before = await written();
    for (const [caller, token] of Object.entries(callers)) {
      const response = await register(token, registration(patient(), `refused-${caller}`));
      const expected = caller === 'anonymous' ? 401 : 403;
      expect({ caller, status: response.status, type: response.body?.resourceType }).toEqual({
        caller,
        status: expected,
        type: 'OperationOutcome',
      });
      if (expected === 403) {
        expect({ caller, code: response.body.issue[0].code, text: response.body.issue[0].details.text }).toEqual({
          caller,
          code: 'forbidden',
          text: expect.stringMatching(/create (on )?Patient.*Patient\/\$register needs/),
        });
      }
    }
    expect(await written()).toEqual(before);
  });

  test('what the caller supplies is looked up and checked within their reach: a Patient they may not see answers as one that does not exist', async () => {
    const ehr = await clientToken(hub, 'ehr-seed', 'system/Patient.cruds');
    const hidden = await fhirFetch(`${hub.fhir}/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ehr}` },
      body: { resourceType: 'Patient', identifier: [{ system: 'urn:example:mrn', value: 'HIDDEN-1' }] },
    });
    expect(hidden.status).toBe(201);
    const physician = await userToken(hub, 'referring-physician');
    const linkedTo = (reference: string) =>
      registration(patient({ link: [{ other: { reference }, type: 'seealso' }] }));
    const before = await written();
    const toHidden = await register(physician, linkedTo('Patient?identifier=urn:example:mrn|HIDDEN-1'));
    const toNobody = await register(physician, linkedTo('Patient?identifier=urn:example:mrn|NOBODY-1'));
    expect(toHidden.status).toBeGreaterThanOrEqual(400);
    expect({ status: toHidden.status, text: JSON.stringify(toHidden.body.issue).replaceAll('HIDDEN-1', 'X') }).toEqual({
      status: toNobody.status,
      text: JSON.stringify(toNobody.body.issue).replaceAll('NOBODY-1', 'X'),
    });
    const literal = await register(physician, linkedTo(`Patient/${hidden.body.id}`));
    expect(literal.status).toBe(403);
    expect(literal.body.issue[0].expression).toEqual(['Patient.link[0].other']);
    expect(await written()).toEqual(before);
    // The same conditional reference from a system client (not limited to cases) resolves.
    const registrar = await clientToken(hub, 'ehr-linker', 'system/Patient.cruds');
    const linked = await register(registrar, linkedTo('Patient?identifier=urn:example:mrn|HIDDEN-1'));
    expect(linked.status).toBe(201);
    expect(param(linked.body, 'patient')?.resource.link[0].other.reference).toBe(`Patient/${hidden.body.id}`);
  });

  test('a referring physician, a coordinator and a client with Patient c register; the writes carry them as writer', async () => {
    const auditor = await clientToken(hub, 'auditor', 'system/AuditEvent.rs');
    const physician = await userToken(hub, 'referring-physician');
    const coordinator = await userToken(hub, 'coordinator', 'user/Patient.c');
    const ehr = await clientToken(hub, 'ehr-registrar', 'system/Patient.c');
    const registered: { caller: string; source: RegExp | string; agent?: string; ids: string[] }[] = [];
    for (const [caller, token, source, agent] of [
      ['physician', physician, /^urn:hub:actor:referring-physician:[0-9a-f-]{36}$/, undefined],
      ['coordinator', coordinator, /^urn:hub:actor:coordinator:[0-9a-f-]{36}$/, undefined],
      ['ehr', ehr, 'urn:hub:actor:ehr:ehr-registrar', 'ehr-registrar'],
    ] as const) {
      const response = await register(token, registration(patient({ name: [{ family: `Writer-${caller}` }] })));
      expect({ caller, status: response.status }).toEqual({ caller, status: 201 });
      const created = param(response.body, 'patient')?.resource;
      const letter = param(response.body, 'letter')?.resource;
      const binary = param(response.body, 'letterPdf')?.valueReference?.reference as string;
      const sources = (
        await sql.query<{ resource_type: string; source: string }>(
          "SELECT resource_type, content::jsonb #>> '{meta,source}' AS source FROM resource WHERE id = ANY($1::text[]) ORDER BY resource_type",
          [[created.id, letter.id, binary.split('/')[1]]],
        )
      ).rows;
      expect(sources.map((row) => row.resource_type)).toEqual(['Binary', 'DocumentReference', 'Patient']);
      for (const row of sources) {
        expect({ caller, type: row.resource_type, source: row.source }).toEqual({
          caller,
          type: row.resource_type,
          source: typeof source === 'string' ? source : expect.stringMatching(source),
        });
      }
      expect(created.meta.source).toEqual(sources.find((row) => row.resource_type === 'Patient')?.source);
      registered.push({
        caller,
        source,
        agent,
        ids: [`Patient/${created.id}`, `DocumentReference/${letter.id}`, binary],
      });
    }
    // Each write has its create AuditEvent naming the writer.
    const events = await until(async () => {
      const all = await auditEventsSince(hub, auditor, started);
      const creates = all.filter((event) => event.action === 'C');
      return (
        registered.every(({ ids }) =>
          ids.every((id) => creates.some((event) => JSON.stringify(event.entity ?? []).includes(`"${id}/_history/1"`))),
        ) && creates
      );
    }, 'the create AuditEvents of the registrations');
    for (const { caller, agent, ids } of registered) {
      for (const id of ids) {
        const event = events.find((candidate) => JSON.stringify(candidate.entity ?? []).includes(`"${id}/_history/1"`));
        const user = event.agent.find(
          (a: { type: { coding: { code: string }[] } }) => a.type.coding[0]?.code === 'UserOauthAgent',
        );
        const source = event.agent.find(
          (a: { type: { coding: { code: string }[] } }) => a.type.coding[0]?.code === '110153',
        );
        if (agent === undefined) {
          expect({ caller, id, user: user?.altId }).toEqual({
            caller,
            id,
            user: expect.stringMatching(/^[0-9a-f-]{36}$/),
          });
        } else {
          expect({ caller, id, user, client: source?.altId }).toEqual({ caller, id, user: undefined, client: agent });
        }
      }
    }
  });
});
