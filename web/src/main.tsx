/**
 * The web app's entry: Mantine for the components, TanStack Query for what comes from the hub, and
 * the routes under /dashboard. Mantine's run-time <style> elements (CSS variables, responsive
 * classes) are turned off: the page's CSP allows no inline style element, and the default theme's
 * variables are already in @mantine/core/styles.css.
 */
import '@mantine/core/styles.css';
import './app.css';
import { Loader, MantineProvider, createTheme } from '@mantine/core';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';

// Every spinner is a status: its aria-label is then announced, and axe-core allows a label on it.
const theme = createTheme({
  components: { Loader: Loader.extend({ defaultProps: { role: 'status' } }) },
});

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { retry: false, refetchOnWindowFocus: false, staleTime: 10_000 },
  },
});

const root = document.getElementById('root');
if (root === null) {
  throw new Error('index.html has no #root element');
}
createRoot(root).render(
  <StrictMode>
    <MantineProvider theme={theme} withCssVariables={false} withGlobalClasses={false}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);
