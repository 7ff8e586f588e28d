/** The app's routes, under /dashboard. */
import { Container, Title } from '@mantine/core';

export function App() {
  return (
    <Container size="lg" py="md">
      <Title order={1}>Second Opinion Hub</Title>
    </Container>
  );
}
