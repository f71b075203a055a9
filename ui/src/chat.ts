// One chat: messages grouped by day with ticks, typing, photos (placeholder → thumbnail →
// full), older pages on scroll, the composer (text, picker, drag and drop) and its draft,
// the unread divider, the call button in direct chats, the chat menu (mute, disappearing
// messages), and the banner while a member's changed security code holds sending.

import { api, errorText, isAppError } from "./api";
import type { Event, Message, RoomSummary } from "./bindings";
import { fill, h } from "./dom";
import { bytes, callRecord, caption, clock, dayLabel, groupByDay, linkParts, mentionParts, noticeText, tick, TIMER_CHOICES, timerLabel } from "./format";
import { fullUrl, placeholder, thumbnailUrl } from "./media";
import { forwardDialog, readByDialog, roomDialog, securityCodeDialog, versionsDialog } from "./dialogs";
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
/** A draft is kept this long after the last keystroke (and at once when the chat closes). */
const DRAFT_SAVE_MS = 400;

/**
 * Arrow keys, Home and End move through a menu's items; Escape closes it (`close` puts the
 * focus back on the button that opened it).
 */
function menuKeys(menu: HTMLElement, close: () => void): void {
  menu.addEventListener("keydown", (ev) => {
    const items = [...menu.querySelectorAll<HTMLElement>('[role^="menuitem"]')];
    const at = items.indexOf(document.activeElement as HTMLElement);
    const go = (i: number) => {
      ev.preventDefault();
      items[(i + items.length) % items.length]?.focus();
    };
    switch (ev.key) {
      case "Escape":
        ev.preventDefault();
        ev.stopPropagation();
        close();
        break;
      case "ArrowDown":
        go(at + 1);
        break;
      case "ArrowUp":
        go(at < 0 ? -1 : at - 1);
        break;
      case "Home":
        go(0);
        break;
      case "End":
        go(items.length - 1);
        break;
    }
  });
}

/** Builds the chat pane for `room`; returns it and a disposer. */
export function chatPane(room: RoomSummary, onLeft: () => void): { el: HTMLElement; dispose: () => void; jump: (request: string, position: number | null) => Promise<void> } {
  let messages: Message[] = []; // oldest first
  let exhausted = false;
  // Where the first unread message was when the chat opened (its timeline position): the
  // "Unread messages" divider goes above it, and stays there while the chat is open.
  let unreadAt: number | null = null;
  // Asked before the chat is marked read (loadNewest marks it after the first page).
  const firstUnread = api.firstUnread(room.room).catch(() => null);

  const title = h("h2", { id: "chat-title" }, room.name);
  const timer = h("span", { class: "chat-timer", id: "chat-timer", title: "Disappearing messages", hidden: true });
  const sub = h("p", { class: "chat-sub", id: "chat-typing", "aria-live": "polite" });
  const callBtn = room.direct
    ? h("button", { class: "icon", id: "call-button", "aria-label": `Call ${room.name}`, title: "Call", type: "button", hidden: room.request_from !== null }, icon("phone"))
    : null;
  const settingsBtn = h("button", { class: "icon", id: "chat-menu-button", "aria-label": "Chat settings", title: "Mute, disappearing messages", type: "button",
    "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "chat-menu" }, icon("sliders"));
  const info = h("button", { class: "icon", "aria-label": "Chat details", title: "Details", type: "button", id: "room-info-button" }, icon("more"));
  const header = h("header", { class: "chat-header" },
    h("div", { class: "chat-title" }, h("div", { class: "chat-title-row" }, title, timer), sub), h("div", { class: "row" }, callBtn, settingsBtn, info));
  // The disappearing-message timer, beside the name while it is on.
  const showTimer = (r: RoomSummary) => {
    const s = r.disappearing_s ?? 0;
    timer.hidden = s <= 0;
    timer.textContent = s > 0 ? `⏱ ${timerLabel(s)}` : "";
    if (s > 0) timer.setAttribute("aria-label", `Messages disappear after ${timerLabel(s)}`);
    else timer.removeAttribute("aria-label");
  };
  showTimer(room);

  const list = h("div", { class: "timeline", id: "timeline", role: "log", "aria-label": `Messages with ${room.name}`, tabindex: 0 });
  const jumpUnread = h("button", { type: "button", class: "jump-unread", id: "jump-unread", hidden: true }, "↑ Jump to first unread");
  const timeline = h("div", { class: "timeline-wrap" }, list, jumpUnread);
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
    if (edit && !editing) {
      // An edit borrows the composer: the draft is kept and set aside meanwhile.
      saveDraft();
      aside = text.value;
    }
    if (editing && !edit) {
      // Leaving an edit drops its text and brings the draft back.
      text.value = aside;
      aside = "";
      fit();
    }
    replying = reply;
    editing = edit;
    context.hidden = reply === null && edit === null;
    if (reply) fill(contextText, "Replying to ", h("strong", {}, reply.sender), `: ${short(reply.text)}`);
    if (edit) {
      fill(contextText, h("strong", {}, "Editing"), `: ${short(edit.text)}`);
      text.value = edit.text;
      fit();
    }
    text.focus();
  };
  const drop = h("div", { class: "drop-hint", hidden: true }, "Drop to send");
  const request = requestBar(room, error, onLeft);
  const held = heldBar(error, () => void checkHeld());
  const pane = h("section", { class: "chat", "aria-labelledby": "chat-title" }, header, held.el, timeline, error, request, context, composer, drop);
  if (!room.member) {
    composer.hidden = true;
    error.textContent = "You are no longer a member of this chat.";
  }

  // Rendering --------------------------------------------------------------------------
  // Whether the pages loaded reach back to the first unread message.
  const unreadLoaded = () => unreadAt !== null && messages.length > 0 && (exhausted || messages[0].position <= unreadAt);
  const render = () => {
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const me = store.session?.username;
    const groups = groupByDay(messages);
    // The divider goes above the first unread message (or what follows it, were it gone).
    const from = unreadAt;
    const dividerAbove = from !== null && unreadLoaded() ? messages.find((m) => m.position >= from)?.request_id : undefined;
    fill(list, sentinel, exhausted ? h("p", { class: "muted center small" }, "This is the beginning of the chat") : null,
      groups.map((g) => h("section", { class: "day", "aria-label": dayLabel(g.at) },
        h("h3", { class: "day-label" }, h("span", {}, dayLabel(g.at))),
        g.messages.flatMap((m) => [
          m.request_id === dividerAbove ? h("div", { class: "unread-divider", id: "unread-divider", role: "separator", tabindex: -1 }, h("span", {}, "Unread messages")) : null,
          bubble(m, m.sender === me),
        ]))));
    jumpUnread.hidden = unreadAt === null || unreadLoaded();
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
      const kind = m.notice.kind === "security" ? ` security ${m.notice.issue}` : m.notice.kind === "disappearing" ? " disappearing" : "";
      return h("div", { class: `event${kind}`, "data-request": m.request_id }, noticeText(m.notice, m.sender, store.session?.username));
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
    return h("article", { class: `msg ${mine ? "mine" : "theirs"} ${m.state}${m.mentions_me ? " mentions-me" : ""}`, "data-seq": m.seq ?? "", "data-request": m.request_id },
      !mine && !room.direct ? h("div", { class: "sender" }, m.sender) : null,
      m.forwarded ? h("div", { class: "forwarded" }, icon("forward"), "Forwarded") : null,
      m.reply_to ? quote(m.reply_to) : null,
      m.image ? photo(m) : null,
      m.file && !m.image ? h("div", { class: "file" }, icon("file"), " ", h("span", {}, m.file.name), h("span", { class: "muted small" }, ` ${bytes(Number(m.file.size))}`)) : null,
      caption(m) !== null ? h("p", { class: "text" }, richText(caption(m)!, store.session?.username)) : null,
      m.reactions.length > 0 ? h("div", { class: "reactions" }, m.reactions.map((r) =>
        h("button", { type: "button", class: `reaction${r.mine ? " mine" : ""}`, "aria-pressed": String(r.mine), title: r.users.join(", "),
          "aria-label": `${r.emoji} ${r.users.length}, ${r.users.join(", ")}`, onclick: () => void act(() => api.react(room.room, m.request_id, r.emoji, !r.mine)) },
        `${r.emoji} ${r.users.length}`))) : null,
      h("div", { class: "meta" },
        m.expires_ms !== null ? h("span", { class: "expires", role: "img", title: `Disappears ${new Date(m.expires_ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}`,
          "aria-label": "Disappearing message" }, "⏱") : null,
        // The edited mark opens the message's versions.
        m.edited ? h("button", { type: "button", class: "edited", title: "Show edit history", "aria-label": "Edited: show edit history",
          onclick: () => void versionsDialog(room.room, m.request_id) }, "edited") : null,
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
  // Loads older pages until `find` finds what is at `position` (or the chat's beginning),
  // then scrolls it into view.
  const reveal = async (find: () => HTMLElement | null, position: number | null): Promise<HTMLElement | null> => {
    while (!find() && !exhausted && position !== null && messages.length > 0 && messages[0].position > position) await loadOlder();
    const el = find();
    el?.scrollIntoView({ block: "center" });
    return el;
  };
  // Scrolls to a message, loading older pages until it is there.
  const jumpTo = async (request: string, position: number | null) => {
    const el = await reveal(() => list.querySelector<HTMLElement>(`[data-request="${CSS.escape(request)}"]`), position);
    if (!el) return;
    el.classList.add("flash");
    window.setTimeout(() => el.classList.remove("flash"), 1500);
  };
  // The first unread message, when it is above the pages loaded.
  jumpUnread.addEventListener("click", async () => {
    const divider = await reveal(() => list.querySelector<HTMLElement>("#unread-divider"), unreadAt);
    divider?.focus({ preventScroll: true });
  });
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
    if (focus) closeChatMenu();
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
      m.deleted || !sent ? null : item("menu-forward", "Forward", () => forwardDialog(room.room, m.request_id)),
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
    menuKeys(menu, () => {
      closeMenu();
      list.querySelector<HTMLElement>(`[data-request="${CSS.escape(m.request_id)}"] .msg-actions`)?.focus();
    });
    at.closest(".msg")?.append(menu);
    if (focus) (menu.querySelector("button") as HTMLElement | null)?.focus();
  };
  const onOutside = (ev: MouseEvent) => {
    const target = ev.target as Element | null;
    if (!target?.closest("#message-menu")) closeMenu();
    if (!target?.closest("#chat-menu")) closeChatMenu();
  };

  // The chat menu: mute, and the disappearing-message timer ----------------------------
  let chatMenu: HTMLElement | null = null;
  const closeChatMenu = (focusBack = false) => {
    chatMenu?.remove();
    chatMenu = null;
    settingsBtn.setAttribute("aria-expanded", "false");
    if (focusBack) settingsBtn.focus();
  };
  const openChatMenu = (focusId: string | null, focus = true) => {
    closeChatMenu();
    const r = store.room(room.room) ?? room;
    const current = r.disappearing_s ?? 0;
    // A timer set elsewhere (another device, the CLI) is listed too, checked.
    const choices = TIMER_CHOICES.includes(current) ? TIMER_CHOICES : [...TIMER_CHOICES, current].sort((a, b) => a - b);
    const choose = (seconds: number) => {
      closeChatMenu(true);
      if (seconds !== current) void act(() => api.setDisappearing(room.room, seconds));
    };
    const menu = h("div", { class: "chat-menu", id: "chat-menu", role: "menu", "aria-label": "Chat settings" },
      h("button", { type: "button", role: "menuitem", id: "chat-menu-mute", onclick: () => {
        closeChatMenu(true);
        void act(() => api.setRoomMuted(room.room, !r.muted));
      } }, r.muted ? "Unmute" : "Mute"),
      h("div", { class: "menu-heading", id: "chat-menu-timer-label" }, "Disappearing messages"),
      h("div", { role: "group", "aria-labelledby": "chat-menu-timer-label" }, choices.map((seconds) =>
        h("button", { type: "button", role: "menuitemradio", id: `chat-timer-${seconds}`, "aria-checked": String(seconds === current),
          onclick: () => choose(seconds) }, timerLabel(seconds)))));
    menuKeys(menu, () => closeChatMenu(true));
    header.append(menu);
    chatMenu = menu;
    settingsBtn.setAttribute("aria-expanded", "true");
    if (!focus) return;
    const first = (focusId ? menu.querySelector<HTMLElement>(`#${CSS.escape(focusId)}`) : null) ?? menu.querySelector<HTMLElement>('[aria-checked="true"]') ?? menu.querySelector<HTMLElement>("button");
    first?.focus();
  };
  settingsBtn.addEventListener("click", (ev) => {
    ev.stopPropagation();
    closeMenu();
    if (chatMenu) closeChatMenu();
    else openChatMenu("chat-menu-mute");
  });
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
    const opening = first;
    first = false;
    if (opening) unreadAt = await firstUnread;
    render();
    // Opening a chat shows where its unread messages start.
    if (opening) list.querySelector("#unread-divider")?.scrollIntoView({ block: "center" });
    // Opening a chat reads it; what arrives later is read only while someone looks.
    void markRead(opening);
  };
  // One older page at a time: a second caller waits for the page being loaded.
  let older: Promise<void> | null = null;
  const loadOlder = (): Promise<void> => {
    if (exhausted || messages.length === 0) return Promise.resolve();
    older ??= (async () => {
      const page = await api.messages(room.room, messages[0].position, PAGE);
      if (page.length < PAGE) exhausted = true;
      const before = list.scrollHeight - list.scrollTop;
      messages = [...page.reverse(), ...messages];
      render();
      list.scrollTop = list.scrollHeight - before; // keep the reader's place
    })().finally(() => {
      older = null;
    });
    return older;
  };
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) void loadOlder();
  }, { root: list, rootMargin: "400px 0px 0px 0px" });
  observer.observe(sentinel);

  const markRead = async (opened = false) => {
    await firstUnread; // the first unread is asked for before anything is marked read
    const r = store.room(room.room);
    const looking = document.visibilityState === "visible" && (opened || document.hasFocus());
    if (r && r.unread > 0 && looking) await api.markRead(room.room).catch(() => undefined);
  };

  // Typing -------------------------------------------------------------------------------
  function fit() {
    text.style.height = "auto";
    if (text.value) text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
  }
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
    fit();
    if (!editing) scheduleDraft();
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

  // Drafts: what is typed here is kept for the room (shown in the chat list, put back when
  // the chat opens again), a moment after the last keystroke and when the chat closes.
  // While an edit borrows the composer, the draft is the text set aside.
  let aside = "";
  let savedDraft = room.draft ?? "";
  let draftTimer: number | undefined;
  function saveDraft() {
    window.clearTimeout(draftTimer);
    draftTimer = undefined;
    const value = editing ? aside : text.value;
    if (value === savedDraft) return;
    savedDraft = value;
    void api.setDraft(room.room, value).catch(() => undefined);
  }
  const scheduleDraft = () => {
    window.clearTimeout(draftTimer);
    draftTimer = window.setTimeout(saveDraft, DRAFT_SAVE_MS);
  };
  // Sent: the draft goes (or becomes what was typed since).
  const sentDraft = () => {
    window.clearTimeout(draftTimer);
    draftTimer = undefined;
    savedDraft = text.value;
    void api.setDraft(room.room, text.value).catch(() => undefined);
  };
  void api.draft(room.room).then((d) => {
    savedDraft = d ?? "";
    if (d && text.value === "" && !editing && !replying && draftTimer === undefined) {
      text.value = d;
      fit();
      text.setSelectionRange(d.length, d.length);
    }
  }, () => undefined);

  // Sending ------------------------------------------------------------------------------
  const submit = async () => {
    const value = text.value;
    if (!value.trim()) return;
    error.textContent = "";
    text.value = "";
    fit();
    stopTyping();
    const [reply, edit] = [replying, editing];
    try {
      if (edit) await api.editMessage(room.room, edit.request_id, value);
      else if (reply) await api.reply(room.room, reply.request_id, value);
      else await api.sendText(room.room, value);
      if (reply || edit) setContext(null, null);
      if (!edit) sentDraft();
    } catch (e) {
      text.value = value;
      fit();
      if (!edit) scheduleDraft();
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
      showTimer(fresh);
      // An open chat menu shows the new state (mute, timer), focus kept.
      if (chatMenu) {
        const inside = chatMenu.contains(document.activeElement);
        openChatMenu(inside ? document.activeElement?.id ?? null : null, inside);
      }
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
      // Switching chats keeps what was typed.
      if (draftTimer !== undefined) saveDraft();
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
 * Message text with its web addresses as links and its `@name` mentions marked (mine
 * more). A click on a link opens the system browser through the core's `open_link`
 * (never the web view, never before a click). Text goes in as text nodes only.
 */
function richText(text: string, me?: string): (string | HTMLElement)[] {
  const mine = me?.toLowerCase();
  return linkParts(text).flatMap((p) => "text" in p ? mentionParts(p.text).map((q) => "text" in q ? q.text
    : h("span", { class: q.name === mine ? "mention me" : "mention" }, q.mention)) : h("a", {
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
