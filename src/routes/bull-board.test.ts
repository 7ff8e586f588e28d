/** What Bull Board's answers may show of a failed job: its reason and stack, redacted like a dead letter's error. */
import { redactFailures } from './bull-board.ts';

describe('Bull Board answers', () => {
  test('an address in a failure reason or stack trace becomes <address>; ids and other fields stay', () => {
    const body = {
      queues: [
        {
          name: 'notifications',
          jobs: [
            {
              id: 'outbox-1',
              data: { notificationId: 'n-1' },
              failedReason: 'upstream refused delivery to jane.roe@example.org',
              stacktrace: ['Error: 550 jane.roe@example.org unknown\n    at send (mailer.ts:1:1)'],
            },
          ],
        },
      ],
    };
    expect(redactFailures(body)).toEqual({
      queues: [
        {
          name: 'notifications',
          jobs: [
            {
              id: 'outbox-1',
              data: { notificationId: 'n-1' },
              failedReason: 'upstream refused delivery to <address>',
              stacktrace: ['Error: 550 <address> unknown\nat send (mailer.ts:1:1)'],
            },
          ],
        },
      ],
    });
    expect(JSON.stringify(redactFailures(body))).not.toContain('jane.roe');
  });
});
