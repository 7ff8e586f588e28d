/** /dashboard/callback: the hub's login sends the browser here with the code. */
import { Alert, Button, Center, Loader, Stack } from '@mantine/core';
import { useEffect, useRef, useState } from 'react';
import { useNavigate } from 'react-router';
import { completeLogin, startLogin } from './auth.ts';

export function Callback() {
  const navigate = useNavigate();
  const [error, setError] = useState<string>();
  // The code is good once: React's development double effects must not spend it twice.
  const started = useRef(false);
  useEffect(() => {
    if (started.current) {
      return;
    }
    started.current = true;
    completeLogin(new URLSearchParams(window.location.search)).then(
      (returnTo) => navigate(returnTo, { replace: true }),
      (err: unknown) => setError(err instanceof Error ? err.message : String(err)),
    );
  }, [navigate]);
  if (error !== undefined) {
    return (
      <Center mt="xl">
        <Stack maw={480}>
          <Alert color="red" title="Sign-in failed" role="alert">
            {error}
          </Alert>
          <Button onClick={() => void startLogin('/')}>Sign in again</Button>
        </Stack>
      </Center>
    );
  }
  return (
    <Center mt="xl">
      <Loader aria-label="Signing in" />
    </Center>
  );
}
