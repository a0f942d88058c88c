# wsgate image for Fly.io (or any container host). Docker is not needed to develop or test wsgate;
# test/fly.test.ts checks what can be checked without a daemon (pinned base, start command).
# Keep the Bun version equal to package.json's bun-types, which is what CI runs.

# --- deps: production dependencies only, resolved exactly from bun.lock ---
FROM oven/bun:1.4.5-slim AS deps
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile --production

# --- runtime: sources + production node_modules, run as the image's unprivileged bun user ---
FROM oven/bun:1.4.5-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
# Build id shown on /health, /v1/gateways and wsgate_build_info (the image has no .git to ask):
# fly deploy --build-arg WSGATE_BUILD=$(git rev-parse --short=12 HEAD)
ARG WSGATE_BUILD=""
ENV WSGATE_BUILD=$WSGATE_BUILD
# Files stay owned by root: the gateway only reads them, so a compromised process cannot rewrite its code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock bunfig.toml tsconfig.json ./
COPY src ./src
USER bun
# 8080: HTTP + WebSocket (fly.toml internal_port); 9091: /metrics for the private scraper.
EXPOSE 8080 9091
# `bun run start` forwards SIGTERM to the gateway, so Fly's kill_signal starts the drain.
CMD ["bun", "run", "start"]
