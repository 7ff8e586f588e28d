/** The few cookies of the authorization server: parsing the Cookie header and writing Set-Cookie. */
import type { Request, Response } from 'express';

export const SESSION_COOKIE = 'hub_session';
export const CSRF_COOKIE = 'hub_csrf';
/** Only the authorization server's own paths see these cookies. */
const COOKIE_PATH = '/oauth2';

export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) {
    return undefined;
  }
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) {
      const value = part.slice(index + 1).trim();
      return /^[A-Za-z0-9_-]{1,128}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/**
 * HttpOnly, Secure on https; SameSite=Lax for the session (it must come along when an app sends the
 * browser to the authorization endpoint), Strict for the CSRF token (only our own form posts it).
 */
export function setCookie(
  res: Response,
  name: string,
  value: string,
  options: { secure: boolean; sameSite: 'Lax' | 'Strict'; maxAgeSeconds?: number },
): void {
  res.append(
    'Set-Cookie',
    `${name}=${value}; Path=${COOKIE_PATH}; HttpOnly; SameSite=${options.sameSite}` +
      `${options.maxAgeSeconds === undefined ? '' : `; Max-Age=${options.maxAgeSeconds}`}${options.secure ? '; Secure' : ''}`,
  );
}

export function clearCookie(res: Response, name: string, secure: boolean): void {
  res.append(
    'Set-Cookie',
    `${name}=; Path=${COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age=0${secure ? '; Secure' : ''}`,
  );
}
