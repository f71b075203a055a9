// What the screens share: the session, the room list, the connection, the outbox. Loaded
// from the core's commands; reloaded when the core's events say so. Screens subscribe.

import { api } from "./api";
import type { ConnectionState, Event, OutboxEntry, RoomSummary, SessionView } from "./bindings";

type Listener = (batch: Event[]) => void;

export const store = {
  session: null as SessionView | null,
  rooms: [] as RoomSummary[],
  outbox: [] as OutboxEntry[],
  connection: "offline" as ConnectionState,
  progress: undefined as { done: number; total: number } | undefined,
  current: null as number | null,
  listeners: new Set<Listener>(),
  typingExpiry: 0,

  async loadRooms(): Promise<void> {
    this.rooms = await api.rooms();
  },
  async loadOutbox(): Promise<void> {
    this.outbox = await api.outbox();
  },
  room(id: number | null): RoomSummary | undefined {
    return this.rooms.find((r) => r.room === id);
  },
  on(f: Listener): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  },

  /** Applies a batch of core events: refreshes what they name, then tells the screens. */
  async apply(batch: Event[]): Promise<void> {
    let rooms = false;
    let outbox = false;
    for (const e of batch) {
      switch (e.kind) {
        case "rooms_changed":
          rooms = true;
          break;
        case "typing":
          rooms = true;
          // The core forgets a typist after 6 s without telling; look again then.
          window.clearTimeout(this.typingExpiry);
          this.typingExpiry = window.setTimeout(() => void this.apply([{ kind: "rooms_changed" }]), 6500);
          break;
        case "outbox_changed":
          outbox = true;
          break;
        case "connection":
          this.connection = e.state;
          if (e.state !== "syncing") this.progress = undefined;
          break;
        case "sync_progress":
          this.progress = { done: e.done, total: e.total };
          break;
        case "overflow":
          rooms = outbox = true;
          break;
        default:
          break;
      }
    }
    await Promise.all([rooms ? this.loadRooms() : null, outbox ? this.loadOutbox() : null]);
    for (const f of this.listeners) f(batch);
  },
};
