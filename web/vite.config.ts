/**
 * The web app's build (`npm run build:web`, run by `npm ci` through `prepare`): a static bundle in
 * web/dist that the hub serves at /dashboard (src/routes/dashboard.ts). Hashed file names under
 * assets/, so the hub can let browsers keep them for a year; no inline script, so the page runs
 * under a CSP without 'unsafe-inline'.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/dashboard/',
  // The hub's own pages are the only network the app talks to; nothing is fetched from elsewhere.
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // No polyfill script: every browser the app supports has modulepreload.
    modulePreload: { polyfill: false },
    // Mantine and React together are over Vite's 500 kB warning; one bundle is fine for this app.
    chunkSizeWarningLimit: 1500,
    sourcemap: false,
    rolldownOptions: {
      onwarn(warning, warn) {
        // Mantine marks its modules "use client" for React Server Components, which a plain SPA ignores.
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') {
          warn(warning);
        }
      },
    },
  },
  server: {
    // `npx vite web` for development: the API comes from a hub on 127.0.0.1:8080.
    proxy: {
      '/fhir': 'http://127.0.0.1:8080',
      '/oauth2': 'http://127.0.0.1:8080',
      '/.well-known': 'http://127.0.0.1:8080',
    },
  },
});
