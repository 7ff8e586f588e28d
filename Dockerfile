# syntax=docker/dockerfile:1
# The hub's image: Node 24 runs the TypeScript sources directly (type stripping); the one build
# step is the web app's (web/, built into web/dist by `npm ci`'s `prepare`), then only the production
# dependencies are kept.

# Keep in step with the `node` package pinned in package.json.
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
COPY web ./web
# A full install first: its `prepare` builds the web app with Vite (a dev dependency). Then the dev
# dependencies go; among them the `node` npm package (which lets `npm ci && npm start` run on
# machines that ship an older Node), so the image's own Node 24 is in charge.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/var/lib/hub
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY src ./src
COPY --from=dependencies /app/web/dist ./web/dist
# DATA_DIR holds the blob store (and the embedded database when DATABASE_URL is unset). It is
# created and owned before VOLUME so that a new named volume starts out owned by the `node` user.
RUN mkdir -p /var/lib/hub && chown node:node /var/lib/hub
USER node
VOLUME ["/var/lib/hub"]
EXPOSE 8080
# Readiness of the hub and of what it depends on (the database and Redis); the image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# main.ts drains in-flight requests and closes its pools on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=16", "src/main.ts"]
