/**
 * docker-compose.yml and the Dockerfile against the code: Docker cannot run here, so the contract
 * between them (variable names, health check, data volume) is checked by reading the files.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.ts';
import { REPO_ROOT } from './support/hub-process.ts';
import { HUB_NODE_FLAGS } from './support/node-flags.ts';
import { defined } from './support/defined.ts';

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean | null> | string[];
  healthcheck?: { test?: string | string[] };
  depends_on?: Record<string, { condition?: string }> | string[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  stop_grace_period?: string;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const compose = parse(fs.readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as ComposeFile;
const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
const hub = defined(compose.services.hub, 'a hub service in docker-compose.yml');

/** Compose's own interpolation, enough for this file: ${NAME}, ${NAME:-default}, $$. */
function interpolate(value: string, env: Record<string, string> = {}): string {
  return value
    .replace(
      /\$\{(\w+)(?::?-([^}]*))?\}/g,
      (_m, name: string, fallback: string | undefined) => env[name] || (fallback ?? ''),
    )
    .replaceAll('$$', '$');
}

/** The hub service's environment as compose would hand it over (list or map form). */
function hubEnvironment(): Record<string, string> {
  const environment = hub.environment ?? {};
  const entries: [string, string][] = Array.isArray(environment)
    ? environment.map((item) => {
        const eq = item.indexOf('=');
        return eq < 0 ? [item, ''] : [item.slice(0, eq), item.slice(eq + 1)];
      })
    : Object.entries(environment).map(([name, value]) => [name, value === null ? '' : String(value)]);
  return Object.fromEntries(entries.map(([name, value]) => [name, interpolate(value)]));
}

function durationMs(text: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(text);
  if (!match) {
    throw new Error(`unexpected duration ${text}`);
  }
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
}

describe('docker-compose.yml', () => {
  test('has the hub, PostgreSQL and Redis services', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['hub', 'postgres', 'redis']);
    expect(hub.build).toBeDefined();
  });

  test('every environment variable given to the hub is one src/config.ts reads', () => {
    const names = Object.keys(hubEnvironment());
    expect(names.length).toBeGreaterThan(0);
    const unknown = names.filter((name) => !CONFIG_VARIABLES.includes(name));
    expect(unknown).toEqual([]);
  });

  test('every variable src/config.ts reads is set explicitly for the hub', () => {
    const names = Object.keys(hubEnvironment());
    expect(CONFIG_VARIABLES.filter((name) => !names.includes(name))).toEqual([]);
  });

  test("the hub's values pass the hub's own validation", () => {
    const config = loadConfig(hubEnvironment());
    expect(config.databaseUrl).toBeDefined();
    expect(config.host).toBe('0.0.0.0');
  });

  test('the hub points at the postgres and redis services, and waits for them to be healthy', () => {
    const env = hubEnvironment();
    expect(new URL(defined(env.DATABASE_URL, "the hub's DATABASE_URL")).hostname).toBe('postgres');
    expect(new URL(defined(env.REDIS_URL, "the hub's REDIS_URL")).hostname).toBe('redis');
    expect(hub.depends_on).toMatchObject({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
  });

  test("the hub's healthcheck targets /healthz on its own port", () => {
    const check = [hub.healthcheck?.test ?? []].flat().join(' ');
    expect(check).toContain(`:${hubEnvironment().PORT}/healthz`);
  });

  test('PostgreSQL and Redis have health checks', () => {
    expect([compose.services.postgres?.healthcheck?.test].flat().join(' ')).toContain('pg_isready');
    expect([compose.services.redis?.healthcheck?.test].flat().join(' ')).toContain('ping');
  });

  test('DATA_DIR and the PostgreSQL data live on named volumes', () => {
    const named = Object.keys(compose.volumes ?? {});
    const mountedAt = (service: ComposeService, target: string): string | undefined => {
      for (const volume of service.volumes ?? []) {
        const [source, mountTarget] = typeof volume === 'string' ? volume.split(':') : [volume.source, volume.target];
        if (mountTarget === target) {
          return source;
        }
      }
      return undefined;
    };
    expect(named).toContain(mountedAt(hub, defined(hubEnvironment().DATA_DIR, "the hub's DATA_DIR")));
    expect(named).toContain(
      mountedAt(defined(compose.services.postgres, 'a postgres service'), '/var/lib/postgresql/data'),
    );
  });

  test('Docker waits longer than SHUTDOWN_GRACE_MS before killing the hub', () => {
    expect(durationMs(hub.stop_grace_period ?? '10s')).toBeGreaterThan(Number(hubEnvironment().SHUTDOWN_GRACE_MS));
  });
});

describe('Dockerfile', () => {
  test('uses the Node version the project pins', () => {
    const pinned = (
      JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies.node;
    expect(pinned).toBeDefined();
    expect(dockerfile).toMatch(new RegExp(`^ARG NODE_VERSION=${pinned!.replaceAll('.', '\\.')}$`, 'm'));
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}/m);
  });

  test('runs node src/main.ts, with the flags of npm start, as a non-root user with DATA_DIR on a volume', () => {
    expect(dockerfile).toMatch(/^CMD \[.*\]$/m);
    expect(JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!)).toEqual(['node', ...HUB_NODE_FLAGS, 'src/main.ts']);
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    const dataDir = /DATA_DIR=(\S+)/.exec(dockerfile)?.[1];
    expect(dockerfile).toContain(`VOLUME ["${dataDir}"]`);
    expect(hubEnvironment().DATA_DIR).toBe(dataDir);
  });

  test('has a HEALTHCHECK on /healthz', () => {
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
  });

  test('.dockerignore keeps local dependencies and data out of the build context', () => {
    const ignored = fs
      .readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'data', '.git']));
  });

  test('the image ships no test files: what the COPY lines take, less .dockerignore, holds no test', () => {
    const patterns = fs
      .readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    // Docker matches a pattern against the path and, for a folder, everything below it.
    const ignored = (file: string): boolean =>
      patterns.some((pattern) => path.matchesGlob(file, pattern) || path.matchesGlob(file, `${pattern}/**`));
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((match) =>
      (match[1] ?? '').split(/\s+/),
    );
    expect(copied).toEqual(expect.arrayContaining(['src', 'package.json']));
    const context = execFileSync('git', ['ls-files'], { cwd: REPO_ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((file) => file !== '' && !ignored(file));
    const shipped = context.filter((file) => copied.some((source) => file === source || file.startsWith(`${source}/`)));
    expect(shipped.length).toBeGreaterThan(50);
    expect(shipped.filter((file) => /\.test\.ts$|^test\/|^bench\/|^demo\//.test(file))).toEqual([]);
    // The check can fail: the source tree does hold unit tests beside the code.
    expect(execFileSync('git', ['ls-files', 'src/**/*.test.ts'], { cwd: REPO_ROOT, encoding: 'utf8' })).not.toBe('');
  });
});
