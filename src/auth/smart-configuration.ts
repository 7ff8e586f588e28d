/**
 * SMART discovery (App Launch 2.0 §"Conformance", Backend Services §"Discovery"): what the hub's
 * authorization server offers, at /.well-known/smart-configuration and under the FHIR base, and the
 * public keys of its tokens at /.well-known/jwks.json. Only what exists is advertised: no refresh
 * tokens (offline_access), no patient/ scopes, no patient picker for staff, id_tokens signed ES256
 * only (so not "sso-openid-connect", which asks for RS256).
 */
import express from 'express';
import type { Router } from 'express';
import type { AccessTokens } from './access-tokens.ts';
import { ACCESS_TOKEN_ALGORITHM } from './signing-keys.ts';
import { ASSERTION_ALGORITHMS } from './jwks.ts';
import { HUB_ADMIN_SCOPE } from './scopes.ts';

export const JWKS_PATH = '/.well-known/jwks.json';

export interface AuthorizationServerUrls {
  issuer: string;
  tokenUrl: string;
  authorizeUrl: string;
  revokeUrl: string;
  jwksUrl: string;
}

export interface SmartConfiguration {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint: string;
  token_endpoint_auth_methods_supported: string[];
  token_endpoint_auth_signing_alg_values_supported: string[];
  grant_types_supported: string[];
  response_types_supported: string[];
  code_challenge_methods_supported: string[];
  id_token_signing_alg_values_supported: string[];
  scopes_supported: string[];
  capabilities: string[];
}

export function smartConfiguration(urls: AuthorizationServerUrls): SmartConfiguration {
  return {
    issuer: urls.issuer,
    jwks_uri: urls.jwksUrl,
    authorization_endpoint: urls.authorizeUrl,
    token_endpoint: urls.tokenUrl,
    revocation_endpoint: urls.revokeUrl,
    // "none": public clients (people's logins, PKCE); private_key_jwt: Backend Services.
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    grant_types_supported: ['authorization_code', 'client_credentials'],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    id_token_signing_alg_values_supported: [ACCESS_TOKEN_ALGORITHM],
    // Examples of the grammar: any user/ or system/<Type>.<cruds> subset, or v1 .read/.write/.*;
    // hub:admin is the hub's own (system clients: /admin/queues and /metrics), implied by none of them.
    scopes_supported: [
      'openid',
      'fhirUser',
      'launch/patient',
      'user/*.cruds',
      'user/*.rs',
      'user/*.read',
      'user/*.write',
      'user/*.*',
      'system/*.cruds',
      'system/*.rs',
      'system/*.read',
      'system/*.write',
      'system/*.*',
      HUB_ADMIN_SCOPE,
    ],
    capabilities: [
      'launch-standalone',
      'client-public',
      'client-confidential-asymmetric',
      'permission-v2',
      'permission-v1',
      'permission-user',
    ],
  };
}

export function createSmartConfigurationRoutes(urls: AuthorizationServerUrls, tokens: AccessTokens): Router {
  const routes = express.Router();
  const document = JSON.stringify(smartConfiguration(urls));
  routes.get(['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration'], (_req, res) => {
    res.locals.route = 'smart-configuration';
    res.setHeader('Cache-Control', 'public, max-age=3600');
    res.type('application/json').send(document);
  });
  routes.get(JWKS_PATH, async (_req, res, next) => {
    res.locals.route = 'jwks';
    try {
      const jwks = await tokens.publicJwks();
      res.setHeader('Cache-Control', 'public, max-age=300');
      res.type('application/json').send(JSON.stringify(jwks));
    } catch (err) {
      next(err);
    }
  });
  return routes;
}
