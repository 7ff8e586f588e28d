/** AuditEvent ids: UUID version 7 (RFC 9562), unique, and in the order of their time. */
import { auditEventId } from './audit-event.ts';

describe('auditEventId', () => {
  test('a version 7 UUID whose first 48 bits are the time in ms', () => {
    const id = auditEventId(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
  });

  test('unique within a millisecond, and later ids sort after earlier ones', () => {
    const now = Date.now();
    const same = Array.from({ length: 5000 }, () => auditEventId(now));
    expect(new Set(same).size).toBe(5000);
    const later = auditEventId(now + 1);
    expect(same.every((id) => id < later)).toBe(true);
  });
});
