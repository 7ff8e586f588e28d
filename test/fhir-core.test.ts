import { describeFhirCore } from './support/core-suite.ts';

describeFhirCore('postgres');
