/**
 * The hub's configuration: every environment variable it reads, validated in one place.
 * Nothing else in the code base reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const url = (protocols: string[]) =>
  z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => p + '//').join(' or ')}`);

/** PS3.5 §6.2 AE: 1-16 characters of the default repertoire, no backslash or control characters. */
const aeTitle = z.string().trim().min(1).max(16).regex(/^[\x20-\x5b\x5d-\x7e]+$/, 'must be printable ASCII without a backslash');

function splitList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
}

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The environment variables, their defaults and their rules. Documented in README.md. */
const schema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(8080),
  BASE_URL: url(['http:', 'https:']).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  DATABASE_POOL_SIZE: positiveInt.default(10),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().min(1).default('hub'),
  LOG_LEVEL: logLevel.default('info'),
  FHIR_MAX_BODY_BYTES: positiveInt.default(16 * 1024 * 1024),
  BINARY_MAX_BYTES: positiveInt.default(512 * 1024 * 1024),
  OUTBOX_POLL_MS: positiveInt.default(250),
  SHUTDOWN_GRACE_MS: positiveInt.default(10_000),
  DIMSE_HOST: z.string().min(1).default('127.0.0.1'),
  DIMSE_PORT: port.default(11112),
  DIMSE_AE_TITLE: aeTitle.default('HUB'),
  DIMSE_ALLOWED_CALLING_AE_TITLES: z.string().default('').refine(
    (value) => splitList(value).every((title) => aeTitle.safeParse(title).success),
    'must be a comma-separated list of AE titles (1-16 characters each, no backslash or control characters)',
  ),
});

/** The names of every environment variable the hub reads (docker-compose.yml is checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

export interface HubConfig {
  readonly host: string;
  readonly port: number;
  /** Public base URL of the hub, without a trailing slash; the FHIR base is `${baseUrl}/fhir`. */
  readonly baseUrl: string;
  readonly dataDir: string;
  /** Unset means the embedded PGlite database under dataDir. */
  readonly databaseUrl: string | undefined;
  readonly databasePoolSize: number;
  readonly redisUrl: string;
  readonly queuePrefix: string;
  readonly logLevel: z.infer<typeof logLevel>;
  readonly fhirMaxBodyBytes: number;
  readonly binaryMaxBytes: number;
  readonly outboxPollMs: number;
  readonly shutdownGraceMs: number;
  readonly dimseHost: string;
  /** 0 picks a free port; the chosen one is `Hub.dimsePort`. */
  readonly dimsePort: number;
  readonly dimseAeTitle: string;
  /** Calling AE titles allowed to associate; undefined allows any. */
  readonly dimseAllowedCallingAeTitles: readonly string[] | undefined;
}

export class ConfigError extends Error {}

/** Reads and validates the configuration; throws a ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): HubConfig {
  const relevant: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      relevant[name] = value;
    }
  }
  const parsed = schema.safeParse(relevant);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  const baseUrl = (c.BASE_URL ?? `http://${c.HOST.includes(':') ? `[${c.HOST}]` : c.HOST}:${c.PORT}`).replace(/\/+$/, '');
  return {
    host: c.HOST,
    port: c.PORT,
    baseUrl,
    dataDir: path.resolve(c.DATA_DIR),
    databaseUrl: c.DATABASE_URL,
    databasePoolSize: c.DATABASE_POOL_SIZE,
    redisUrl: c.REDIS_URL,
    queuePrefix: c.QUEUE_PREFIX,
    logLevel: c.LOG_LEVEL,
    fhirMaxBodyBytes: c.FHIR_MAX_BODY_BYTES,
    binaryMaxBytes: c.BINARY_MAX_BYTES,
    outboxPollMs: c.OUTBOX_POLL_MS,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
    dimseHost: c.DIMSE_HOST,
    dimsePort: c.DIMSE_PORT,
    dimseAeTitle: c.DIMSE_AE_TITLE,
    dimseAllowedCallingAeTitles: splitList(c.DIMSE_ALLOWED_CALLING_AE_TITLES).length > 0
      ? splitList(c.DIMSE_ALLOWED_CALLING_AE_TITLES)
      : undefined,
  };
}
