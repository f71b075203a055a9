// The call screen: outgoing "requesting…" (the Inquire phase) and "ringing…", the incoming
// screen (accept / decline), in-call (timer, mute, hang up), and how it ended (busy,
// unavailable, no answer…), shown for a moment. Driven only by the core's call events.

import { api, errorText } from "./api";
import type { CallEvent } from "./bindings";
import { fill, h } from "./dom";
import { callStatus, duration, initials } from "./format";
import { store } from "./store";

let overlay: HTMLDialogElement | null = null;
let peerName = "";
let connectedAt = 0;
let timer: number | undefined;
let muted = false;
let closeTimer: number | undefined;

function nameOf(room: number): string {
  return store.room(room)?.name ?? "Someone";
}

/** Removes the call screen (when a call is over, and on sign-out). */
export function endCallScreen(): void {
  window.clearInterval(timer);
  window.clearTimeout(closeTimer);
  overlay?.close();
  overlay?.remove();
  overlay = null;
}

function show(status: string, actions: HTMLElement[], live = false) {
  window.clearTimeout(closeTimer);
  if (!overlay) {
    // A modal <dialog> in the top layer: above any open dialog, focus kept inside.
    overlay = h("dialog", { class: "call-screen", id: "call-screen", "aria-labelledby": "call-peer" });
    // Escape does not end a call; the buttons do.
    overlay.addEventListener("cancel", (ev) => ev.preventDefault());
    document.body.append(overlay);
    overlay.showModal();
  }
  const clock = h("p", { class: "call-timer", id: "call-timer", "aria-live": "off" });
  fill(overlay,
    h("div", { class: "avatar big", "aria-hidden": "true" }, initials(peerName)),
    h("h2", { id: "call-peer" }, peerName),
    h("p", { class: "call-status", id: "call-status", role: "status" }, status),
    live ? clock : null,
    h("div", { class: "call-actions" }, actions));
  window.clearInterval(timer);
  if (live) {
    const tickClock = () => (clock.textContent = duration(Date.now() - connectedAt));
    tickClock();
    timer = window.setInterval(tickClock, 1000);
  }
  (overlay.querySelector(".call-actions button") as HTMLButtonElement | null)?.focus();
}

const button = (label: string, cls: string, id: string, f: () => Promise<void>) =>
  h("button", { type: "button", class: `call-btn ${cls}`, id, "aria-label": label, onclick: () => void f().catch((e) => alert(errorText(e))) }, label);

const hangUp = () => button("Hang up", "danger", "call-hangup", api.hangUp);

function muteButton(): HTMLElement {
  const b = h("button", { type: "button", class: "call-btn", id: "call-mute", "aria-pressed": String(muted) }, muted ? "Unmute" : "Mute");
  b.addEventListener("click", async () => {
    muted = !muted;
    await api.setMuted(muted).catch(() => undefined);
    b.textContent = muted ? "Unmute" : "Mute";
    b.setAttribute("aria-pressed", String(muted));
  });
  return b;
}

/** Shows what a call event means. */
export function onCallEvent(e: CallEvent): void {
  switch (e.state) {
    case "requesting":
      peerName = nameOf(e.peer.room);
      muted = false;
      show(callStatus(e), [hangUp()]);
      break;
    case "ringing_remote":
      show(callStatus(e), [hangUp()]);
      break;
    case "ringing":
      peerName = nameOf(e.peer.room);
      muted = false;
      show(`${callStatus(e)}${e.video ? " (video; audio only here)" : ""}`, [
        button("Decline", "danger", "call-decline", api.declineCall),
        button("Accept", "accept", "call-accept", api.acceptCall),
      ]);
      break;
    case "connecting":
      show(callStatus(e), [muteButton(), hangUp()]);
      break;
    case "connected":
      connectedAt = Date.now();
      show(callStatus(e), [muteButton(), hangUp()], true);
      break;
    case "ended": {
      if (!overlay) return;
      window.clearInterval(timer);
      show(callStatus(e), [h("button", { type: "button", class: "call-btn", id: "call-close", onclick: endCallScreen }, "Close")]);
      closeTimer = window.setTimeout(endCallScreen, e.reason === "hung_up" || e.reason === "declined" ? 800 : 4000);
      break;
    }
    case "called_while_busy":
      // The running call stays on screen; the missed call shows in the chat as a record.
      break;
  }
}
