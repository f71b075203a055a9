// The app's commands, typed. Every call goes through `invoke`; a failure rejects with an
// AppError ({code, message, reason}) from the Rust side.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AppError,
  ContactCodeView,
  ContactView,
  Device,
  HistorySizeView,
  LinkCodeView,
  Event,
  MemberReceipt,
  Message,
  OutboxEntry,
  RoomSummary,
  SearchHit,
  SessionView,
  Startup,
  Trust,
  VerifyCodeView,
} from "./bindings";

/** Whether a thrown value is an AppError from a command. */
export function isAppError(e: unknown): e is AppError {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/** A sentence for any failure. */
export function errorText(e: unknown): string {
  if (isAppError(e)) {
    if (e.code === "network") return "Cannot reach the server. Check the address and your connection.";
    // The engine's sentence says what is wrong with the address or the certificate.
    if (e.code === "tls") return `Not connected: ${e.message}.`;
    if (e.reason === "bad_credentials") return "Wrong username or password.";
    if (e.reason === "username_taken") return "That username is taken.";
    if (e.reason === "invalid_link_code") return "This link code was used already or has expired. Show a new one on your other device.";
    if (e.reason === "too_many_devices") return "Your account has as many devices as it may. Sign one out (Settings › My devices) and try again.";
    return e.message;
  }
  return String(e);
}

export const api = {
  startup: () => invoke<Startup>("startup"),
  ready: (rooms: number) => invoke<void>("ready", { rooms }),
  signUp: (server: string, username: string, password: string) =>
    invoke<SessionView>("sign_up", { server, username, password }),
  signIn: (server: string, username: string, password: string) =>
    invoke<SessionView>("sign_in", { server, username, password }),
  signOut: () => invoke<void>("sign_out"),
  devices: () => invoke<Device[]>("devices"),
  revokeDevice: (device: number) => invoke<void>("revoke_device", { device }),
  rooms: () => invoke<RoomSummary[]>("rooms"),
  messages: (room: number, before: number | null, limit: number) =>
    invoke<Message[]>("messages", { room, before, limit }),
  readBy: (room: number, seq: number) => invoke<MemberReceipt[]>("read_by", { room, seq }),
  sendText: (room: number, text: string) => invoke<void>("send_text", { room, text }),
  reply: (room: number, to: string, text: string) => invoke<void>("reply", { room, to, text }),
  editMessage: (room: number, to: string, text: string) => invoke<void>("edit_message", { room, to, text }),
  deleteMessage: (room: number, to: string, forEveryone: boolean) =>
    invoke<void>("delete_message", { room, to, forEveryone }),
  react: (room: number, to: string, emoji: string, on: boolean) => invoke<void>("react", { room, to, emoji, on }),
  search: (query: string, room: number | null, limit: number) => invoke<SearchHit[]>("search", { query, room, limit }),
  /** Sends a copy of message `message` (a request id) of room `from` to room `room`. */
  forward: (room: number, from: number, message: string) => invoke<void>("forward", { room, from, message }),
  /** Sets the room's disappearing-message timer (0: off). */
  setDisappearing: (room: number, seconds: number) => invoke<void>("set_disappearing", { room, seconds }),
  /** Keeps what I am writing in a room (empty: no draft). */
  setDraft: (room: number, text: string) => invoke<void>("set_draft", { room, text }),
  draft: (room: number) => invoke<string | null>("draft", { room }),
  /** The timeline position of the room's first unread message from others (ask before `markRead`). */
  firstUnread: (room: number) => invoke<number | null>("first_unread", { room }),
  /** Mutes a room (only mentions of me notify) or unmutes it. */
  setRoomMuted: (room: number, muted: boolean) => invoke<void>("set_room_muted", { room, muted }),
  /** A message's versions, oldest first: as sent, then each edit (text, Unix ms). */
  messageVersions: (room: number, message: string) => invoke<[string, number][]>("message_versions", { room, message }),
  sendAttachment: async (room: number, file: File) =>
    invoke<void>("send_attachment", new Uint8Array(await file.arrayBuffer()), {
      headers: { room: String(room), name: encodeURIComponent(file.name || "file") },
    }),
  thumbnail: (room: number, seq: number) => invoke<ArrayBuffer>("thumbnail", { room, seq }),
  fullImage: (room: number, seq: number) => invoke<ArrayBuffer>("full_image", { room, seq }),
  outbox: () => invoke<OutboxEntry[]>("outbox"),
  retry: (id: number) => invoke<void>("retry", { id }),
  discard: (id: number) => invoke<void>("discard", { id }),
  markRead: (room: number) => invoke<void>("mark_read", { room }),
  setTyping: (room: number, active: boolean) => invoke<void>("set_typing", { room, active }),
  openDirect: (username: string) => invoke<number>("open_direct", { username }),
  createGroup: (name: string, members: string[]) => invoke<number>("create_group", { name, members }),
  invite: (room: number, username: string) => invoke<void>("invite", { room, username }),
  leave: (room: number) => invoke<void>("leave", { room }),
  acceptRequest: (room: number) => invoke<void>("accept_request", { room }),
  declineRequest: (room: number) => invoke<void>("decline_request", { room }),
  blockUser: (username: string) => invoke<void>("block_user", { username }),
  unblockUser: (username: string) => invoke<void>("unblock_user", { username }),
  blockedUsers: () => invoke<string[]>("blocked_users"),
  openLink: (url: string) => invoke<void>("open_link", { url }),
  rename: (room: number, name: string) => invoke<void>("rename", { room, name }),
  contactCode: (reset: boolean) => invoke<ContactCodeView>("contact_code", { reset }),
  addContact: (code: string) => invoke<number>("add_contact", { code }),
  addContactImage: async (image: Blob) =>
    invoke<number>("add_contact_image", new Uint8Array(await image.arrayBuffer())),
  contacts: () => invoke<ContactView[]>("contacts"),
  /** The 60-digit security code shared with `username`, in twelve groups of five. */
  securityCode: (username: string) => invoke<string>("security_code", { username }),
  /** How far I trust `username`'s identity key. */
  trust: (username: string) => invoke<Trust>("trust", { username }),
  /** The security code shared with `username` as the QR code their device scans. */
  verifyCode: (username: string) => invoke<VerifyCodeView>("verify_code", { username }),
  /** Verifies `username` by the code their screen shows (pasted text). */
  verifyContact: (username: string, code: string) => invoke<void>("verify_contact", { username, code }),
  /** Verifies `username` by the code their screen shows (a picture of it). */
  verifyContactImage: async (username: string, image: Blob) =>
    invoke<void>("verify_contact_image", new Uint8Array(await image.arrayBuffer()), {
      headers: { username: encodeURIComponent(username) },
    }),
  /** Accepts `username`'s changed security code: sending to them resumes, unverified. */
  acceptKey: (username: string) => invoke<void>("accept_key", { username }),
  /** Who in `room` has a changed security code that holds sending there, if anyone. */
  heldBy: (room: number) => invoke<string | null>("held_by", { room }),
  linkCode: (history: boolean) => invoke<LinkCodeView>("link_code", { history }),
  historySize: () => invoke<HistorySizeView>("history_size"),
  linkDevice: (code: string) => invoke<SessionView>("link_device", { code }),
  linkDeviceImage: async (image: Blob) =>
    invoke<SessionView>("link_device_image", new Uint8Array(await image.arrayBuffer())),
  call: (room: number) => invoke<void>("call", { room }),
  acceptCall: () => invoke<void>("accept_call"),
  declineCall: () => invoke<void>("decline_call"),
  hangUp: () => invoke<void>("hang_up"),
  /** Mutes my microphone in the call. */
  setMuted: (muted: boolean) => invoke<void>("set_muted", { muted }),
};

/** The core's events, in batches. */
export function onCoreEvents(f: (batch: Event[]) => void): Promise<UnlistenFn> {
  return listen<Event[]>("core", (e) => f(e.payload));
}

/** The session ended (signed out elsewhere, device revoked). */
export function onSessionEnded(f: (e: AppError) => void): Promise<UnlistenFn> {
  return listen<AppError>("session-ended", (e) => f(e.payload));
}
