/** The signed-in person's start page. */
import { Text } from '@mantine/core';
import type { Session } from './auth.ts';

export function Home({ session }: { session: Session }) {
  return <Text>Signed in{session.fhirUser ? ` as ${session.fhirUser}` : ''}.</Text>;
}
