/**
 * The app's routes under /dashboard. Every route but the login callback needs a signed-in person:
 * without a token the browser goes to the hub's login page and comes back to the same path.
 */
import { Box, Button, Center, Container, Group, Loader, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { BrowserRouter, Link, Route, Routes, useLocation } from 'react-router';
import { currentSession, signOut, startLogin } from './auth.ts';
import type { Session } from './auth.ts';
import { MyTasks } from './reviewer/MyTasks.tsx';
import { ReviewerCase } from './reviewer/ReviewerCase.tsx';
import { isReviewerRole } from './reviewer/roles.ts';
import { Callback } from './Callback.tsx';
import { CasePage } from './CasePage.tsx';
import { PatientCasePage } from './patient/PatientCasePage.tsx';
import { PatientHome } from './patient/PatientHome.tsx';
import { PhysicianCasePage } from './physician/PhysicianCasePage.tsx';
import { Queues } from './Queues.tsx';
import { StaffLinks } from './queues/StaffOnly.tsx';
import { Reconciliation } from './Reconciliation.tsx';
import { Worklist } from './Worklist.tsx';

function SignedOut() {
  return (
    <Center mt="xl">
      <Button onClick={() => void startLogin('/')}>Sign in</Button>
    </Center>
  );
}

function SignedIn({ children }: { children: (session: Session) => ReactNode }) {
  const location = useLocation();
  const queryClient = useQueryClient();
  const [session, setSession] = useState(currentSession);
  const [signedOut, setSignedOut] = useState(false);
  useEffect(() => {
    if (session === undefined && !signedOut) {
      void startLogin(`${location.pathname}${location.search}`);
    }
  }, [session, signedOut, location.pathname, location.search]);
  if (signedOut) {
    return <SignedOut />;
  }
  if (session === undefined) {
    return (
      <Center mt="xl">
        <Loader aria-label="Signing in" />
      </Center>
    );
  }
  const leave = async (): Promise<void> => {
    await signOut(session);
    queryClient.clear();
    setSignedOut(true);
    setSession(undefined);
  };
  return (
    <>
      <Box component="header" className="app-header">
        <Group justify="space-between">
          <Title order={1} size="h3">
            <Link to="/" className="home-link">
              Second Opinion Hub
            </Link>
          </Title>
          <Group gap="sm">
            <StaffLinks session={session} />
            <Text size="sm" c="dimmed" data-testid="signed-in-role">
              {session.role ?? 'signed in'}
            </Text>
            <Button variant="subtle" size="compact-sm" onClick={() => void leave()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </Box>
      <Container size="xl" component="main" py="md">
        {children(session)}
      </Container>
    </>
  );
}

function PageNotFound() {
  return (
    <Text role="alert">
      This page does not exist. <Link to="/">Back to the cases</Link>
    </Text>
  );
}

/**
 * The home page by role: specialists, radiologists and pathologists their own tasks; a patient their
 * own requests (web/src/patient); coordinators, admins and physicians the cases.
 */
function Home({ session }: { session: Session }) {
  if (isReviewerRole(session.role)) {
    return <MyTasks session={session} />;
  }
  if (session.role === 'patient') {
    return <PatientHome />;
  }
  return <Worklist />;
}

/**
 * A case by role: reviewers work on it in their workspace; a referring physician and a patient have
 * their own views (web/src/physician, web/src/patient); everyone else reads the case page.
 */
function CaseFor({ session }: { session: Session }) {
  if (session.role === 'patient') {
    return <PatientCasePage />;
  }
  if (session.role === 'referring-physician') {
    return <PhysicianCasePage />;
  }
  return isReviewerRole(session.role) ? <ReviewerCase session={session} /> : <CasePage />;
}

export function App() {
  return (
    <BrowserRouter basename="/dashboard">
      <Routes>
        <Route path="/callback" element={<Callback />} />
        <Route path="/" element={<SignedIn>{(session) => <Home session={session} />}</SignedIn>} />
        <Route path="/cases/:id" element={<SignedIn>{(session) => <CaseFor session={session} />}</SignedIn>} />
        <Route
          path="/reconciliation"
          element={<SignedIn>{(session) => <Reconciliation session={session} />}</SignedIn>}
        />
        <Route path="/queues" element={<SignedIn>{(session) => <Queues session={session} />}</SignedIn>} />
        <Route path="*" element={<SignedIn>{() => <PageNotFound />}</SignedIn>} />
      </Routes>
    </BrowserRouter>
  );
}
