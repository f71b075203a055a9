// Boot: the first-run screen or the chats, and the core's events to the store and the call
// screen. All state lives in the core; this only renders it.

import { api, onCoreEvents, onSessionEnded } from "./api";
import type { SessionView } from "./bindings";
import { endCallScreen, onCallEvent } from "./call";
import { fill } from "./dom";
import { homeScreen } from "./home";
import { signInScreen } from "./signin";
import { store } from "./store";

const root = document.getElementById("app")!;

let home: { el: HTMLElement; dispose: () => void } | null = null;

async function signedIn(session: SessionView) {
  store.session = session;
  await Promise.all([store.loadRooms(), store.loadOutbox()]);
  home?.dispose();
  home = homeScreen(signedOut);
  fill(root, home.el);
  document.body.dataset.screen = "home";
  // After the chat list is painted (for the start-up figure in docs/performance.md).
  requestAnimationFrame(() => setTimeout(() => void api.ready(store.rooms.length).catch(() => undefined)));
}

function signedOut() {
  home?.dispose();
  home = null;
  endCallScreen();
  store.session = null;
  store.rooms = [];
  store.current = null;
  store.listeners.clear();
  fill(root, signInScreen(suggested, (s) => void signedIn(s)));
  document.body.dataset.screen = "signin";
}

let suggested: string | null = null;

async function boot() {
  await onCoreEvents((batch) => {
    for (const e of batch) if (e.kind === "call") onCallEvent(e);
    void store.apply(batch);
  });
  await onSessionEnded(() => signedOut());
  const start = await api.startup();
  suggested = start.suggested_server;
  store.connection = start.connection;
  if (start.session) await signedIn(start.session);
  else signedOut();
}

void boot();
