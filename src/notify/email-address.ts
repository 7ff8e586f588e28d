/**
 * Whether a string is an e-mail address the hub can write to, in time linear in its length: an
 * address longer than RFC 5321 allows (254 characters) is refused before any pattern runs, and the
 * patterns themselves have no nested or adjacent repetition that could backtrack. (The earlier
 * `[^@\s]+@[^@\s]+\.[^@\s]+` backtracked quadratically: 16 MiB of `a@....` froze the event loop.)
 */
export const MAX_EMAIL_ADDRESS_LENGTH = 254;

const LOCAL_PART = /^[^\s<>()@,;:"]+$/;
const DOMAIN = /^[^\s<>()@,;:".]+(?:\.[^\s<>()@,;:".]+)+$/;

export function isEmailAddress(value: string): boolean {
  if (value.length > MAX_EMAIL_ADDRESS_LENGTH) {
    return false;
  }
  const at = value.indexOf('@');
  if (at <= 0 || at !== value.lastIndexOf('@')) {
    return false;
  }
  return LOCAL_PART.test(value.slice(0, at)) && DOMAIN.test(value.slice(at + 1));
}
