// One chat: messages grouped by day with ticks, typing, photos (placeholder → thumbnail →
// full), older pages on scroll, the composer (text, picker, drag and drop), the call
// button in direct chats, and the banner while a member's changed security code holds
// sending.

import { api, errorText, isAppError } from "./api";
import type { Event, Message, RoomSummary } from "./bindings";
import { fill, h } from "./dom";
import { bytes, callRecord, caption, clock, dayLabel, groupByDay, linkParts, noticeText, tick } from "./format";
import { fullUrl, placeholder, thumbnailUrl } from "./media";
import { readByDialog, roomDialog, securityCodeDialog } from "./dialogs";
import { icon } from "./icons";
import { store } from "./store";

const PAGE = 50;
const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/** The start of a message's text, for a quote or the composer's context line. */
function short(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > 80 ? `${one.slice(0, 79)}…` : one;
}
const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;

/** Builds the chat pane for `room`; returns it and a disposer. */
export function chatPane(room: RoomSummary, onLeft: () => void): { el: HTMLElement; dispose: () => void; jump: (request: string, position: number | null) => Promise<void> } {
  let messages: Message[] = []; // oldest first
  let exhausted = false;
  let loadingOlder = false;

  const title = h("h2", { id: "chat-title" }, room.name);
  const sub = h("p", { class: "chat-sub", id: "chat-typing", "aria-live": "polite" });
  const callBtn = room.direct
    ? h("button", { class: "icon", id: "call-button", "aria-label": `Call ${room.name}`, title: "Call", type: "button", hidden: room.request_from !== null }, icon("phone"))
    : null;
  const info = h("button", { class: "icon", "aria-label": "Chat details", title: "Details", type: "button", id: "room-info-button" }, icon("more"));
  const header = h("header", { class: "chat-header" },
    h("div", { class: "chat-title" }, title, sub), h("div", { class: "row" }, callBtn, info));

  const list = h("div", { class: "timeline", id: "timeline", role: "log", "aria-label": `Messages with ${room.name}`, tabindex: 0 });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const error = h("p", { class: "composer-error", role: "alert", id: "composer-error" });
  const text = h("textarea", { id: "composer", rows: 1, placeholder: "Message", "aria-label": `Message ${room.name}`, maxlength: 16000 });
  const file = h("input", { type: "file", id: "attach-input", class: "visually-hidden", multiple: true });
  const attach = h("button", { type: "button", class: "icon", id: "attach-button", title: "Attach a photo or file", "aria-label": "Attach a photo or file", onclick: () => file.click() }, icon("clip"));
  const send = h("button", { class: "primary send", id: "send-button", type: "submit", "aria-label": "Send" }, icon("send"));
  const composer = h("form", { class: "composer" }, attach, file, text, send);
  // Replying to or editing a message: said above the composer, Escape or ✕ cancels.
  let replying: Message | null = null;
  let editing: Message | null = null;
  const contextText = h("p", { id: "composer-context-text" });
  const context = h("div", { class: "composer-context", id: "composer-context", hidden: true },
    contextText,
    h("button", { type: "button", class: "icon", id: "composer-context-cancel", "aria-label": "Cancel", title: "Cancel", onclick: () => setContext(null, null) }, icon("close")));
  const setContext = (reply: Message | null, edit: Message | null) => {
    if (editing && !edit) text.value = ""; // leaving an edit drops its text
    replying = reply;
    editing = edit;
    context.hidden = reply === null && edit === null;
    if (reply) fill(contextText, "Replying to ", h("strong", {}, reply.sender), `: ${short(reply.text)}`);
    if (edit) {
      fill(contextText, h("strong", {}, "Editing"), `: ${short(edit.text)}`);
      text.value = edit.text;
    }
    text.focus();
  };
  const drop = h("div", { class: "drop-hint", hidden: true }, "Drop to send");
  const request = requestBar(room, error, onLeft);
  const held = heldBar(error, () => void checkHeld());
  const pane = h("section", { class: "chat", "aria-labelledby": "chat-title" }, header, held.el, list, error, request, context, composer, drop);
  if (!room.member) {
    composer.hidden = true;
    error.textContent = "You are no longer a member of this chat.";
  }

  // Rendering --------------------------------------------------------------------------
  const render = () => {
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const me = store.session?.username;
    const groups = groupByDay(messages);
    fill(list, sentinel, exhausted ? h("p", { class: "muted center small" }, "This is the beginning of the chat") : null,
      groups.map((g) => h("section", { class: "day", "aria-label": dayLabel(g.at) },
        h("h3", { class: "day-label" }, h("span", {}, dayLabel(g.at))),
        g.messages.map((m) => bubble(m, m.sender === me)))));
    // A menu open on a message stays open as the timeline redraws (a message arriving).
    const open = messages.find((m) => m.request_id === menuFor);
    const at = open ? list.querySelector<HTMLElement>(`[data-request="${CSS.escape(open.request_id)}"] .msg-actions`) : null;
    if (open && at) openMenu(open, open.sender === me, at, false);
    else menuFor = null;
    if (nearBottom) list.scrollTop = list.scrollHeight;
  };

  const bubble = (m: Message, mine: boolean): HTMLElement => {
    if (m.call) {
      return h("div", { class: "event call-record", "data-seq": m.seq ?? "" }, icon("phone"), " ", callRecord(m.call, store.session?.user_id ?? 0), ` · ${clock(m.at_ms)}`);
    }
    if (m.notice) {
      const security = m.notice.kind === "security" ? ` security ${m.notice.issue}` : "";
      return h("div", { class: `event${security}` }, noticeText(m.notice, m.sender));
    }
    if (m.deleted) {
      return h("article", { class: `msg ${mine ? "mine" : "theirs"} deleted`, "data-seq": m.seq ?? "", "data-request": m.request_id },
        h("p", { class: "text muted" }, "Message deleted"),
        h("div", { class: "meta" }, h("time", { datetime: new Date(m.at_ms).toISOString() }, clock(m.at_ms)), actionsButton(m, mine)));
    }
    const t = tick(m.state);
    const ticks = mine
      ? h("button", { class: t.cls, "aria-label": t.label, title: t.label, type: "button", "data-state": m.state, disabled: room.direct || m.seq === null,
          onclick: () => m.seq !== null && void readByDialog(room.room, m.seq, m.at_ms) }, t.symbol)
      : null;
    return h("article", { class: `msg ${mine ? "mine" : "theirs"} ${m.state}`, "data-seq": m.seq ?? "", "data-request": m.request_id },
      !mine && !room.direct ? h("div", { class: "sender" }, m.sender) : null,
      m.reply_to ? quote(m.reply_to) : null,
      m.image ? photo(m) : null,
      m.file && !m.image ? h("div", { class: "file" }, icon("file"), " ", h("span", {}, m.file.name), h("span", { class: "muted small" }, ` ${bytes(Number(m.file.size))}`)) : null,
      caption(m) !== null ? h("p", { class: "text" }, richText(caption(m)!)) : null,
      m.reactions.length > 0 ? h("div", { class: "reactions" }, m.reactions.map((r) =>
        h("button", { type: "button", class: `reaction${r.mine ? " mine" : ""}`, "aria-pressed": String(r.mine), title: r.users.join(", "),
          "aria-label": `${r.emoji} ${r.users.length}, ${r.users.join(", ")}`, onclick: () => void act(() => api.react(room.room, m.request_id, r.emoji, !r.mine)) },
        `${r.emoji} ${r.users.length}`))) : null,
      h("div", { class: "meta" }, m.edited ? h("span", { class: "edited" }, "edited") : null,
        h("time", { datetime: new Date(m.at_ms).toISOString() }, clock(m.at_ms)), ticks, actionsButton(m, mine)),
      m.state === "failed" ? h("div", { class: "failed-note" }, "Not sent. ", h("button", { type: "button", class: "link", onclick: () => retryMessage(m) }, "Retry")) : null,
    );
  };

  // Message actions ----------------------------------------------------------------------
  const act = async (f: () => Promise<void>) => {
    error.textContent = "";
    try {
      await f();
    } catch (e) {
      error.textContent = errorText(e);
    }
  };
  const quote = (q: NonNullable<Message["reply_to"]>): HTMLElement =>
    h("button", { type: "button", class: "quote", "data-to": q.request_id, disabled: q.position === null, onclick: () => void jumpTo(q.request_id, q.position) },
      h("strong", {}, q.sender ?? ""), h("span", {}, q.text === null ? "Message not available" : short(q.text)));
  // Scrolls to a message, loading older pages until it is there.
  const jumpTo = async (request: string, position: number | null) => {
    const find = () => list.querySelector<HTMLElement>(`[data-request="${CSS.escape(request)}"]`);
    while (!find() && !exhausted && position !== null && messages.length > 0 && messages[0].position > position) await loadOlder();
    const el = find();
    if (!el) return;
    el.scrollIntoView({ block: "center" });
    el.classList.add("flash");
    window.setTimeout(() => el.classList.remove("flash"), 1500);
  };
  const actionsButton = (m: Message, mine: boolean): HTMLElement =>
    h("button", { type: "button", class: "icon msg-actions", "aria-label": "Message actions", title: "More", "aria-haspopup": "menu",
      onclick: (ev: globalThis.Event) => { ev.stopPropagation(); openMenu(m, mine, ev.currentTarget as HTMLElement); } }, "⋯");
  let menuFor: string | null = null;
  const closeMenu = () => {
    menuFor = null;
    document.querySelector("#message-menu")?.remove();
  };
  const openMenu = (m: Message, mine: boolean, at: HTMLElement, focus = true) => {
    closeMenu();
    menuFor = m.request_id;
    const item = (id: string, label: string, f: () => void, cls = "") =>
      h("button", { type: "button", role: "menuitem", id, class: cls, onclick: () => { closeMenu(); f(); } }, label);
    const sent = m.seq !== null || mine;
    const menu = h("div", { class: "message-menu", id: "message-menu", role: "menu", "aria-label": "Message actions" },
      m.deleted ? null : h("div", { class: "quick-reactions", role: "group", "aria-label": "React" }, QUICK_REACTIONS.map((e) => {
        const on = m.reactions.some((r) => r.emoji === e && r.mine);
        return h("button", { type: "button", role: "menuitemcheckbox", "aria-checked": String(on), class: on ? "mine" : "", onclick: () => { closeMenu(); void act(() => api.react(room.room, m.request_id, e, !on)); } }, e);
      })),
      m.deleted || !sent ? null : item("menu-reply", "Reply", () => setContext(m, null)),
      mine && !m.deleted ? item("menu-edit", "Edit", () => setContext(null, m)) : null,
      mine && !m.deleted ? h("button", { type: "button", role: "menuitem", id: "menu-delete-everyone", class: "danger",
        // Asked in place (a second press), not with window.confirm, which some web views
        // the app runs in do not show.
        onclick: (ev: globalThis.Event) => {
          const b = ev.currentTarget as HTMLButtonElement;
          if (b.dataset.armed !== "true") {
            b.dataset.armed = "true";
            b.textContent = "Delete for everyone? Press again";
            return;
          }
          closeMenu();
          void act(() => api.deleteMessage(room.room, m.request_id, true));
        } }, "Delete for everyone") : null,
      item("menu-delete-me", "Delete for me", () => void act(() => api.deleteMessage(room.room, m.request_id, false)), "danger"));
    at.closest(".msg")?.append(menu);
    if (focus) (menu.querySelector("button") as HTMLElement | null)?.focus();
  };
  const onOutside = (ev: MouseEvent) => {
    if (!(ev.target as Element | null)?.closest("#message-menu")) closeMenu();
  };
  document.addEventListener("click", onOutside);

  const photo = (m: Message): HTMLElement => {
    const img = m.image!;
    const scale = Math.min(1, 280 / Math.max(1, img.thumbnail_width), 280 / Math.max(1, img.thumbnail_height));
    const w = Math.max(80, Math.round(img.thumbnail_width * scale));
    const hh = Math.max(60, Math.round(img.thumbnail_height * scale));
    const el = h("img", { class: "photo", alt: "Photo", width: w, height: hh, "data-loaded": "placeholder" });
    const ph = placeholder(img.placeholder, img.width, img.height);
    if (ph) el.src = ph;
    if (m.seq !== null) {
      thumbnailUrl(m.room, m.seq).then((url) => {
        el.src = url;
        el.dataset.loaded = "thumbnail";
      }, () => undefined);
    }
    const button = h("button", { class: "photo-button", type: "button", "aria-label": "Open photo", disabled: m.seq === null || img.media === null }, el);
    button.addEventListener("click", () => m.seq !== null && void lightbox(m.room, m.seq, img.mime));
    return button;
  };

  const retryMessage = async (m: Message) => {
    await store.loadOutbox();
    const item = store.outbox.find((o) => o.request_id === m.request_id);
    if (item) await api.retry(item.id).catch((e) => (error.textContent = errorText(e)));
  };

  // Loading ------------------------------------------------------------------------------
  // The newest page replaces what it covers (states, confirmations: a pending echo turns
  // into its server event under the same request id); older pages already loaded stay.
  let first = true;
  const loadNewest = async () => {
    const page = (await api.messages(room.room, null, PAGE)).reverse();
    const fresh = new Set(page.map((m) => m.request_id));
    const oldest = page.length > 0 ? page[0].position : Infinity;
    messages = [...messages.filter((m) => m.position < oldest && !fresh.has(m.request_id)), ...page];
    if (first && page.length < PAGE) exhausted = true;
    render();
    // Opening a chat reads it; what arrives later is read only while someone looks.
    void markRead(first);
    first = false;
  };
  const loadOlder = async () => {
    if (loadingOlder || exhausted || messages.length === 0) return;
    loadingOlder = true;
    try {
      const page = await api.messages(room.room, messages[0].position, PAGE);
      if (page.length < PAGE) exhausted = true;
      const before = list.scrollHeight - list.scrollTop;
      messages = [...page.reverse(), ...messages];
      render();
      list.scrollTop = list.scrollHeight - before; // keep the reader's place
    } finally {
      loadingOlder = false;
    }
  };
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) void loadOlder();
  }, { root: list, rootMargin: "400px 0px 0px 0px" });
  observer.observe(sentinel);

  const markRead = async (opened = false) => {
    const r = store.room(room.room);
    const looking = document.visibilityState === "visible" && (opened || document.hasFocus());
    if (r && r.unread > 0 && looking) await api.markRead(room.room).catch(() => undefined);
  };

  // Typing -------------------------------------------------------------------------------
  let typingSent = 0;
  let idle: number | undefined;
  const stopTyping = () => {
    window.clearTimeout(idle);
    if (typingSent > 0) {
      typingSent = 0;
      void api.setTyping(room.room, false).catch(() => undefined);
    }
  };
  text.addEventListener("input", () => {
    text.style.height = "auto";
    text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
    const now = Date.now();
    if (text.value && now - typingSent > TYPING_REFRESH_MS) {
      typingSent = now;
      void api.setTyping(room.room, true).catch(() => undefined);
    }
    window.clearTimeout(idle);
    idle = window.setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  const showTyping = () => {
    const who = store.room(room.room)?.typing ?? [];
    sub.textContent = who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…` : `${who.join(", ")} are typing…`;
  };

  // Sending ------------------------------------------------------------------------------
  const submit = async () => {
    const value = text.value;
    if (!value.trim()) return;
    error.textContent = "";
    text.value = "";
    text.style.height = "auto";
    stopTyping();
    const [reply, edit] = [replying, editing];
    try {
      if (edit) await api.editMessage(room.room, edit.request_id, value);
      else if (reply) await api.reply(room.room, reply.request_id, value);
      else await api.sendText(room.room, value);
      if (reply || edit) setContext(null, null);
    } catch (e) {
      text.value = value;
      error.textContent = errorText(e);
      if (isAppError(e) && e.code === "key_changed") void checkHeld();
    }
  };

  // Held: a member's verified security code changed. The banner says who, with Accept and
  // Verify; the send and attach buttons are off (Enter still asks the core, which refuses
  // with the same sentence) until the code is accepted or verified.
  let checking = 0;
  const checkHeld = async () => {
    const n = ++checking;
    const member = store.room(room.room)?.member ?? room.member;
    const who = member ? await api.heldBy(room.room).catch(() => null) : null;
    if (n !== checking) return;
    held.show(who);
    send.disabled = attach.disabled = who !== null;
    text.placeholder = who === null ? "Message" : `Accept ${who}'s new security code to send`;
  };
  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit();
  });
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && (replying || editing)) {
      ev.preventDefault();
      setContext(null, null);
    }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      void submit();
    }
  });
  const sendFiles = async (files: FileList | File[]) => {
    error.textContent = "";
    for (const f of Array.from(files)) {
      try {
        await api.sendAttachment(room.room, f);
      } catch (e) {
        error.textContent = `${f.name}: ${errorText(e)}`;
      }
    }
  };
  file.addEventListener("change", () => {
    if (file.files) void sendFiles(file.files);
    file.value = "";
  });
  pane.addEventListener("dragover", (ev) => {
    if (ev.dataTransfer?.types.includes("Files")) {
      ev.preventDefault();
      drop.hidden = false;
    }
  });
  pane.addEventListener("dragleave", (ev) => {
    if (ev.target === drop || !pane.contains(ev.relatedTarget as Node)) drop.hidden = true;
  });
  pane.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.hidden = true;
    if (ev.dataTransfer?.files.length) void sendFiles(ev.dataTransfer.files);
  });
  text.addEventListener("paste", (ev) => {
    const files = [...(ev.clipboardData?.files ?? [])];
    if (files.length > 0) {
      ev.preventDefault();
      void sendFiles(files);
    }
  });

  callBtn?.addEventListener("click", () => void api.call(room.room).catch((e) => (error.textContent = errorText(e))));
  info.addEventListener("click", () => roomDialog(store.room(room.room) ?? room, onLeft));

  // Updates ------------------------------------------------------------------------------
  const off = store.on((batch: Event[]) => {
    const fresh = store.room(room.room);
    if (fresh) {
      title.textContent = fresh.name;
      composer.hidden = !fresh.member;
      request.hidden = fresh.request_from === null || !fresh.member;
      if (callBtn) callBtn.hidden = fresh.request_from !== null;
    }
    showTyping();
    if (batch.some((e) => (e.kind === "timeline_changed" && e.room === room.room) || e.kind === "overflow")) void loadNewest();
    // A key change shows as a notice (a timeline change); accepting one changes the rooms.
    if (batch.some((e) => e.kind === "timeline_changed" || e.kind === "rooms_changed" || e.kind === "overflow")) void checkHeld();
  });
  const onFocus = () => void markRead();
  window.addEventListener("focus", onFocus);

  const loaded = loadNewest();
  void checkHeld();
  showTyping();
  queueMicrotask(() => text.focus());
  return {
    el: pane,
    jump: async (request, position) => {
      await loaded;
      await jumpTo(request, position);
    },
    dispose: () => {
      off();
      observer.disconnect();
      stopTyping();
      window.removeEventListener("focus", onFocus);
      document.removeEventListener("click", onOutside);
    },
  };
}

/**
 * A request (someone who is not a contact put me in this chat): who, and accept, decline
 * or block. Replying accepts too; until then they cannot call.
 */
function requestBar(room: RoomSummary, error: HTMLElement, onLeft: () => void): HTMLElement {
  const from = room.request_from ?? "";
  const act = (f: () => Promise<void>, after?: () => void) => async () => {
    error.textContent = "";
    try {
      await f();
      after?.();
    } catch (e) {
      error.textContent = errorText(e);
    }
  };
  const bar = h("div", { class: "request-bar", id: "request-bar", role: "region", "aria-label": "Chat request" },
    h("p", {}, h("strong", {}, from), room.direct
      ? " is not in your contacts and wants to chat. They can't call you until you accept."
      : " is not in your contacts and added you to this group."),
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", id: "request-accept", onclick: act(() => api.acceptRequest(room.room)) }, "Accept"),
      h("button", { type: "button", id: "request-decline", onclick: act(() => api.declineRequest(room.room), onLeft) }, "Decline"),
      h("button", { type: "button", class: "danger", id: "request-block", onclick: act(() => api.blockUser(from), onLeft) }, `Block ${from}`)));
  bar.hidden = room.request_from === null || !room.member;
  return bar;
}

/**
 * The banner over a chat whose sending is held: whose security code changed, Accept (their
 * new code, unverified) and Verify (their security code screen, to scan or compare).
 * `changed` looks again after either.
 */
function heldBar(error: HTMLElement, changed: () => void): { el: HTMLElement; show: (who: string | null) => void } {
  let who: string | null = null;
  const says = h("p", { id: "security-bar-text" });
  const accept = async () => {
    if (who === null) return;
    try {
      await api.acceptKey(who);
      error.textContent = "";
    } catch (e) {
      error.textContent = errorText(e);
    }
    changed();
  };
  const el = h("div", { class: "security-bar", id: "security-bar", role: "alert", hidden: true },
    says,
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", id: "security-accept", onclick: () => void accept() }, "Accept new code"),
      h("button", { type: "button", id: "security-verify", onclick: () => { if (who !== null) securityCodeDialog(who, changed); } }, "Verify")));
  const show = (next: string | null) => {
    if (next !== null && next !== who) {
      fill(says, h("strong", {}, `${next}'s security code changed.`),
        ` Messages to ${next} are held until you accept the new code or verify ${next} again.`);
    }
    who = next;
    el.hidden = next === null;
  };
  return { el, show };
}

/**
 * Message text with its web addresses as links. A click opens the system browser through
 * the core's `open_link` (never the web view, never before a click).
 */
function richText(text: string): (string | HTMLElement)[] {
  return linkParts(text).map((p) => "text" in p ? p.text : h("a", {
    href: p.link, class: "link", rel: "noopener noreferrer",
    onclick: (ev: globalThis.Event) => {
      ev.preventDefault();
      void api.openLink(p.link).catch(() => undefined);
    },
  }, p.link));
}


async function lightbox(room: number, seq: number, mime: string): Promise<void> {
  const img = h("img", { class: "full", alt: "Photo" });
  const box = h("dialog", { class: "lightbox", id: "lightbox", "aria-label": "Photo" },
    h("button", { class: "icon close", type: "button", "aria-label": "Close", onclick: () => box.close() }, icon("close")),
    h("p", { class: "muted" }, "Loading…"), img);
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  try {
    img.src = await fullUrl(room, seq, mime);
    box.querySelector("p")?.remove();
  } catch (e) {
    fill(box.querySelector("p")!, errorText(e));
  }
}
