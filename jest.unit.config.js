/** `npm run test:unit`: the unit tier, the suites beside the code in src/ and web/src/, which need no service (CONTRIBUTING.md). */
import base from './jest.config.js';

export default { ...base, testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/web/src/**/*.test.ts'] };
