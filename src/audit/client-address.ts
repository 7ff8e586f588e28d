/**
 * The client's network address, as the sign-in lock-outs, the rate limits and the audit trail count
 * and record it. Behind a proxy TRUST_PROXY names, express takes req.ip from X-Forwarded-For; with a
 * hop count or an address keyword, whatever string the client put there can come through
 * ("not-an-ip <b>x</b>"), which would give it a fresh limit per request and put its own words in
 * the audit record. Only an IP address is taken from there; otherwise the socket's peer is.
 */
import net from 'node:net';
import type { Request } from 'express';

export function clientAddress(req: Request): string | undefined {
  const forwarded = req.ip;
  return forwarded !== undefined && net.isIP(forwarded) !== 0 ? forwarded : (req.socket.remoteAddress ?? undefined);
}
