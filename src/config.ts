/**
 * The hub's configuration: every environment variable it reads, validated in one place.
 * Nothing else in the code base reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => p + '//').join(' or ')}`,
  );

/** PS3.5 §6.2 AE: 1-16 characters of the default repertoire, no backslash or control characters. */
const aeTitle = z
  .string()
  .trim()
  .min(1)
  .max(16)
  .regex(/^[\x20-\x5b\x5d-\x7e]+$/, 'must be printable ASCII without a backslash');

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** express's names for address ranges, accepted in TRUST_PROXY. */
const PROXY_KEYWORDS = ['loopback', 'linklocal', 'uniquelocal'];

/** `address/prefix` (or a bare address) of IPv4 or IPv6. */
function isCidr(value: string): boolean {
  const [address = '', prefix, extra] = value.split('/');
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(address) && address.split('.').every((part) => Number(part) <= 255);
  const v6 = !v4 && /^[0-9a-fA-F:]+$/.test(address) && address.includes(':');
  const max = v4 ? 32 : 128;
  return (
    (v4 || v6) && extra === undefined && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max))
  );
}

/** An origin as browsers send it in the Origin header: `scheme://host[:port]`, nothing more. */
function isExactOrigin(value: string): boolean {
  try {
    const parsed = new URL(value);
    return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.origin === value;
  } catch {
    return false;
  }
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(?:\.\d{1,3}){3}$/.test(bare);
}

/** AUTH_SECRETS_KEY: the base64 (or base64url) of exactly 32 bytes, an AES-256 key. */
function isSecretsKey(value: string): boolean {
  const trimmed = value.trim();
  return (
    /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed) &&
    Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64').length === 32
  );
}

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** What one process does: serve HTTP and DIMSE (api), run queue workers (worker), relay the outbox (relay). */
export const HUB_ROLES = ['api', 'worker', 'relay'] as const;
export type HubRole = (typeof HUB_ROLES)[number];
/** An address, bare or with a display name: `no-reply@example.org`, `Hub <no-reply@example.org>`. */
const mailAddress = /^(?:[^<>@\r\n]*<[^\s<>()@,;:"]+@[^\s<>()@,;:"]+>|[^\s<>()@,;:"]+@[^\s<>()@,;:"]+)$/;

/** The environment variables, their defaults and their rules. Documented in docs/operations.md ("Configuration"). */
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
  FHIR_MAX_BODY_BYTES: positiveInt.default(40 * 1024 * 1024),
  BINARY_MAX_BYTES: positiveInt.default(512 * 1024 * 1024),
  OUTBOX_POLL_MS: positiveInt.default(250),
  OUTBOX_REDISPATCH_AFTER_MS: positiveInt.default(30_000),
  QUEUE_STALLED_JOB_MS: positiveInt.default(30_000),
  SHUTDOWN_GRACE_MS: positiveInt.default(10_000),
  DIMSE_HOST: z.string().min(1).default('127.0.0.1'),
  DIMSE_PORT: port.default(11112),
  DIMSE_AE_TITLE: aeTitle.default('HUB'),
  JURISDICTION_POLICY_FILE: z.string().trim().min(1).optional(),
  DIMSE_ALLOWED_CALLING_AE_TITLES: z
    .string()
    .default('')
    .refine(
      (value) => splitList(value).every((title) => aeTitle.safeParse(title).success),
      'must be a comma-separated list of AE titles (1-16 characters each, no backslash or control characters)',
    ),
  DIMSE_MAX_ASSOCIATIONS: positiveInt.default(64),
  DICOM_STAGE_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(1024 * 1024),
  DICOM_PERSON_DAILY_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(10 * 1024 * 1024 * 1024),
  HUB_ROLES: z
    .string()
    .default(HUB_ROLES.join(','))
    .refine(
      (value) =>
        splitList(value).length > 0 &&
        splitList(value).every((role) => (HUB_ROLES as readonly string[]).includes(role)),
      `must be a comma-separated list of ${HUB_ROLES.join(', ')}`,
    ),
  SMTP_URL: url(['smtp:', 'smtps:']).optional(),
  MAIL_FROM: z
    .string()
    .trim()
    .regex(mailAddress, 'must be an e-mail address, optionally with a display name: Name <address>')
    .default('Second Opinion Hub <no-reply@localhost>'),
  AUTH_REQUIRED: z.enum(['true', 'false'], { message: 'must be true or false' }).default('true'),
  AUTH_SESSION_IDLE_SECONDS: positiveInt.default(1800),
  AUTH_SESSION_MAX_SECONDS: positiveInt.default(43200),
  AUTH_SECRETS_KEY: z
    .string()
    .refine(isSecretsKey, 'must be the base64 of 32 random bytes (e.g. openssl rand -base64 32)')
    .optional(),
  CORS_ALLOWED_ORIGINS: z
    .string()
    .default('')
    .refine(
      (value) => splitList(value).every(isExactOrigin),
      'must be a comma-separated list of origins like https://viewer.example.org (scheme, host and port only, no path)',
    ),
  SUBSCRIPTION_ALLOWED_NETWORKS: z
    .string()
    .default('')
    .refine(
      (value) => splitList(value).every(isCidr),
      'must be a comma-separated list of CIDR blocks like 10.20.0.0/16 or fd00::/8',
    ),
  TRUST_PROXY: z
    .string()
    .default('')
    .refine(
      (value) =>
        /^\d{1,2}$/.test(value.trim()) ||
        splitList(value).every((item) => PROXY_KEYWORDS.includes(item) || isCidr(item)),
      'must be empty (no proxy), the number of proxies in front of the hub, or a comma-separated list of their addresses (CIDR, or loopback, linklocal, uniquelocal)',
    ),
  DASHBOARD_DIR: z.string().default(''),
  OHIF_VIEWER_URL: url(['http:', 'https:']).optional(),
  METRICS_PUBLIC: z.enum(['true', 'false'], { message: 'must be true or false' }).default('false'),
  AUDIT_ENABLED: z.enum(['true', 'false'], { message: 'must be true or false' }).default('true'),
  AUDIT_FLUSH_MS: positiveInt.default(100),
  AUDIT_BATCH_SIZE: positiveInt.default(500),
  AUDIT_JOURNAL_FSYNC: z.enum(['true', 'false'], { message: 'must be true or false' }).default('false'),
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
  /** After this long, a dispatched event whose job is not finished must still be in Redis, or is added again. */
  readonly outboxRedispatchAfterMs: number;
  /** How long a running job's lock lasts unrenewed: a dead worker's job runs again within this and half again. */
  readonly queueStalledJobMs: number;
  readonly shutdownGraceMs: number;
  readonly dimseHost: string;
  /** 0 picks a free port; the chosen one is `Hub.dimsePort`. */
  readonly dimsePort: number;
  readonly dimseAeTitle: string;
  /** The operator's jurisdiction policy (one JSON document or a list of versions); unset: the shipped default. */
  readonly jurisdictionPolicyFile: string | undefined;
  /** Calling AE titles allowed to associate; undefined allows any. */
  readonly dimseAllowedCallingAeTitles: readonly string[] | undefined;
  /** Associations the DIMSE listener holds at once; one more is rejected (local limit exceeded). */
  readonly dimseMaxAssociations: number;
  /**
   * DICOM instances up to this size are staged: their bytes committed with their index rows, one
   * WAL flush for both, and installed as files behind the answer (migration 025). 0: none are.
   * Instances over 1 MiB are never held in memory, so never staged.
   */
  readonly dicomStageMaxBytes: number;
  /**
   * The bytes of DICOM instances one person (a user's token) may store through STOW-RS in any 24
   * hours (routes/dicomweb/stow-quota.ts); 0: no limit. System clients and C-STORE are not limited.
   */
  readonly dicomPersonDailyBytes: number;
  /** The roles this process runs (HUB_ROLES). */
  readonly roles: readonly HubRole[];
  /** Unset: e-mails are written as .eml files under `${dataDir}/mail`. */
  readonly smtpUrl: string | undefined;
  readonly mailFrom: string;
  /** Refuse requests to /fhir and /dicomweb that carry no access token. False only on a loopback HOST (development). */
  readonly authRequired: boolean;
  /** A login session ends after this long unused, and this long after the login at the latest. */
  readonly authSessionIdleSeconds: number;
  readonly authSessionMaxSeconds: number;
  /**
   * The AES-256 key (base64) that encrypts TOTP secrets at rest; unset: a key generated once in
   * `${dataDir}/auth-secrets.key` (auth/secret-box.ts). Every process on one database needs the same key.
   */
  readonly authSecretsKey: string | undefined;
  /** Origins whose browser scripts may call /fhir, /dicomweb, /oauth2 and /.well-known (CORS); empty: none. */
  readonly corsAllowedOrigins: readonly string[];
  /**
   * Networks (CIDR) that subscription notifications may be posted to although they are not public
   * (a hospital's own network; loopback for a local receiver); empty: public addresses over https only.
   */
  readonly subscriptionAllowedNetworks: readonly string[];
  /**
   * Which proxies' X-Forwarded-For the hub believes (express's `trust proxy`): false for none, a hop
   * count, or their addresses; rate limits and audit records then name the client behind them.
   */
  readonly trustProxy: false | number | string[];
  /** Where the built web app is (DASHBOARD_DIR); undefined: web/dist, where `npm ci` builds it. */
  readonly dashboardDir: string | undefined;
  /** A site's OHIF viewer (OHIF_VIEWER_URL); the web app links studies to it. Undefined: no such link. */
  readonly ohifViewerUrl: string | undefined;
  /** Serve /metrics without a token (for a scraper on a private network); false: an admin token is needed. */
  readonly metricsPublic: boolean;
  /** Write AuditEvents (false only to measure their cost). */
  readonly auditEnabled: boolean;
  /** Read audits are stored in the database at least this often, or when auditBatchSize wait. */
  readonly auditFlushMs: number;
  readonly auditBatchSize: number;
  /** Acknowledge a read only after its audit record is fdatasync'd (survives a power loss; slower). */
  readonly auditJournalFsync: boolean;
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
  if (c.AUTH_REQUIRED === 'false' && !isLoopbackHost(c.HOST)) {
    throw new ConfigError(
      `Invalid configuration: AUTH_REQUIRED: may be false only while HOST is a loopback address (127.0.0.1, ::1 or localhost), not ${c.HOST}`,
    );
  }
  if (splitList(c.DIMSE_ALLOWED_CALLING_AE_TITLES).length === 0 && !isLoopbackHost(c.DIMSE_HOST)) {
    throw new ConfigError(
      `Invalid configuration: DIMSE_ALLOWED_CALLING_AE_TITLES: must list the peers' AE titles while DIMSE_HOST (${c.DIMSE_HOST}) is not a loopback address`,
    );
  }
  const baseUrl = (c.BASE_URL ?? `http://${c.HOST.includes(':') ? `[${c.HOST}]` : c.HOST}:${c.PORT}`).replace(
    /\/+$/,
    '',
  );
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
    outboxRedispatchAfterMs: c.OUTBOX_REDISPATCH_AFTER_MS,
    queueStalledJobMs: c.QUEUE_STALLED_JOB_MS,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
    dimseHost: c.DIMSE_HOST,
    dimsePort: c.DIMSE_PORT,
    dimseAeTitle: c.DIMSE_AE_TITLE,
    jurisdictionPolicyFile:
      c.JURISDICTION_POLICY_FILE === undefined ? undefined : path.resolve(c.JURISDICTION_POLICY_FILE),
    dimseAllowedCallingAeTitles:
      splitList(c.DIMSE_ALLOWED_CALLING_AE_TITLES).length > 0
        ? splitList(c.DIMSE_ALLOWED_CALLING_AE_TITLES)
        : undefined,
    dimseMaxAssociations: c.DIMSE_MAX_ASSOCIATIONS,
    dicomStageMaxBytes: c.DICOM_STAGE_MAX_BYTES,
    dicomPersonDailyBytes: c.DICOM_PERSON_DAILY_BYTES,
    roles: HUB_ROLES.filter((role) => splitList(c.HUB_ROLES).includes(role)),
    smtpUrl: c.SMTP_URL,
    mailFrom: c.MAIL_FROM,
    authRequired: c.AUTH_REQUIRED === 'true',
    authSessionIdleSeconds: c.AUTH_SESSION_IDLE_SECONDS,
    authSessionMaxSeconds: c.AUTH_SESSION_MAX_SECONDS,
    authSecretsKey: c.AUTH_SECRETS_KEY,
    corsAllowedOrigins: splitList(c.CORS_ALLOWED_ORIGINS),
    subscriptionAllowedNetworks: splitList(c.SUBSCRIPTION_ALLOWED_NETWORKS),
    trustProxy: /^\d{1,2}$/.test(c.TRUST_PROXY.trim())
      ? Number(c.TRUST_PROXY.trim())
      : splitList(c.TRUST_PROXY).length > 0
        ? splitList(c.TRUST_PROXY)
        : false,
    dashboardDir: c.DASHBOARD_DIR.trim() === '' ? undefined : c.DASHBOARD_DIR.trim(),
    ohifViewerUrl: c.OHIF_VIEWER_URL,
    metricsPublic: c.METRICS_PUBLIC === 'true',
    auditEnabled: c.AUDIT_ENABLED === 'true',
    auditFlushMs: c.AUDIT_FLUSH_MS,
    auditBatchSize: c.AUDIT_BATCH_SIZE,
    auditJournalFsync: c.AUDIT_JOURNAL_FSYNC === 'true',
  };
}
