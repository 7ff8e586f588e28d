/**
 * The notification e-mails. They say that something happened and link to the hub; they never hold
 * clinical detail, a name, an identifier or the case's state, because e-mail is neither private nor
 * access-controlled. Reading the case behind the link requires signing in.
 */

export const NOTIFICATION_KINDS = [
  'case-status-changed',
  'information-requested',
  'report-released',
  'report-ready',
  'clarification-requested',
  'clarification-answered',
  'report-amended',
  'report-updated',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

interface Template {
  subject: string;
  /** One or two plain sentences, no markup. */
  body: string;
  action: string;
}

const TEMPLATES: Record<NotificationKind, Template> = {
  'case-status-changed': {
    subject: 'A second-opinion case has been updated',
    body: 'There is an update on a second-opinion case you take part in.',
    action: 'Sign in to see it',
  },
  'information-requested': {
    subject: 'A specialist has a question about a second-opinion case',
    body: 'The specialist reviewing a second-opinion case you referred has asked for more information.',
    action: 'Sign in to answer',
  },
  'report-released': {
    subject: 'A second-opinion report is ready for you',
    body: 'The consultation report for a second-opinion case you referred has been released to you.',
    action: 'Sign in to read it',
  },
  'report-ready': {
    subject: 'Your second opinion is ready',
    body: 'The second opinion you asked for is ready, and your physician has received it.',
    action: 'Sign in to read it',
  },
  'clarification-requested': {
    subject: 'A question about a second opinion you wrote',
    body: 'The referring physician has asked a question about a consultation report you wrote.',
    action: 'Sign in to answer',
  },
  'clarification-answered': {
    subject: 'The specialist has answered your question',
    body: 'The specialist has answered your question about a second-opinion report.',
    action: 'Sign in to read the answer',
  },
  'report-amended': {
    subject: 'A second-opinion report has been amended',
    body: 'The consultation report for a second-opinion case you referred has been amended; the earlier version stays on file.',
    action: 'Sign in to read it',
  },
  'report-updated': {
    subject: 'Your second opinion has been updated',
    body: 'The specialist has amended the second opinion you asked for, and your physician has been told.',
    action: 'Sign in to read it',
  },
};

const FOOTER =
  'For your privacy this e-mail holds no details of the case. It was sent automatically; replies are not read.';

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** The link to a case on the hub: its id only. */
export function caseLink(baseUrl: string, caseReference: string): string {
  const id = caseReference.slice(caseReference.indexOf('/') + 1);
  return `${baseUrl}/dashboard/cases/${encodeURIComponent(id)}`;
}

export function renderNotification(kind: NotificationKind, link: string): RenderedMail {
  const template = TEMPLATES[kind];
  const text = `Hello,\n\n${template.body}\n\n${template.action}:\n${link}\n\n${FOOTER}\n\nSecond Opinion Hub\n`;
  const html =
    '<!doctype html><html><body style="font-family:sans-serif">' +
    `<p>Hello,</p><p>${escapeHtml(template.body)}</p>` +
    `<p><a href="${escapeHtml(link)}">${escapeHtml(template.action)}</a></p>` +
    `<p style="color:#555;font-size:small">${escapeHtml(FOOTER)}</p><p>Second Opinion Hub</p>` +
    '</body></html>';
  return { subject: template.subject, text, html };
}
