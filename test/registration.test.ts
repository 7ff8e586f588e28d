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
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

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
    address: [{ use: 'home', line: ['12 Elm Street'], city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' }],
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
    expect(stored.body.type.coding).toContainEqual(expect.objectContaining({ system: 'http://loinc.org', code: '51852-2' }));
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
    const pdf = Buffer.from(await (await fetch(`${hub.fhir}/${binary}`, { headers: { accept: 'application/pdf' } })).arrayBuffer());
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
      [{ resourceType: 'Parameters', parameter: [{ name: 'patient', resource: { resourceType: 'Practitioner' } }] }, 'patient', /Patient resource/],
      [registration(patient({ name: [] })), 'patient.name', /name/],
      [registration(patient({ birthDate: undefined })), 'patient.birthDate', /date of birth/],
      [registration(patient({ birthDate: '2999-01-01' })), 'patient.birthDate', /not in the future/],
      [registration(patient({ telecom: [{ system: 'phone', value: '555-0100' }] })), 'patient.telecom', /e-mail/],
      [registration(patient({ address: [{ city: 'Boston' }] })), 'patient.address', /country/],
      [registration(patient({ address: [{ city: 'Boston', country: 'US' }] })), 'patient.address[0].state', /state or territory/],
      [registration(patient({ address: [{ country: 'Atlantis' }] })), 'patient.address[0].country', /country code/],
      [registration(patient({ identifier: [{ system: SYSTEM, value: '1234567890' }] })), 'patient.identifier', /issued by the hub/],
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
    expect(new Set(raced.map((response) => param(response.body, 'referenceNumber')!.valueIdentifier!.value)).size).toBe(1);
  });

  test('a number already issued is drawn again: the ledger never hands one out twice', async () => {
    const owner = { patientId: randomUUID(), letterId: randomUUID() };
    const first = await issueReferenceNumber(hub.hub.db, owner, digits('123456789'));
    expect(first).toBe(`123456789${dammCheckDigit('123456789')}`);
    // The next source draws the same number first, then another.
    const second = await issueReferenceNumber(hub.hub.db, owner, digits('123456789987654321'));
    expect(second).toBe(`987654321${dammCheckDigit('987654321')}`);
    await expect(issueReferenceNumber(hub.hub.db, owner, digits('123456789'))).rejects.toThrow(/No free reference number/);
    const rows = await sql.query('SELECT value FROM reference_number WHERE patient_id = $1 ORDER BY value', [owner.patientId]);
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
    const patientResource = metadata.body.rest[0].resource.find((resource: { type: string }) => resource.type === 'Patient');
    const operation = patientResource.operation?.find((op: { name: string }) => op.name === 'register');
    expect(operation).toBeDefined();
    const definition = await fhirFetch(operation.definition);
    expect(definition.body).toMatchObject({ resourceType: 'OperationDefinition', code: 'register', resource: ['Patient'], type: true });
    const observation = metadata.body.rest[0].resource.find((resource: { type: string }) => resource.type === 'Observation');
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
      const response = await fhirFetch(`${hub.fhir}/Patient/$register`, { method: 'POST', body: registration(patient(), 'embedded-1') });
      expect(response.status).toBe(201);
      const number = param(response.body, 'referenceNumber')!.valueIdentifier!.value;
      expect(isValidReferenceNumber(number)).toBe(true);
      const retry = await fhirFetch(`${hub.fhir}/Patient/$register`, { method: 'POST', body: registration(patient(), 'embedded-1') });
      expect(retry.status).toBe(200);
      expect(param(retry.body, 'referenceNumber')!.valueIdentifier!.value).toBe(number);
      const binary = param(response.body, 'letterPdf')!.valueReference!.reference;
      const pdf = Buffer.from(await (await fetch(`${hub.fhir}/${binary}`, { headers: { accept: 'application/pdf' } })).arrayBuffer());
      expect(await pdfText(pdf)).toContain(param(response.body, 'referenceNumberDisplay')!.valueString!);
    } finally {
      await hub.stop();
    }
  });
});
