/**
 * The hub's layering, checked by `npm run lint` (dependency-cruiser). docs/architecture.md explains
 * each layer; this table is the rule. A folder may import itself and the layers it lists; anything
 * of ours it does not list is an error. Type-only imports count: a layer that needs a type from
 * above it is in the wrong place, or the type is.
 */

/** The shared leaves every layer may use: the validated configuration, the logger, the version. */
const LEAVES = ['config.ts', 'logger.ts', 'version.ts', 'runtime/'];

/** Folder (or file) under src/ → what of ours it may import, bottom layer first. */
const MAY_IMPORT = {
  'config.ts': [],
  'version.ts': [],
  'logger.ts': ['config.ts'],
  'runtime/': [],
  'cases/': [],
  'db/': [...LEAVES],
  'storage/': ['db/', ...LEAVES],
  'notify/': [...LEAVES],
  'audit/': ['db/', ...LEAVES],
  'auth/': ['audit/', 'db/', 'notify/', 'storage/', ...LEAVES],
  'fhir/': ['auth/', 'audit/', 'cases/', 'db/', 'notify/', 'storage/', ...LEAVES],
  'dicom/': ['fhir/', 'auth/', 'audit/', 'cases/', 'db/', 'storage/', ...LEAVES],
  'queues/': ['fhir/', 'db/', 'notify/', ...LEAVES],
  'workflow/': ['queues/', 'dicom/', 'fhir/', 'auth/', 'audit/', 'cases/', 'db/', 'notify/', 'storage/', ...LEAVES],
  'routes/': [
    'workflow/',
    'queues/',
    'dicom/',
    'fhir/',
    'auth/',
    'audit/',
    'cases/',
    'db/',
    'notify/',
    'storage/',
    ...LEAVES,
  ],
  'hub.ts': [
    'routes/',
    'workflow/',
    'queues/',
    'dicom/',
    'fhir/',
    'auth/',
    'audit/',
    'cases/',
    'db/',
    'notify/',
    'storage/',
    ...LEAVES,
  ],
  'cli/': [
    'hub.ts',
    'routes/',
    'workflow/',
    'queues/',
    'dicom/',
    'fhir/',
    'auth/',
    'audit/',
    'cases/',
    'db/',
    'notify/',
    'storage/',
    ...LEAVES,
  ],
  'main.ts': ['hub.ts', ...LEAVES],
};

/** Where the shipped code starts: the hub (`npm start`) and the operator's `hub` command (bin/hub.js). */
const ENTRY_POINTS = '^src/(main|cli/main)\\.ts$';

const escape = (path) => path.replace(/[.]/g, '\\.');
const pathOf = (entry) => `^src/${escape(entry)}${entry.endsWith('/') ? '' : '$'}`;

const layerRules = Object.entries(MAY_IMPORT).map(([layer, allowed]) => ({
  name: `layer:${layer}`,
  comment: `src/${layer} may import only ${allowed.length ? allowed.map((a) => `src/${a}`).join(', ') : 'nothing of ours'} (docs/architecture.md, "Layout")`,
  severity: 'error',
  from: { path: pathOf(layer), pathNot: '\\.test\\.ts$' },
  to: { path: '^src/', pathNot: [pathOf(layer), ...allowed.map(pathOf)] },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    ...layerRules,
    {
      name: 'every-src-folder-has-a-layer',
      comment: 'a new folder or root file under src/ needs its row in MAY_IMPORT (.dependency-cruiser.mjs)',
      severity: 'error',
      from: { path: '^src/', pathNot: [...Object.keys(MAY_IMPORT).map(pathOf), '\\.test\\.ts$'] },
      to: {},
    },
    {
      name: 'cases-is-pure',
      comment: 'src/cases/ is the domain: no I/O, no framework; it may read its own data files (node:module)',
      severity: 'error',
      from: { path: '^src/cases/' },
      to: { dependencyTypes: ['npm', 'npm-dev', 'core'], pathNot: ['^node_modules/@medplum/fhirtypes/', '^module$'] },
    },
    {
      name: 'src-imports-no-test-code',
      comment: 'code that ships never imports tests, test support, benchmarks or the demo',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: ['^(test|bench|demo)/', '\\.test\\.ts$'] },
    },
    {
      name: 'unit-tests-need-no-service',
      comment:
        'src/**/*.test.ts is the unit tier (npm run test:unit): no database, Redis, queue, hub, child process or DICOM peer; such a suite belongs under test/',
      severity: 'error',
      from: { path: '^src/.+\\.test\\.ts$' },
      to: {
        dependencyTypesNot: ['type-only'],
        path: [
          '^node_modules/(pg|ioredis|bullmq|@electric-sql/pglite)/',
          '^child_process$',
          '^src/(hub|main)\\.ts$',
          '^src/db/(database|migrate)\\.ts$',
          '^test/support/(test-hub|hub-process|smtp-sink|dicom/test-peer)\\.ts$',
        ],
      },
    },
    {
      name: 'src-reachable-from-an-entry-point',
      comment:
        'every module under src/ serves the hub (src/main.ts) or the operator command (src/cli/main.ts); a module only tests use belongs under test/',
      severity: 'error',
      from: { path: ENTRY_POINTS },
      to: { path: '^src/', pathNot: ['\\.test\\.ts$', ENTRY_POINTS], reachable: false },
    },
    {
      name: 'web-shares-types-only',
      comment:
        'the web app (web/) runs in the browser and talks to the hub over its public APIs: it may import types from src/, never code (issue 15)',
      severity: 'error',
      from: { path: '^web/' },
      to: { path: '^(src|test|bench|demo)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'nothing-imports-web',
      comment: 'the hub serves web/dist as files; no server, test or tool code imports the web app',
      severity: 'error',
      from: { path: '^(src|test|bench|demo)/' },
      to: { path: '^web/' },
    },
    {
      name: 'no-runtime-cycles',
      comment: 'modules that import each other at run time cannot be loaded or understood one at a time',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(data|coverage|web/dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'types', 'default'],
      mainFields: ['module', 'main', 'types'],
    },
  },
};
