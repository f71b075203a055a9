// The main screen: the chat list (name, last message or draft, unread and mention badges,
// muted, my last tick, typing, a connection banner) beside the open chat.
//
// The list is windowed: only the rows in view (and a few around them) are in the DOM, so a
// profile of 1,000 rooms costs what 20 do (WebKit keeps a painted backing store for the
// whole scrollable content; 1,000 painted rows cost ~300 MB in the web process).

import { api, errorText } from "./api";
import type { RoomSummary, SearchHit } from "./bindings";
import { fill, h } from "./dom";
import { chatPane } from "./chat";
import { closeDialogs, contactsDialog, newChatDialog, pendingDialog, settingsDialog } from "./dialogs";
import { banner, clock, dayLabel, hue, initials, tick } from "./format";
import { icon } from "./icons";
import { store } from "./store";

/** Height of a chat-list row in px (set on each row; the button inside leaves a 4 px gap). */
const ROW = 68;
/** Rows rendered beyond the visible ones, each side. */
const OVERSCAN = 6;

export function homeScreen(signedOut: () => void): { el: HTMLElement; dispose: () => void } {
  const bannerEl = h("div", { class: "banner", id: "connection-banner", role: "status", "aria-live": "polite" });
  const pending = h("button", { type: "button", class: "pending-link", id: "pending-button", hidden: true, onclick: pendingDialog });
  const list = h("ul", { class: "room-list", id: "room-list", "aria-label": "Chats" });
  const scroller = h("div", { class: "room-scroll" }, list);
  const main = h("div", { class: "pane" });
  let chat: ReturnType<typeof chatPane> | null = null;

  const closeChat = () => {
    chat?.dispose();
    chat = null;
    store.current = null;
    fill(main, empty());
    screen.classList.remove("chat-open");
    renderList();
  };

  const open = async (room: number, at?: { request: string; position: number }) => {
    // A room made a moment ago (a new chat, an added contact) may not be listed yet.
    if (!store.room(room)) await store.loadRooms();
    const r = store.room(room);
    if (!r) return closeChat();
    chat?.dispose();
    store.current = room;
    chat = chatPane(r, closeChat);
    fill(main, chat.el);
    screen.classList.add("chat-open");
    renderList();
    if (at) void chat.jump(at.request, at.position);
  };

  // Search: every word (the last one as a prefix), in all chats or only the open one, newest first. The
  // results replace the chat list while there is a query; picking one opens its chat at it.
  const searchBox = h("input", { type: "search", id: "search", placeholder: "Search messages", "aria-label": "Search messages", maxlength: 256, autocomplete: "off" });
  const here = h("input", { type: "checkbox", id: "search-here" });
  const hereLabel = h("label", { class: "search-here", hidden: true }, here, " Only this chat");
  const results = h("ul", { class: "search-results", id: "search-results", "aria-label": "Search results", hidden: true });
  let searching = 0;
  let debounce: number | undefined;
  const runSearch = async () => {
    const n = ++searching;
    const query = searchBox.value.trim();
    hereLabel.hidden = store.current === null;
    results.hidden = query === "";
    scroller.hidden = query !== "";
    if (query === "") return;
    const room = here.checked && store.current !== null ? store.current : null;
    let hits: SearchHit[];
    try {
      hits = await api.search(query, room, 50);
    } catch (e) {
      if (n === searching) fill(results, h("li", { class: "muted static" }, errorText(e)));
      return;
    }
    if (n !== searching) return;
    fill(results, hits.length === 0 ? h("li", { class: "muted static", id: "search-none" }, "No messages found") : hits.map((hit) =>
      h("li", {}, h("button", { type: "button", class: "search-hit", "data-room": hit.room, "data-request": hit.request_id,
        onclick: () => void open(hit.room, { request: hit.request_id, position: hit.position }) },
      h("span", { class: "room-top" }, h("span", { class: "room-name" }, hit.room_name), h("span", { class: "when" }, dayLabel(hit.at_ms))),
      h("span", { class: "snippet" }, h("span", { class: "sender" }, `${hit.sender}: `),
        hit.snippet.map((p) => (p.hit ? h("mark", {}, p.text) : p.text)))))));
  };
  searchBox.addEventListener("input", () => {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(() => void runSearch(), 120);
  });
  searchBox.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      searchBox.value = "";
      void runSearch();
    }
  });
  here.addEventListener("change", () => void runSearch());

  // What the pane says with no chat open follows the list (which loads after this screen).
  const hint = h("p", { id: "empty-hint" });
  const showHint = () => {
    hint.textContent = store.rooms.length === 0 ? "No chats yet. Start one, or add a contact by their QR code." : "Pick a chat.";
  };
  const empty = () => {
    showHint();
    return h("div", { class: "empty" }, h("div", { class: "logo", "aria-hidden": "true" }, icon("chat")), hint);
  };

  const item = (r: RoomSummary, index: number) => {
    const t = r.my_last_state ? tick(r.my_last_state) : null;
    // What I was writing shows instead of the last message, except in the open chat.
    const draft = r.draft !== null && r.draft.trim() !== "" && r.room !== store.current ? r.draft : null;
    const last = r.typing.length > 0 ? h("span", { class: "typing" }, `${r.typing[0]} is typing…`)
      : draft !== null ? h("span", { class: "preview draft" }, h("span", { class: "draft-label" }, "Draft:"), " ", draft)
      : h("span", { class: "preview" }, r.last_message ?? "");
    const when = r.last_activity_ms > 0 ? (dayLabel(r.last_activity_ms) === "Today" ? clock(r.last_activity_ms) : dayLabel(r.last_activity_ms)) : "";
    const label = `${r.name}${r.request_from !== null && r.member ? ", chat request" : ""}${r.unread > 0 ? `, ${r.unread} unread` : ""}`
      + `${r.unread_mentions > 0 ? ", mentioned" : ""}${r.muted ? ", muted" : ""}${draft !== null ? ", draft" : ""}`;
    const li = h("li", { "aria-setsize": store.rooms.length, "aria-posinset": index + 1 }, h("button", {
      type: "button", class: `room${r.room === store.current ? " active" : ""}${r.member ? "" : " gone"}`,
      "data-room": r.room, "data-index": index, "aria-label": label, "aria-current": r.room === store.current ? "true" : null,
      onclick: () => void open(r.room),
    },
      h("span", { class: "avatar", "aria-hidden": "true" }, r.direct ? initials(r.name) : icon("group")),
      h("span", { class: "room-text" },
        h("span", { class: "room-top" }, h("span", { class: "room-name" }, r.name),
          r.muted ? h("span", { class: "muted-icon", title: "Muted", "aria-hidden": "true" }, icon("bell-off")) : null,
          h("span", { class: "when" }, when)),
        h("span", { class: "room-bottom" },
          t ? h("span", { class: t.cls, "aria-label": t.label, "data-state": r.my_last_state ?? "" }, t.symbol) : null,
          r.request_from !== null && r.member ? h("span", { class: "request-tag" }, "Request") : null,
          last,
          r.unread_mentions > 0 ? h("span", { class: "badge mention", "aria-hidden": "true", title: "You were mentioned" }, "@") : null,
          r.unread > 0 ? h("span", { class: `badge${r.muted ? " quiet" : ""}`, "aria-hidden": "true" }, r.unread > 99 ? "99+" : String(r.unread)) : null))));
    li.style.top = `${index * ROW}px`;
    li.style.height = `${ROW}px`;
    (li.querySelector(".avatar") as HTMLElement).style.background = `hsl(${hue(r.name)} 55% 45%)`;
    return li;
  };

  /** Renders the rows in view; keeps focus on the same room if it had it. */
  const renderRows = () => {
    const rooms = store.rooms;
    if (rooms.length === 0) {
      list.style.height = "auto";
      fill(list, h("li", { class: "muted center static" }, "No chats yet"));
      return;
    }
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.room;
    const height = scroller.clientHeight || 20 * ROW;
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rooms.length, Math.ceil((scroller.scrollTop + height) / ROW) + OVERSCAN);
    list.style.height = `${rooms.length * ROW}px`;
    fill(list, rooms.slice(first, last).map((r, i) => item(r, first + i)));
    if (focused) list.querySelector<HTMLButtonElement>(`button.room[data-room="${focused}"]`)?.focus();
  };

  const renderList = () => {
    renderRows();
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

  let frame = 0;
  scroller.addEventListener("scroll", () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(renderRows);
  });
  const resize = new ResizeObserver(() => renderRows());
  resize.observe(scroller);

  // Arrow keys, Home and End move through the chat list (scrolling rows into the window).
  list.addEventListener("keydown", (ev) => {
    const moves: Record<string, (i: number) => number> = {
      ArrowDown: (i) => i + 1, ArrowUp: (i) => i - 1, Home: () => 0, End: () => store.rooms.length - 1,
    };
    const move = moves[ev.key];
    const current = Number((document.activeElement as HTMLElement | null)?.dataset?.index);
    if (!move || Number.isNaN(current)) return;
    ev.preventDefault();
    const next = Math.max(0, Math.min(store.rooms.length - 1, move(current)));
    const top = next * ROW;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW - scroller.clientHeight;
    renderRows();
    list.querySelector<HTMLButtonElement>(`button.room[data-index="${next}"]`)?.focus();
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
    h("div", { class: "search-bar", role: "search" }, searchBox, hereLabel),
    bannerEl, pending, scroller, results);
  const back = h("button", { class: "back icon", type: "button", "aria-label": "Back to chats", onclick: closeChat }, icon("back"));
  const screen = h("div", { class: "home" }, side, h("main", { class: "main" }, back, main));

  const off = store.on(() => {
    renderList();
    hereLabel.hidden = store.current === null;
    showHint();
    if (store.current !== null && !store.room(store.current) && chat) closeChat();
  });
  renderList();
  fill(main, empty());
  return {
    el: screen,
    dispose: () => {
      off();
      resize.disconnect();
      chat?.dispose();
      chat = null;
      closeDialogs();
    },
  };
}
