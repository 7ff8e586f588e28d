/**
 * $check-eligibility from a client's side: the shipped default policy (prohibited, restricted and
 * unrestricted residences), bad input as 400s naming the parameter, a typed reference number, and
 * the operator's JURISDICTION_POLICY_FILE (used when valid, stopping start-up when broken).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { spawnMain } from './support/hub-process.ts';
import { clientToken } from './support/client-token.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { userToken } from './support/user-token.ts';

interface Param {
  name: string;
  valueCode?: string;
  valueString?: string;
  valueBoolean?: boolean;
  valueCoding?: { system: string; code: string };
  part?: Param[];
}

function param(parameters: { parameter: Param[] } | Param, name: string): Param | undefined {
  return ('parameter' in parameters ? parameters.parameter : (parameters.part ?? [])).find((p) => p.name === name);
}

function answer(body: { parameter: Param[] }) {
  const allowed = param(body, 'allowedReviews');
  return {
    outcome: param(body, 'outcome')?.valueCode,
    radiology: allowed && param(allowed, 'radiology')?.valueBoolean,
    pathology: allowed && param(allowed, 'pathology')?.valueBoolean,
    message: param(body, 'message')?.valueString,
    reasons: body.parameter
      .filter((p) => p.name === 'reason')
      .map((reason) => ({
        code: param(reason, 'code')?.valueCoding?.code,
        system: param(reason, 'code')?.valueCoding?.system,
        jurisdiction: param(reason, 'jurisdiction')?.valueCode,
        message: param(reason, 'message')?.valueString,
      })),
    policyVersion: param(body, 'policyVersion')?.valueString,
    plannedReviewsAllowed: param(body, 'plannedReviewsAllowed')?.valueBoolean,
  };
}

const residence = (country: string, state?: string, extra: Param[] = []) => ({
  resourceType: 'Parameters',
  parameter: [
    { name: 'country', valueCode: country },
    ...(state ? [{ name: 'state', valueCode: state }] : []),
    ...extra,
  ],
});

/** A digit source that replays `digits` (the reference-number generator takes one). */
function digits(text: string): () => number {
  let index = 0;
  return () => Number(text[index++ % text.length]);
}

describe('$check-eligibility with the default policy', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const check = (body: unknown) => fhirFetch(`${hub.fhir}/$check-eligibility`, { method: 'POST', body });

  test('New Mexico: ineligible, with the reason in words and coded', async () => {
    const response = await check(residence('US', 'NM'));
    expect(response.status).toBe(200);
    expect(response.body.resourceType).toBe('Parameters');
    const result = answer(response.body);
    expect(result.outcome).toBe('ineligible');
    expect(result.radiology).toBe(false);
    expect(result.pathology).toBe(false);
    expect(result.reasons).toEqual([
      expect.objectContaining({
        code: 'no-cross-state-opinion',
        system: 'urn:hub:eligibility-reason',
        jurisdiction: 'US-NM',
      }),
    ]);
    expect(result.reasons[0]?.message).toMatch(/New Mexico/);
    expect(result.message).toMatch(/cannot provide a second opinion to residents of New Mexico/);
    expect(result.policyVersion).toBe('default-1');
  });

  test('Micronesia, the Marshall Islands and Palau written as U.S. addresses are screened as those countries', async () => {
    for (const [state, country] of [
      ['FM', 'FM'],
      ['MH', 'MH'],
      ['US-PW', 'PW'],
    ]) {
      const postal = await fhirFetch(`${hub.fhir}/$check-eligibility?country=US&state=${state}`);
      const iso = await fhirFetch(`${hub.fhir}/$check-eligibility?country=${country}`);
      expect({ state, status: postal.status }).toEqual({ state, status: 200 });
      expect(answer(postal.body)).toEqual(answer(iso.body));
    }
  });

  test('New Hampshire by GET: eligible without radiology; planned reviews are judged', async () => {
    const radiology = await fhirFetch(`${hub.fhir}/$check-eligibility?country=US&state=NH&plannedReview=radiology`);
    expect(radiology.status).toBe(200);
    const result = answer(radiology.body);
    expect(result.outcome).toBe('eligible-with-restrictions');
    expect(result.radiology).toBe(false);
    expect(result.pathology).toBe(true);
    expect(result.reasons.map((reason) => reason.code)).toEqual(['no-radiology']);
    expect(result.message).toMatch(/New Hampshire.*imaging/);
    expect(result.plannedReviewsAllowed).toBe(false);

    const pathology = await fhirFetch(`${hub.fhir}/$check-eligibility?country=us&state=US-NH&plannedReview=pathology`);
    expect(answer(pathology.body).plannedReviewsAllowed).toBe(true);
  });

  test('New Jersey: neither review; a country outside the lists: eligible without reasons', async () => {
    const nj = answer((await check(residence('US', 'NJ'))).body);
    expect(nj).toMatchObject({ outcome: 'eligible-with-restrictions', radiology: false, pathology: false });

    const france = answer((await check(residence('FR'))).body);
    expect(france).toMatchObject({ outcome: 'eligible', radiology: true, pathology: true, reasons: [] });
    expect(france.message).toMatch(/can provide a second opinion/);

    // A state given for another country is ignored (only U.S. subdivisions are listed).
    expect(answer((await check(residence('FR', 'NM'))).body).outcome).toBe('eligible');
  });

  test('sanctioned countries and territories given as countries are refused', async () => {
    const syria = answer((await check(residence('SY'))).body);
    expect(syria.outcome).toBe('ineligible');
    expect(syria.reasons.map((reason) => reason.code)).toEqual(['no-service']);
    // The U.S. Virgin Islands have a country code of their own.
    expect(answer((await check(residence('VI'))).body).outcome).toBe('ineligible');
  });

  test('bad input is a 400 naming the parameter', async () => {
    const cases: [unknown, string | undefined, RegExp][] = [
      [{ resourceType: 'Patient' }, undefined, /must be a Parameters resource/],
      [residence('XX'), 'country', /do not recognise the country code "XX"/],
      [residence('US'), 'state', /which U\.S\. state or territory/],
      [residence('US', 'ZZ'), 'state', /do not recognise "ZZ"/],
      [{ resourceType: 'Parameters', parameter: [] }, 'country', /country/],
      [
        residence('US', 'NH', [{ name: 'plannedReview', valueCode: 'cardiology' }]),
        'plannedReview',
        /radiology or pathology/,
      ],
      [residence('US', 'NH', [{ name: 'county', valueString: 'Coos' }]), 'county', /no parameter "county"/],
      [{ resourceType: 'Parameters', parameter: [{ name: 'country', valueBoolean: true }] }, 'country', /text value/],
      [
        {
          resourceType: 'Parameters',
          parameter: [
            { name: 'country', valueCode: 'US' },
            { name: 'country', valueCode: 'FR' },
          ],
        },
        'country',
        /only once/,
      ],
    ];
    for (const [body, expression, text] of cases) {
      const response = await check(body);
      expect({ body, status: response.status }).toEqual({ body, status: 400 });
      expect(response.body.resourceType).toBe('OperationOutcome');
      expect(response.body.issue[0].details.text).toMatch(text);
      if (expression) {
        expect(response.body.issue[0].expression).toEqual([expression]);
      }
    }
    const get = await fhirFetch(`${hub.fhir}/$check-eligibility?country=US&state=New%20Mexico`);
    expect(get.status).toBe(400);
    expect(get.body.issue[0].expression).toEqual(['state']);
  });

  test('a typed reference number: a typo is a 400 that says so, an unknown number a 404', async () => {
    const valid = generateReferenceNumber(digits('3141592653'));
    // Swapping two adjacent different digits is always caught by the Damm check digit.
    const swapped = valid.charAt(0) + valid.charAt(2) + valid.charAt(1) + valid.slice(3);
    expect(swapped).not.toBe(valid);
    const typo = await check({
      resourceType: 'Parameters',
      parameter: [{ name: 'referenceNumber', valueString: swapped }],
    });
    expect(typo.status).toBe(400);
    expect(typo.body.issue[0].expression).toEqual(['referenceNumber']);
    expect(typo.body.issue[0].details.text).toMatch(/typo/);

    const tooShort = await fhirFetch(`${hub.fhir}/$check-eligibility?referenceNumber=123-456`);
    expect(tooShort.status).toBe(400);
    expect(tooShort.body.issue[0].details.text).toMatch(/10 digits, but this has 6/);

    const spaced = `${valid.slice(0, 3)} ${valid.slice(3, 6)} ${valid.slice(6, 9)} ${valid.slice(9)}`;
    const unknown = await check({
      resourceType: 'Parameters',
      parameter: [{ name: 'referenceNumber', valueString: spaced }],
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.issue[0].details.text).toMatch(/No patient is registered under this reference number/);

    const both = await check(residence('FR', undefined, [{ name: 'referenceNumber', valueString: valid }]));
    expect(both.status).toBe(400);
  });

  test('the CapabilityStatement advertises the operation and its definition is readable', async () => {
    const metadata = await fhirFetch(`${hub.fhir}/metadata`);
    const operation = metadata.body.rest[0].operation.find((op: { name: string }) => op.name === 'check-eligibility');
    expect(operation).toBeDefined();
    const definition = await fhirFetch(operation.definition);
    expect(definition.status).toBe(200);
    expect(definition.body).toMatchObject({
      resourceType: 'OperationDefinition',
      code: 'check-eligibility',
      system: true,
    });
    expect(definition.body.parameter.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining([
        'country',
        'state',
        'plannedReview',
        'referenceNumber',
        'outcome',
        'allowedReviews',
        'reason',
        'policyVersion',
      ]),
    );
  });
});

describe('JURISDICTION_POLICY_FILE', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-policy-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const policy = (version: string, effectiveFrom: string, entries: unknown[]) => ({
    version,
    effectiveFrom,
    serviceJurisdiction: { code: 'US-MA', name: 'Massachusetts' },
    notes: ['test policy'],
    entries,
  });
  const franceClosed = {
    code: 'FR',
    name: 'France',
    rule: 'no-service',
    reason: 'A test of the operator policy.',
    source: 'eligibility.test.ts',
  };

  test("the operator's policy in force replaces the default; a future version waits its turn", async () => {
    const file = path.join(dir, 'policy.json');
    await fs.writeFile(
      file,
      JSON.stringify([
        policy('operator-7', '2020-01-01T00:00:00Z', [franceClosed]),
        policy('operator-8', '2999-01-01T00:00:00Z', []),
      ]),
    );
    const hub = await startTestHub({ env: { JURISDICTION_POLICY_FILE: file } });
    try {
      const france = await fhirFetch(`${hub.fhir}/$check-eligibility?country=FR`);
      expect(answer(france.body)).toMatchObject({ outcome: 'ineligible', policyVersion: 'operator-7' });
      expect(answer(france.body).message).toMatch(/not available to residents of France/);
      // The operator's document lists no U.S. states, so New Mexico is no longer refused.
      const nm = await fhirFetch(`${hub.fhir}/$check-eligibility?country=US&state=NM`);
      expect(answer(nm.body)).toMatchObject({ outcome: 'eligible', policyVersion: 'operator-7' });
    } finally {
      await hub.stop();
    }
  });

  test('before the first version of the file takes effect, the shipped default applies', async () => {
    const file = path.join(dir, 'scheduled.json');
    await fs.writeFile(file, JSON.stringify(policy('operator-10', '2999-01-01T00:00:00Z', [franceClosed])));
    const hub = await startTestHub({ env: { JURISDICTION_POLICY_FILE: file } });
    try {
      const france = await fhirFetch(`${hub.fhir}/$check-eligibility?country=FR`);
      expect(answer(france.body)).toMatchObject({ outcome: 'eligible', policyVersion: 'default-1' });
    } finally {
      await hub.stop();
    }
  });

  test('a broken file stops start-up with a message naming the file and the problem', async () => {
    const file = path.join(dir, 'broken.json');
    await fs.writeFile(
      file,
      JSON.stringify(policy('operator-9', '2020-01-01T00:00:00Z', [{ ...franceClosed, code: 'FRA' }])),
    );
    const dataDir = await fs.mkdtemp(path.join(dir, 'data-'));
    const child = spawnMain({
      JURISDICTION_POLICY_FILE: file,
      DATA_DIR: dataDir,
      PORT: '0',
      DIMSE_PORT: '0',
      LOG_LEVEL: 'info',
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).not.toBe(0);
    expect(output).toContain(`JURISDICTION_POLICY_FILE ${file}`);
    expect(output).toMatch(/entries\[0\] \(FRA\): \\?"FRA\\?" is not an ISO 3166-1 alpha-2 country code/);
    expect(output).not.toMatch(/hub listening/);

    const notJson = path.join(dir, 'not-json.json');
    await fs.writeFile(notJson, '{ "version": ');
    const second = spawnMain({ JURISDICTION_POLICY_FILE: notJson, DATA_DIR: dataDir, PORT: '0', DIMSE_PORT: '0' });
    let secondOutput = '';
    second.stdout?.setEncoding('utf8').on('data', (chunk: string) => (secondOutput += chunk));
    const secondCode = await new Promise<number | null>((resolve) =>
      second.once('exit', (exitCode) => resolve(exitCode)),
    );
    expect(secondCode).not.toBe(0);
    expect(secondOutput).toMatch(/is not valid JSON/);
  });
});

describe('$check-eligibility checks its caller (AUTH_REQUIRED=true)', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ env: { AUTH_REQUIRED: 'true' } });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const check = (token: string | undefined, query: string) =>
    fhirFetch(`${hub.fhir}/$check-eligibility?${query}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  test('a residence: any identity may ask, whatever its resource scopes; anonymous requests are 401', async () => {
    expect((await check(undefined, 'country=FR')).status).toBe(401);
    const callers = {
      patient: await userToken(hub, 'patient', 'user/Questionnaire.rs'),
      specialist: await userToken(hub, 'specialist'),
      client: await clientToken(hub, 'ehr-observations', 'system/Observation.r'),
    };
    for (const [caller, token] of Object.entries(callers)) {
      const response = await check(token, 'country=US&state=NM');
      expect({ caller, status: response.status, outcome: answer(response.body).outcome }).toEqual({
        caller,
        status: 200,
        outcome: 'ineligible',
      });
    }
  });

  test("a reference number needs the right to refer; the patient need not be in the physician's cases yet", async () => {
    const coordinator = await userToken(hub, 'coordinator');
    const registered = await fhirFetch(`${hub.fhir}/Patient/$register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${coordinator}` },
      body: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'patient',
            resource: {
              resourceType: 'Patient',
              name: [{ family: 'Ashdown' }],
              birthDate: '1970-01-02',
              telecom: [{ system: 'email', value: 'ashdown@example.org' }],
              address: [{ use: 'home', country: 'FR' }],
            },
          },
        ],
      },
    });
    expect(registered.status).toBe(201);
    const number = (registered.body.parameter as { name: string; valueIdentifier?: { value: string } }[]).find(
      (p) => p.name === 'referenceNumber',
    )?.valueIdentifier?.value as string;
    const refused = {
      patient: await userToken(hub, 'patient'),
      specialist: await userToken(hub, 'specialist'),
      physicianReadOnly: await userToken(hub, 'referring-physician', 'user/*.rs'),
      client: await clientToken(hub, 'ehr-patients', 'system/Patient.rs'),
    };
    for (const [caller, token] of Object.entries(refused)) {
      const response = await check(token, `referenceNumber=${number}`);
      expect({ caller, status: response.status, code: response.body.issue?.[0]?.code }).toEqual({
        caller,
        status: 403,
        code: 'forbidden',
      });
      expect(JSON.stringify(response.body)).not.toMatch(/FR|eligible/);
    }
    const allowed = {
      physician: await userToken(hub, 'referring-physician'),
      client: await clientToken(hub, 'ehr-referrer', 'system/ServiceRequest.c'),
    };
    for (const [caller, token] of Object.entries(allowed)) {
      const response = await check(token, `referenceNumber=${number}`);
      expect({ caller, status: response.status, outcome: answer(response.body).outcome }).toEqual({
        caller,
        status: 200,
        outcome: 'eligible',
      });
    }
  });
});
