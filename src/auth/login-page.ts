/**
 * The hub's login page: a plain server-rendered HTML form, no scripts at all, the authorization
 * request carried in hidden fields and re-checked when the form comes back, and a CSRF token that must
 * match the cookie set with the page (double submit). Its Content-Security-Policy allows only its own
 * stylesheet (by hash) and form posts to itself.
 */
import { createHash } from 'node:crypto';
import type { Response } from 'express';

const STYLE = `body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}
.error{background:#fdecea;border:1px solid #d93025;padding:.75rem;margin-top:1rem}
.hint{color:#555;font-size:.9rem;font-weight:normal}`;
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function securityHeaders(res: Response, formTarget?: string): void {
  // A redirect after the form post counts as a form-action target in some browsers: allow the client's origin.
  const formAction = formTarget === undefined ? "'self'" : `'self' ${formTarget}`;
  res.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
  );
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>${body}</body></html>`;
}

export interface LoginForm {
  action: string;
  clientId: string;
  /** The authorization request's parameters, sent back unchanged. */
  parameters: Record<string, string>;
  csrfToken: string;
  email?: string;
  error?: string;
  /** The origin the client's redirect URI is on. */
  redirectOrigin: string;
}

export function sendLoginPage(res: Response, status: number, form: LoginForm): void {
  const hidden = Object.entries(form.parameters)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n');
  const body = `<h1>Sign in to the Second Opinion Hub</h1>
<p>${escapeHtml(form.clientId)} asks to act for you.</p>
${form.error ? `<p class="error" role="alert">${escapeHtml(form.error)}</p>` : ''}
<form method="post" action="${escapeHtml(form.action)}">
${hidden}
<input type="hidden" name="csrf" value="${escapeHtml(form.csrfToken)}">
<label for="email">E-mail address</label>
<input id="email" name="email" type="email" autocomplete="username" required value="${escapeHtml(form.email ?? '')}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="totp">Authenticator code <span class="hint">(staff: the 6 digits your app shows)</span></label>
<input id="totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8">
<button type="submit">Sign in</button>
</form>`;
  securityHeaders(res, form.redirectOrigin);
  res.status(status).type('text/html').send(page('Sign in', body));
}

/** An error shown to the person, for requests that must not be redirected back (unknown client, bad redirect URI). */
export function sendErrorPage(res: Response, status: number, message: string): void {
  securityHeaders(res);
  res
    .status(status)
    .type('text/html')
    .send(page('Sign-in error', `<h1>Cannot sign in</h1><p class="error" role="alert">${escapeHtml(message)}</p>`));
}
