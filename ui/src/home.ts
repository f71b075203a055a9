// The main screen: the chat list (name, last message, unread badge, my last tick, typing,
// a connection banner) beside the open chat.

import type { RoomSummary } from "./bindings";
import { fill, h } from "./dom";
import { chatPane } from "./chat";
import { contactsDialog, newChatDialog, pendingDialog, settingsDialog } from "./dialogs";
import { banner, clock, dayLabel, hue, initials, tick } from "./format";
import { icon } from "./icons";
import { store } from "./store";

export function homeScreen(signedOut: () => void): HTMLElement {
  const bannerEl = h("div", { class: "banner", id: "connection-banner", role: "status", "aria-live": "polite" });
  const pending = h("button", { type: "button", class: "pending-link", id: "pending-button", hidden: true, onclick: pendingDialog });
  const list = h("ul", { class: "room-list", id: "room-list", "aria-label": "Chats" });
  const main = h("div", { class: "pane" });
  let chat: { el: HTMLElement; dispose: () => void } | null = null;

  const open = async (room: number) => {
    // A room made a moment ago (a new chat, an added contact) may not be listed yet.
    if (!store.room(room)) await store.loadRooms();
    store.current = room;
    chat?.dispose();
    const r = store.room(room);
    if (!r) {
      chat = null;
      fill(main, empty());
      return;
    }
    chat = chatPane(r, () => void open(-1));
    fill(main, chat.el);
    renderList();
    screen.classList.add("chat-open");
  };

  const empty = () => h("div", { class: "empty" }, h("div", { class: "logo", "aria-hidden": "true" }, icon("chat")),
    h("p", {}, store.rooms.length === 0 ? "No chats yet. Start one, or add a contact by their QR code." : "Pick a chat."));

  const item = (r: RoomSummary) => {
    const t = r.my_last_state ? tick(r.my_last_state) : null;
    const last = r.typing.length > 0 ? h("span", { class: "typing" }, `${r.typing[0]} is typing…`) : h("span", { class: "preview" }, r.last_message ?? "");
    const when = r.last_activity_ms > 0 ? (dayLabel(r.last_activity_ms) === "Today" ? clock(r.last_activity_ms) : dayLabel(r.last_activity_ms)) : "";
    const label = `${r.name}${r.unread > 0 ? `, ${r.unread} unread` : ""}`;
    return h("li", {}, h("button", {
      type: "button", class: `room${r.room === store.current ? " active" : ""}${r.member ? "" : " gone"}`,
      "data-room": r.room, "aria-label": label, "aria-current": r.room === store.current ? "true" : null,
      onclick: () => void open(r.room),
    },
      h("span", { class: "avatar", "aria-hidden": "true", "data-hue": String(hue(r.name)) }, r.direct ? initials(r.name) : icon("group")),
      h("span", { class: "room-text" },
        h("span", { class: "room-top" }, h("span", { class: "room-name" }, r.name), h("span", { class: "when" }, when)),
        h("span", { class: "room-bottom" },
          t ? h("span", { class: t.cls, "aria-label": t.label, "data-state": r.my_last_state ?? "" }, t.symbol) : null,
          last,
          r.unread > 0 ? h("span", { class: "badge", "aria-hidden": "true" }, r.unread > 99 ? "99+" : String(r.unread)) : null))));
  };

  const renderList = () => {
    fill(list, store.rooms.length === 0 ? h("li", { class: "muted center" }, "No chats yet") : store.rooms.map(item));
    for (const el of list.querySelectorAll<HTMLElement>(".avatar[data-hue]")) {
      el.style.background = `hsl(${el.dataset.hue} 55% 45%)`;
    }
    const text = banner(store.connection, store.progress);
    bannerEl.textContent = text ?? "";
    bannerEl.hidden = text === null;
    bannerEl.className = `banner ${store.connection}`;
    const count = store.outbox.length;
    const failed = store.outbox.filter((o) => o.state === "failed").length;
    pending.hidden = count === 0;
    pending.textContent = failed > 0 ? `${failed} not sent — review` : `${count} waiting to send`;
    pending.classList.toggle("failed", failed > 0);
  };

  // Arrow keys move through the chat list.
  list.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const buttons = [...list.querySelectorAll<HTMLButtonElement>("button.room")];
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const next = buttons[ev.key === "ArrowDown" ? Math.min(buttons.length - 1, i + 1) : Math.max(0, i - 1)];
    next?.focus();
    ev.preventDefault();
  });

  const me = store.session?.username ?? "";
  const side = h("aside", { class: "sidebar", "aria-label": "Chats" },
    h("header", { class: "side-header" },
      h("span", { class: "avatar small", "aria-hidden": "true" }, initials(me)),
      h("h1", {}, "Chats"),
      h("div", { class: "row" },
        h("button", { class: "icon", id: "contacts-button", "aria-label": "Contacts and my QR code", title: "Contacts", type: "button", onclick: () => contactsDialog(open) }, icon("qr")),
        h("button", { class: "icon", id: "new-chat-button", "aria-label": "New chat", title: "New chat", type: "button", onclick: () => newChatDialog(open) }, icon("edit")),
        h("button", { class: "icon", id: "settings-button", "aria-label": "Settings", title: "Settings", type: "button", onclick: () => settingsDialog(signedOut) }, icon("settings")))),
    bannerEl, pending, list);
  const back = h("button", { class: "back icon", type: "button", "aria-label": "Back to chats", onclick: () => screen.classList.remove("chat-open") }, icon("back"));
  const screen = h("div", { class: "home" }, side, h("main", { class: "main" }, back, main));

  store.on(() => {
    renderList();
    if (store.current !== null && !store.room(store.current) && chat) {
      chat.dispose();
      chat = null;
      fill(main, empty());
    }
  });
  renderList();
  fill(main, empty());
  return screen;
}
