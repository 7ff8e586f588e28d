import { useEffect, useState } from 'react';

/**
 * The time, to the minute, renewed each minute: the clocks count business days from it, and the
 * "overdue" and "due this week" searches place it, so a case falls due on screen without a reload.
 */
export function useNow(): Date {
  const minute = () => new Date(Math.floor(Date.now() / 60_000) * 60_000);
  const [now, setNow] = useState(minute);
  useEffect(() => {
    const timer = window.setInterval(() => {
      const next = minute();
      setNow((previous) => (previous.getTime() === next.getTime() ? previous : next));
    }, 5_000);
    return () => window.clearInterval(timer);
  }, []);
  return now;
}
