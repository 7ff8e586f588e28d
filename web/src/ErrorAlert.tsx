/** An API error in words: the OperationOutcome's text, never a blank screen. */
import { Alert } from '@mantine/core';
import { SigningIn } from './fhir.ts';

export function ErrorAlert({ error, title = 'The hub refused the request' }: { error: unknown; title?: string }) {
  if (error instanceof SigningIn) {
    return null;
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    <Alert color="red" title={title} role="alert">
      {message}
    </Alert>
  );
}
