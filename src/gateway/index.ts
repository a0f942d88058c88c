// One gateway, the WebSocket side, composed from the path a frame takes: admission → session → dispatch →
// commands → delivery, with the timers and the drain beside them. HTTP routes live in ../http/.
import type { WebSocketHandler } from "bun";
import type { Authenticator } from "../auth.ts";
import type { Backends, LocalState } from "../backends/types.ts";
import type { Config } from "../config.ts";
import { Connections, type Conn } from "../connections.ts";
import type { Logger } from "../log.ts";
import { roomEvent } from "../protocol/outbound.ts";
import { Stats } from "../stats.ts";
import { createAdmission } from "./admission.ts";
import { createCommands } from "./commands.ts";
import { connRef, slowConsumerBytes, type GatewayContext } from "./context.ts";
import { createDelivery } from "./delivery.ts";
import { createDispatch } from "./dispatch.ts";
import { createDrain } from "./drain.ts";
import { createMembership } from "./membership.ts";
import { createRedisLost } from "./redis-lost.ts";
import { createSession } from "./session.ts";
import type { GatewayStatus } from "./status.ts";
import { createTimers } from "./timers.ts";
import { createTicks, type Ticks } from "../ticks.ts";

export { socketCapacity } from "./admission.ts";
export { CLOSE } from "../protocol/codes.ts";

export interface GatewayDeps {
  config: Config;
  backends: Backends;
  auth: Authenticator;
  log: Logger;
  now?: () => number;
  /** Shared with the backends' periodic jobs (createServer passes one); a gateway of its own otherwise. */
  ticks?: Ticks;
}

export type Gateway = ReturnType<typeof createGateway>;

function websocketHandler(ctx: GatewayContext, handlers: Pick<WebSocketHandler<Conn>, "open" | "message" | "close">): WebSocketHandler<Conn> {
  return {
    ...handlers,
    pong(ws) {
      ws.data.lastSeen = ctx.now();
    },
    // A paged replay waits for this before writing its next page.
    drain(ws) {
      ws.data.drained?.();
    },
    maxPayloadLength: ctx.config.maxPayload,
    // Heartbeats are ours (4002 after two silent intervals), so Bun's own idle timer and pings are off.
    idleTimeout: 0,
    sendPings: false,
    backpressureLimit: slowConsumerBytes(ctx.config) * 2,
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
  };
}

/** What the HTTP side can read about this gateway. */
function gatewayStatus(ctx: GatewayContext, isDraining: () => boolean, isRedisLost: () => boolean): GatewayStatus {
  return {
    id: ctx.config.gatewayId,
    region: ctx.config.region,
    mode: ctx.config.redis ? "cluster" : "single",
    started: ctx.started,
    now: ctx.now,
    connections: () => ctx.conns.size,
    users: () => ctx.conns.users,
    rooms: () => ctx.conns.rooms,
    isDraining,
    isRedisLost,
    backendState: () => ctx.broker.state(),
    counters: ctx.stats,
  };
}

export function createGateway({ config, backends, auth, log, now = Date.now, ticks = createTicks() }: GatewayDeps) {
  const { broker, presence, history } = backends;
  const conns = new Connections();
  const ctx: GatewayContext = { config, broker, presence, history, log, now, stats: new Stats(), conns, started: now(), ticks };
  const delivery = createDelivery(ctx);
  const membership = createMembership(ctx);
  const commands = createCommands(ctx, membership);
  const timers = createTimers(ctx, delivery, membership.retry);
  const session = createSession(ctx, delivery, membership, timers);
  const drain = createDrain(ctx, delivery, session, timers);
  const redisLost = createRedisLost(ctx, delivery);
  const admission = createAdmission(ctx, auth, drain.isDraining);
  const upgrade = admission.upgrade;
  const dispatch = createDispatch(ctx, delivery, commands);
  const websocket = websocketHandler(ctx, {
    open(ws) {
      admission.opened(ws.data.user);
      session.opened(ws);
    },
    message: dispatch.message,
    close: session.closed,
  });

  const local: LocalState = {
    counts: () => ({ connections: conns.size, users: conns.users }),
    connections: function* () {
      for (const c of conns.byId.values()) if (!c.closed) yield connRef(c);
    },
    rooms: () => conns.roomMemberships(),
  };

  const status = gatewayStatus(ctx, drain.isDraining, redisLost.isLost);

  return {
    /** For tests: the local registry's index sizes. */
    indexSizes: () => conns.indexSizes(),
    websocket,
    upgrade,
    /** What the WebSocket side and the admin API can do. */
    commands,
    /** What the HTTP side can read. */
    status,
    async start() {
      await broker.start({
        ...delivery.deliveries,
        kick(user, exceptConn, stamp) {
          if (stamp === undefined) delivery.deliveries.kick(user, exceptConn);
          else session.supersede(user, stamp);
        },
      });
      await presence.start(local, (room, user, event) => {
        // A backend that announces published the event with the write that decided it.
        if (presence.announces) return;
        broker
          .publishRoom(room, roomEvent(room, event, user, now()))
          .catch((err) => log.warn("room event not sent", { room, user, event, err }));
      });
      timers.start();
      redisLost.start();
    },
    async drain() {
      redisLost.stop();
      await drain.drain();
    },
    /** For tests that run gateways in-process. */
    stopTimers() {
      timers.stop();
      redisLost.stop();
    },
  };
}
