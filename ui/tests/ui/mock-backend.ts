// A stand-in for the Rust side in fast UI tests: answers the app's commands from memory,
// records every call in `window.__calls`, and lets the test emit core events
// (`window.__emit`). The real backend is exercised by the end-to-end tests (tests/e2e).

import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { Device, Message, OutboxEntry, RoomSummary, SearchHit, Startup, Trust } from "../../src/bindings";

declare global {
  interface Window {
    __calls: { cmd: string; args: unknown }[];
    __emit: (event: string, payload: unknown) => Promise<void>;
    __rooms: RoomSummary[];
    __refuse: (room: number) => void;
    __devices: Device[];
  }
}

const now = Date.now();
const DAY = 86_400_000;
// The timeline groups by calendar day: "today" and "yesterday" must stay so whatever the
// hour the tests run at (a minute past midnight, now - 1 day - 1 hour is two days ago).
const startOfToday = new Date(now).setHours(0, 0, 0, 0);
const today = (ago: number) => Math.max(now - ago, startOfToday);
const yesterdayNoon = startOfToday - DAY / 2;

function message(room: number, seq: number | null, sender: string, text: string, at: number, state: Message["state"] = "read"): Message {
  return {
    room, seq, request_id: `r${room}-${seq ?? "p"}-${text.length}`, sender, at_ms: at, text, notice: null, state,
    position: seq === null ? 2 ** 52 : seq << 20, image: null, file: null, video: null, call: null,
    reply_to: null, edited: false, deleted: false, reactions: [], forwarded: false, expires_ms: null, mentions_me: false,
  };
}

/** A room in the chat list, with what most rooms have. */
function summary(room: number, name: string, fields: Partial<RoomSummary>): RoomSummary {
  return {
    room, server_id: room * 10, name, unread: 0, last_seq: 0, last_message: null, my_last_state: null, member: true, direct: true,
    last_activity_ms: now, typing: [], request_from: null, draft: null, disappearing_s: null, muted: false, unread_mentions: 0, ...fields,
  };
}

export function install(scenario: string) {
  window.__calls = [];
  window.__emit = (event, payload) => emit(event, payload);
  const session = { server: "http://127.0.0.1:7878", username: "ann", user_id: 1, device_id: 11, encrypted: false, pin: null };
  const rooms: RoomSummary[] = [
    summary(1, "bob", { unread: 2, last_seq: 3, last_message: "See you at 6?", last_activity_ms: now - 60_000 }),
    summary(2, "Climbing club", { last_seq: 2, last_message: "Photo", my_last_state: "delivered", direct: false, last_activity_ms: now - 2 * DAY }),
  ];
  // A new profile: no chats until the test adds one (as a message from someone would).
  if (scenario === "no-chats") rooms.splice(0, rooms.length);
  window.__rooms = rooms;
  if (scenario === "request") {
    rooms.unshift(summary(3, "mallory", { unread: 1, last_seq: 2, last_message: "Hi, remember me?", last_activity_ms: now - 1_000, request_from: "mallory" }));
  }
  const messages: Record<number, Message[]> = {
    1: [
      message(1, 4, "bob", "Menu: https://example.org/menu?day=fri.", today(30_000), "sent"),
      { ...message(1, 3, "bob", "See you at 6?", today(60_000), "sent"), reactions: [{ emoji: "🎉", users: ["bob"], mine: false }] },
      message(1, 2, "ann", "Sounds good", yesterdayNoon + 3_600_000, "read"),
      message(1, 1, "bob", "Dinner tomorrow?", yesterdayNoon, "sent"),
    ],
    2: [message(2, 2, "ann", "Who's in for Saturday?", now - 2 * DAY, "delivered"), message(2, 1, "cy", "Hi all", now - 3 * DAY, "sent")],
    3: [message(3, 2, "mallory", "Hi, remember me?", now - 1_000, "sent")],
  };
  // A long chat with bob: 120 messages, the last 80 unread — the first unread is two pages
  // back (the UI loads 50 at a time).
  if (scenario === "long") {
    messages[1] = Array.from({ length: 120 }, (_, i) => message(1, 120 - i, "bob", `Message number ${120 - i}`, today((i + 1) * 1_000), "sent"));
    Object.assign(rooms[0], { unread: 80, last_seq: 120, last_message: "Message number 120" });
  }
  // The climbing club is muted, and cy mentions me there (and someone else, and writes markup).
  if (scenario === "mention") {
    messages[2].unshift({ ...message(2, 3, "cy", "@ann can you bring the rope? <img src=x onerror=alert(1)> cc @dave.", today(5_000), "sent"), mentions_me: true });
    Object.assign(rooms[1], { unread: 1, unread_mentions: 1, muted: true, last_seq: 3, last_message: "@ann can you bring the rope?", last_activity_ms: today(5_000) });
  }
  // Messages made here (sent, forwarded, timer notices) get request ids of their own.
  let made = 0;
  const mine = (room: number, text: string): Message => {
    const r = rooms.find((x) => x.room === room);
    const timer = r?.disappearing_s ?? 0;
    return { ...message(room, null, "ann", text, Date.now(), "pending"), request_id: `r${room}-new${++made}`, expires_ms: timer > 0 ? Date.now() + timer * 1000 : null };
  };
  const changed = (room: number) => void emit("core", [{ kind: "timeline_changed", room }, { kind: "rooms_changed" }]);
  // Edits keep every version (message_versions), oldest first.
  const versions: Record<string, [string, number][]> = {};
  // Drafts, by room (also in the room list).
  const drafts: Record<number, string> = {};
  // Verified contacts: how far I trust each one. In "held", bob's verified code changed:
  // the chat has the notice, and sending there is held until I accept it.
  const trust: Record<string, Trust> = { bob: scenario === "held" ? "changed" : "unverified", dana: "unverified" };
  if (scenario === "held") {
    messages[1].unshift({ ...message(1, null, "bob", "security: bob's security code changed", today(10_000)), notice: { kind: "security", issue: "key_changed" }, position: (5 << 20) });
  }
  const bobsCode = `tidings:verify?v=1&from=bob&to=ann&code=${"0123456789".repeat(6)}`;
  const verified = (username: string) => {
    trust[username] = "verified";
    void emit("core", [{ kind: "timeline_changed", room: 1 }]);
    return null;
  };
  const outbox: OutboxEntry[] =
    scenario === "failed-send"
      ? [{ id: 7, request_id: "x", room: 1, kind: "send", state: "failed", attempts: 1, reason: "too_large", error: "too_large: over the 1 MB limit" }]
      : [];
  // The server refuses the newest pending message: the core marks it failed and says only
  // that the room's timeline changed.
  window.__refuse = (room) => {
    const m = messages[room].find((x) => x.state === "pending");
    if (m) m.state = "failed";
    void emit("core", [{ kind: "timeline_changed", room }]);
  };
  let signedIn = scenario !== "fresh";
  const devices: Device[] = [{ id: 11, name: "ann's laptop", created_ms: now - 9 * DAY, last_seen_ms: now, current: true }];
  window.__devices = devices;
  // Link codes: the one shown, one used already, and what a contact code or garbage gets.
  const linkUri = `tidings:link?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&secret=${"ab".repeat(32)}`;
  const usedLinkUri = `tidings:link?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&secret=${"cd".repeat(32)}`;
  const link = (code: string) => {
    if (code.trim() === usedLinkUri) {
      throw { code: "server", message: "this link code is unknown, used or expired: show a new one", reason: "invalid_link_code" };
    }
    if (code.trim().startsWith("tidings:contact?")) {
      throw { code: "bad_link_code", message: "This is a contact code, for adding a person. To link this device, show the link code from Settings › Link a new device on the device you already use.", reason: null };
    }
    if (code.trim() !== linkUri) {
      throw { code: "bad_link_code", message: "This is not a Tidings link code. On the device you already use, open Settings › Link a new device and show its code here.", reason: null };
    }
    signedIn = true;
    return { ...session, device_id: 12 };
  };
  const blocked: string[] = scenario === "request" ? ["mallory"] : [];

  mockIPC((cmd, args) => {
    window.__calls.push({ cmd, args });
    const a = (args ?? {}) as Record<string, unknown>;
    switch (cmd) {
      case "startup":
        return { session: signedIn ? session : null, suggested_server: "http://127.0.0.1:7878", connection: "online" } satisfies Startup;
      case "sign_up":
      case "sign_in":
        if (a.password === "wrong-password") {
          throw { code: "server", message: "wrong username or password", reason: "bad_credentials" };
        }
        signedIn = true;
        return { ...session, username: String(a.username) };
      case "rooms":
        return signedIn ? rooms : [];
      case "outbox":
        return outbox;
      case "messages": {
        const all = messages[Number(a.room)] ?? [];
        const before = a.before === null || a.before === undefined ? Infinity : Number(a.before);
        return all.filter((m) => m.position < before).slice(0, Number(a.limit));
      }
      case "send_text": {
        if (Number(a.room) === 1 && trust.bob === "changed") {
          throw { code: "key_changed", message: "bob's security code changed — accept it or verify again to send", reason: null };
        }
        const list = messages[Number(a.room)];
        list.unshift(mine(Number(a.room), String(a.text)));
        void emit("core", [{ kind: "timeline_changed", room: Number(a.room) }]);
        return null;
      }
      case "forward": {
        const from = messages[Number(a.from)]?.find((m) => m.request_id === a.message && !m.deleted && !m.notice);
        if (!from) throw { code: "no_such_message", message: "no such message", reason: null };
        const to = Number(a.room);
        messages[to].unshift({ ...mine(to, from.text), forwarded: true, image: from.image, file: from.file, video: from.video });
        const r = rooms.find((x) => x.room === to)!;
        Object.assign(r, { last_message: from.text, my_last_state: "pending", last_activity_ms: Date.now() });
        changed(to);
        return null;
      }
      case "set_disappearing": {
        const room = Number(a.room);
        const seconds = Number(a.seconds);
        rooms.find((x) => x.room === room)!.disappearing_s = seconds > 0 ? seconds : null;
        messages[room].unshift({ ...mine(room, ""), expires_ms: null, notice: { kind: "disappearing", seconds: seconds > 0 ? seconds : null } });
        changed(room);
        return null;
      }
      case "set_draft": {
        const room = Number(a.room);
        const text = String(a.text).trim() === "" ? null : String(a.text);
        if ((drafts[room] ?? null) === text) return null;
        if (text === null) delete drafts[room];
        else drafts[room] = text;
        rooms.find((x) => x.room === room)!.draft = text;
        void emit("core", [{ kind: "rooms_changed" }]);
        return null;
      }
      case "draft":
        return drafts[Number(a.room)] ?? null;
      case "first_unread": {
        // The oldest of the room's `unread` newest messages from others.
        const r = rooms.find((x) => x.room === Number(a.room));
        if (!r || r.unread === 0) return null;
        const theirs = (messages[r.room] ?? []).filter((m) => m.sender !== "ann" && m.notice === null && m.seq !== null);
        return (theirs[r.unread - 1] ?? theirs.at(-1))?.position ?? null;
      }
      case "mark_read": {
        const r = rooms.find((x) => x.room === Number(a.room));
        if (r && (r.unread > 0 || r.unread_mentions > 0)) {
          Object.assign(r, { unread: 0, unread_mentions: 0 });
          void emit("core", [{ kind: "rooms_changed" }]);
        }
        return null;
      }
      case "set_room_muted": {
        rooms.find((x) => x.room === Number(a.room))!.muted = Boolean(a.muted);
        void emit("core", [{ kind: "rooms_changed" }]);
        return null;
      }
      case "message_versions": {
        const m = messages[Number(a.room)]?.find((x) => x.request_id === a.message);
        if (!m) throw { code: "no_such_message", message: "no such message", reason: null };
        return versions[m.request_id] ?? [[m.text, m.at_ms]];
      }
      case "reply": {
        const list = messages[Number(a.room)];
        const to = list.find((m) => m.request_id === a.to)!;
        list.unshift({ ...mine(Number(a.room), String(a.text)),
          reply_to: { request_id: to.request_id, seq: to.seq, position: to.position, sender: to.sender, text: to.text } });
        void emit("core", [{ kind: "timeline_changed", room: Number(a.room) }]);
        return null;
      }
      case "edit_message":
      case "delete_message":
      case "react": {
        const list = messages[Number(a.room)];
        const i = list.findIndex((m) => m.request_id === a.to);
        const m = list[i];
        if (cmd === "edit_message") {
          versions[m.request_id] ??= [[m.text, m.at_ms]];
          versions[m.request_id].push([String(a.text), Date.now()]);
          Object.assign(m, { text: String(a.text), edited: true });
        }
        if (cmd === "delete_message" && a.forEveryone) Object.assign(m, { text: "message deleted", deleted: true, reactions: [] });
        if (cmd === "delete_message" && !a.forEveryone) list.splice(i, 1);
        if (cmd === "react") {
          const emoji = String(a.emoji);
          const r = m.reactions.find((x) => x.emoji === emoji) ?? { emoji, users: [], mine: false };
          r.users = r.users.filter((u) => u !== "ann").concat(a.on ? ["ann"] : []);
          r.mine = Boolean(a.on);
          // In order of first use, as the core keeps them.
          const at = m.reactions.findIndex((x) => x.emoji === emoji);
          if (at < 0 && r.users.length > 0) m.reactions.push(r);
          else if (at >= 0 && r.users.length > 0) m.reactions[at] = r;
          else if (at >= 0) m.reactions.splice(at, 1);
        }
        void emit("core", [{ kind: "timeline_changed", room: Number(a.room) }]);
        return null;
      }
      case "search": {
        // Every word as a prefix of a word of the text, case ignored; newest first.
        const words = String(a.query).toLowerCase().split(/\W+/u).filter(Boolean);
        const hits: SearchHit[] = [];
        for (const r of rooms) {
          if (a.room !== null && a.room !== undefined && Number(a.room) !== r.room) continue;
          for (const m of messages[r.room] ?? []) {
            const tokens = m.text.toLowerCase().split(/\W+/u);
            if (m.deleted || words.length === 0 || !words.every((w) => tokens.some((t) => t.startsWith(w)))) continue;
            const snippet = m.text.split(/(\W+)/u).filter(Boolean).map((t) => ({ text: t, hit: words.some((w) => t.toLowerCase().startsWith(w)) }));
            hits.push({ room: r.room, room_name: r.name, seq: m.seq, position: m.position, request_id: m.request_id, sender: m.sender, at_ms: m.at_ms, snippet });
          }
        }
        return hits.sort((x, y) => y.at_ms - x.at_ms).slice(0, Number(a.limit));
      }
      case "retry": {
        outbox.splice(0, outbox.length);
        void emit("core", [{ kind: "outbox_changed" }]);
        return null;
      }
      case "accept_request": {
        const r = rooms.find((x) => x.room === Number(a.room));
        if (r) r.request_from = null;
        void emit("core", [{ kind: "rooms_changed" }]);
        return null;
      }
      case "blocked_users":
        return blocked;
      case "unblock_user":
        blocked.splice(blocked.indexOf(String(a.username)), 1);
        return null;
      case "devices":
        return devices;
      case "link_code": {
        const offer = {
          uri: linkUri,
          svg: "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><rect width='5' height='5'/></svg>",
          expires_ms: Date.now() + 600_000,
          history: a.history ? { messages: 1234, bytes: 2_200_000 } : null,
        };
        // With history, the archive is built and uploaded first: a moment later.
        return a.history ? new Promise((done) => setTimeout(() => done(offer), 300)) : offer;
      }
      case "history_size":
        return { messages: 1234, bytes: 3_400_000 };
      case "link_device":
        return link(String(a.code));
      case "link_device_image":
        // The picture's bytes come raw: a tiny one holds no QR code.
        if (!(args instanceof Uint8Array) || args.length < 16) throw { code: "no_code", message: "no QR code found in the image", reason: null };
        return link(linkUri);
      case "contacts":
        return [{ username: "bob", user_id: 2, room: 1, trust: trust.bob }, { username: "dana", user_id: 4, room: null, trust: trust.dana }];
      case "trust":
        return trust[String(a.username)] ?? "unverified";
      case "verify_code":
        if (a.username === "bob") return { uri: `tidings:verify?v=1&from=ann&to=bob&code=${"9876543210".repeat(6)}`, svg: "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><rect width='4' height='4'/></svg>" };
        throw { code: "no_shared_encryption", message: `No encrypted chat with ${String(a.username)} yet — write to them first`, reason: null };
      case "verify_contact":
        if (String(a.code).trim() === bobsCode) return verified(String(a.username));
        if (String(a.code).startsWith("tidings:verify?")) {
          throw { code: "security_code_mismatch", message: `This is not the security code you share with ${String(a.username)}, so ${String(a.username)} is not verified. Scan the code on ${String(a.username)}'s own device.`, reason: null };
        }
        throw { code: "bad_verify_code", message: "this is not a Tidings security code", reason: null };
      case "verify_contact_image":
        // The picture's bytes come raw (the username in a header): a tiny one holds no code.
        if (!(args instanceof Uint8Array) || args.length < 16) throw { code: "no_code", message: "no QR code found in the image", reason: null };
        return verified("bob");
      case "accept_key":
        if (trust[String(a.username)] === "changed") trust[String(a.username)] = "unverified";
        void emit("core", [{ kind: "rooms_changed" }]);
        return null;
      case "held_by":
        return Number(a.room) === 1 && trust.bob === "changed" ? "bob" : null;
      case "security_code":
        // bob and I share an encrypted chat; dana and I do not yet.
        if (a.username === "bob") return "12345 67890 11111 22222 33333 44444 55555 66666 77777 88888 99999 00000";
        throw { code: "no_shared_encryption", message: `No encrypted chat with ${String(a.username)} yet — write to them first`, reason: null };
      case "contact_code":
        return { uri: "tidings:contact?v=1&server=127.0.0.1%3A7878&user=ann&key=abcdefghijklmnop", svg: "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><rect width='5' height='5'/></svg>" };
      case "add_contact":
        // Eve's code names another key than the one the server hands out for her.
        if (String(a.code).includes("user=eve")) {
          throw { code: "key_mismatch", message: "Security warning: the key the server gave for eve is not the one in eve's code — someone may be intercepting your messages. eve is not verified and sending to them is held: compare your security codes in person.", reason: null };
        }
        throw { code: "bad_contact_code", message: "this is not a Tidings contact code", reason: null };
      default:
        return null;
    }
  }, { shouldMockEvents: true });
}
