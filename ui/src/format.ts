// Words and numbers as people read them. Pure functions: unit-tested (tests/unit).

import type { CallEvent, CallView, ConnectionState, EndReason, Message, MessageState, Notice, SecurityIssue, ServerErrorCode, Trust } from "./bindings";

/** The tick for a message state, and what a screen reader says for it. */
export function tick(state: MessageState): { symbol: string; label: string; cls: string } {
  switch (state) {
    case "pending":
      return { symbol: "🕓", label: "Sending", cls: "tick pending" };
    case "failed":
      return { symbol: "!", label: "Not sent", cls: "tick failed" };
    case "sent":
      return { symbol: "✓", label: "Sent", cls: "tick sent" };
    case "delivered":
      return { symbol: "✓✓", label: "Delivered", cls: "tick delivered" };
    case "read":
      return { symbol: "✓✓", label: "Read", cls: "tick read" };
  }
}

/** The banner over the chat list, or null when all is well. */
export function banner(state: ConnectionState, progress?: { done: number; total: number }): string | null {
  switch (state) {
    case "online":
      return null;
    case "offline":
      return "Offline — messages will be sent when you are back online";
    case "connecting":
      return "Connecting…";
    case "syncing":
      if (progress && progress.total > 0) {
        const pct = Math.min(100, Math.floor((100 * progress.done) / progress.total));
        return `Syncing… ${pct}%`;
      }
      return "Syncing…";
  }
}

/** Local-day key for grouping (YYYY-MM-DD in local time). */
export function dayKey(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** "Today", "Yesterday", a weekday within the week, else the date. */
export function dayLabel(ms: number, now: number = Date.now()): string {
  const startOf = (t: number) => {
    const d = new Date(t);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  };
  const days = Math.round((startOf(now) - startOf(ms)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const d = new Date(ms);
  if (days > 1 && days < 7) return d.toLocaleDateString(undefined, { weekday: "long" });
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleDateString(undefined, sameYear ? { day: "numeric", month: "long" } : { day: "numeric", month: "long", year: "numeric" });
}

/** Messages (oldest first) split into days. */
export function groupByDay(messages: Message[]): { day: string; at: number; messages: Message[] }[] {
  const groups: { day: string; at: number; messages: Message[] }[] = [];
  for (const m of messages) {
    const day = dayKey(m.at_ms);
    const last = groups[groups.length - 1];
    if (last && last.day === day) last.messages.push(m);
    else groups.push({ day, at: m.at_ms, messages: [m] });
  }
  return groups;
}

/** "14:05". */
export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** How long a link code still works, or that it no longer does. */
export function linkExpiry(expiresMs: number, now: number = Date.now()): string {
  const left = expiresMs - now;
  if (left <= 0) return "This code has expired. Show a new one.";
  const secs = Math.ceil(left / 1000);
  if (secs < 60) return `Works once, for ${secs} more second${secs === 1 ? "" : "s"}.`;
  const mins = Math.ceil(secs / 60);
  return `Works once, for ${mins} more minute${mins === 1 ? "" : "s"} (until ${clock(expiresMs)}).`;
}

/** "4:07" or "1:02:03". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** "2.4 MB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A call record in a chat, from my point of view. */
export function callRecord(call: CallView, myUserId: number): string {
  const outgoing = call.caller === myUserId;
  const kind = call.video ? "video call" : "call";
  switch (call.outcome) {
    case "completed":
      return `${outgoing ? "Outgoing" : "Incoming"} ${kind} · ${duration(call.duration_ms)}`;
    case "missed":
      return outgoing ? `No answer` : `Missed ${kind}`;
    case "declined":
      return outgoing ? `Call declined` : `You declined a ${kind}`;
    case "busy":
      return outgoing ? `Line busy` : `Missed ${kind} (you were in another call)`;
    case "cancelled":
      return outgoing ? `Cancelled ${kind}` : `Missed ${kind}`;
    default:
      return `Call`;
  }
}

/** Why a call ended, said plainly (null: no need to say anything). */
export function endReason(reason: EndReason): string | null {
  switch (reason) {
    case "hung_up":
    case "remote_hung_up":
      return "Call ended";
    case "cancelled":
      return "They cancelled the call";
    case "declined":
      return null;
    case "remote_declined":
      return "Call declined";
    case "busy":
      return "Busy — they are in another call";
    case "unavailable":
      return "Unavailable — they are not online";
    case "no_answer":
      return "No answer";
    case "answered_elsewhere":
      return "Answered on another device";
    case "declined_elsewhere":
      return "Declined on another device";
    case "failed":
      return "The call could not connect";
    case "glare":
      return "You called each other at once — try again";
    case "reservation_expired":
      return "The call did not start";
    case "not_encrypted":
      return "The call did not start: this chat's encryption was not ready — try again";
  }
}

/** The call screen's status line for a call event. */
export function callStatus(e: CallEvent): string {
  switch (e.state) {
    case "requesting":
      return "Requesting…";
    case "ringing_remote":
      return "Ringing…";
    case "ringing":
      return "Incoming call";
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected";
    case "ended":
      return endReason(e.reason) ?? "Call ended";
    case "called_while_busy":
      return "Someone tried to call you";
  }
}

/** A message's own words, without the stand-in the core gives attachments without a
 * caption ("Photo", "Video", the file's name). */
export function caption(m: Message): string | null {
  if (m.video && m.text === "Video") return null;
  if (m.file && m.text === m.file.name) return null;
  if (m.image && m.text === "Photo") return null;
  return m.text === "" ? null : m.text;
}

/** A piece of message text: plain, or a web address to show as a link. */
export type TextPart = { text: string } | { link: string };

/**
 * Splits message text into plain parts and `http(s)://` links. Punctuation that ends a
 * sentence (and a closing bracket without its opening one) stays outside the link.
 */
export function linkParts(text: string): TextPart[] {
  const count = (s: string, c: string) => s.split(c).length - 1;
  const parts: TextPart[] = [];
  let last = 0;
  for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/gi)) {
    let link = m[0];
    for (;;) {
      const end = link.at(-1) ?? "";
      const unbalanced = (end === ")" && count(link, ")") > count(link, "(")) || (end === "]" && count(link, "]") > count(link, "["));
      if (!/[.,;:!?]/.test(end) && !unbalanced) break;
      link = link.slice(0, -1);
    }
    const at = m.index ?? 0;
    if (at > last) parts.push({ text: text.slice(last, at) });
    parts.push(/^https?:\/\/[^/?#]/i.test(link) ? { link } : { text: link });
    last = at + link.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** One or two letters for an avatar. */
export function initials(name: string): string {
  const parts = name.trim().split(/[\s._-]+/).filter(Boolean);
  if (parts.length === 0) return "?";
  const first = [...parts[0]][0] ?? "?";
  const second = parts.length > 1 ? [...parts[1]][0] ?? "" : "";
  return (first + second).toUpperCase();
}

/** A stable hue per name, for avatars. */
export function hue(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)!) % 360;
  return h;
}

/** What a failed outbox item was, in words. */
export function outboxKind(kind: string): string {
  const words: Record<string, string> = {
    send: "Message",
    create_room: "New chat",
    invite: "Invitation",
    leave: "Leaving a chat",
    rename: "Renaming",
    record_call: "Call record",
    remove_member: "Removing a member",
  };
  return words[kind] ?? kind;
}

/**
 * The blurhash placeholder's pixel size for a picture the sender says is `width`×`height`:
 * 32 wide, 1 to 64 high whatever they say (a 1×100000 "photo" must not make a
 * 3-million-row canvas).
 */
export function placeholderSize(width: number, height: number): { w: number; h: number } {
  const w = 32;
  const ratio = Math.max(1, height) / Math.max(1, width);
  return { w, h: Math.min(64, Math.max(1, Math.round(w * ratio))) };
}

/** A membership or naming event as a line: "alice created the room", "bob joined". `me`
 * (my username) words my own setting of the disappearing-message timer as "You …". */
export function noticeText(notice: Notice, sender: string, me?: string): string {
  switch (notice.kind) {
    case "created":
      return `${sender} created the room`;
    case "joined":
      return `${notice.user} joined`;
    case "invited":
      return `${sender} invited ${notice.user}`;
    case "accepted":
      return `${sender} accepted the invitation`;
    case "left":
      return `${sender} left`;
    case "removed":
      return `${sender} removed a member`;
    case "renamed":
      return `${sender} renamed the room to ${notice.name}`;
    case "security":
      return securityText(notice.issue, sender);
    case "disappearing": {
      const who = me !== undefined && sender === me ? "You" : sender;
      return notice.seconds === null || notice.seconds <= 0
        ? `${who} turned off disappearing messages`
        : `${who} set messages to disappear after ${timerLabel(notice.seconds)}`;
    }
    default:
      return `${sender} changed the room`;
  }
}

/** A security notice, said plainly: a refused event (what the server passed on from
 * `sender` that this device would not take, so that nobody is let into the room's
 * encryption unseen), or news of `sender`'s security code (changed, verified). */
export function securityText(issue: SecurityIssue, sender: string): string {
  switch (issue) {
    case "key_changed":
      return `${sender}'s security code changed`;
    case "verified":
      return `${sender} is verified`;
    case "uncertified":
      return `Refused: a device ${sender}'s account did not certify was to read this room`;
    case "not_a_member":
      return `Refused: ${sender} tried to let a device of someone not in this room read it`;
    case "wrong_sender":
      return `Refused: a message said to be ${sender}'s came from another device`;
    case "bad_signature":
      return `Refused: a message said to be ${sender}'s was not signed by them`;
  }
}

/** How far I trust a contact's security code, as a badge: none while unverified (the usual
 * case), "Verified", or a warning that it changed. */
export function trustBadge(trust: Trust): { text: string; cls: string; label: string } | null {
  switch (trust) {
    case "unverified":
      return null;
    case "verified":
      return { text: "✓ Verified", cls: "trust verified", label: "Verified" };
    case "changed":
      return { text: "⚠ Code changed", cls: "trust changed", label: "Security code changed" };
  }
}

/** Why an unsent item is stuck, said plainly (the server's typed reason). */
export function stuckReason(reason: ServerErrorCode | null): string {
  switch (reason) {
    case null:
      return "unknown reason";
    case "forbidden":
      return "you can no longer send there";
    case "not_found":
      return "the chat or person no longer exists";
    case "too_large":
      return "it is too large for this server";
    case "quota_exceeded":
      return "your space on the server is full";
    case "storage_full":
      return "the server is full for now";
    case "rate_limited":
      return "sending too fast";
    case "invalid_input":
      return "the server could not accept it";
    case "unauthenticated":
      return "you are signed out";
    case "shutting_down":
    case "internal":
    case "too_slow":
      return "the server had a problem";
    default:
      return "the server refused it";
  }
}

/** The disappearing-message timers the chat menu offers, in seconds (0: off). */
export const TIMER_CHOICES = [0, 30, 300, 3600, 86_400, 604_800];

/** A disappearing-message timer in words: "30 seconds", "1 day", "2 weeks"; "Off" for 0. */
export function timerLabel(seconds: number): string {
  if (seconds <= 0) return "Off";
  const units: [number, string][] = [[604_800, "week"], [86_400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [size, word] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${word}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

/** A piece of message text: plain, or a mention (`@name`, as written). */
export type MentionPart = { text: string } | { mention: string; name: string };

/**
 * Splits text into plain parts and `@name` mentions, as the core finds them
 * (core/src/mentions.rs): an `@` that starts a word, then letters, digits, `_`, `.` and `-`,
 * without a final `.` or `-` (a sentence may end right after a name). `name` is lower-cased.
 */
export function mentionParts(text: string): MentionPart[] {
  const parts: MentionPart[] = [];
  let last = 0;
  for (const m of text.matchAll(/@([A-Za-z0-9_.-]+)/g)) {
    const at = m.index ?? 0;
    const before = [...text.slice(Math.max(0, at - 2), at)].at(-1) ?? "";
    const name = m[1].replace(/[.-]+$/, "");
    // An address (ann@example.org) is not a mention.
    if (name === "" || /[\p{Alphabetic}\p{N}]/u.test(before)) continue;
    if (at > last) parts.push({ text: text.slice(last, at) });
    parts.push({ mention: `@${name}`, name: name.toLowerCase() });
    last = at + 1 + name.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}
