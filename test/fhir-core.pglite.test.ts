import { describeFhirCore } from './support/core-suite.ts';

// The same core suite as fhir-core.test.ts, on the embedded database `npm start` uses by default.
describeFhirCore('pglite');
