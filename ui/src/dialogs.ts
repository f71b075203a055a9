// Modal dialogs (native <dialog>: focus trap, Escape to close, screen-reader semantics).

import { api, errorText, isAppError } from "./api";
import type { RoomSummary, Trust } from "./bindings";
import { fill, h } from "./dom";
import { bytes, clock, dayLabel, hue, initials, linkExpiry, outboxKind, stuckReason, trustBadge } from "./format";
import { icon } from "./icons";
import { scanner, showSvg } from "./scanner";
import { store } from "./store";

/** Closes every open dialog (on sign-out). */
export function closeDialogs(): void {
  for (const d of document.querySelectorAll<HTMLDialogElement>("dialog.modal, dialog.lightbox")) d.close();
}

/** A user-lookup failure in words ("not_found" here means no such username). */
function userError(e: unknown): string {
  return isAppError(e) && e.reason === "not_found" ? "No user with that username." : errorText(e);
}

/** Opens a modal with a title and body; returns a closer. */
export function modal(title: string, body: HTMLElement, id: string): { close: () => void; dialog: HTMLDialogElement } {
  document.getElementById(id)?.remove();
  const close = h("button", { class: "icon close", "aria-label": "Close", type: "button" }, icon("close"));
  const dialog = h("dialog", { id, class: "modal", "aria-labelledby": `${id}-title` },
    h("header", {}, h("h2", { id: `${id}-title` }, title), close),
    body,
  );
  const done = () => {
    dialog.close();
    dialog.remove();
  };
  close.addEventListener("click", done);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return { close: done, dialog };
}

/** A form row: label + input. */
function field(id: string, label: string, attrs: Record<string, string | boolean> = {}): [HTMLElement, HTMLInputElement] {
  const input = h("input", { id, name: id, autocapitalize: "off", spellcheck: "false", ...attrs });
  return [h("div", { class: "field" }, h("label", { for: id }, label), input), input];
}

/** New chat (by username) or new group (name + members). */
export function newChatDialog(open: (room: number) => void): void {
  const [userRow, user] = field("new-chat-username", "Username", { required: true, placeholder: "e.g. alice" });
  const err1 = h("p", { class: "form-error", role: "alert" });
  const direct = h("form", { class: "stack" }, userRow, err1, h("button", { class: "primary", type: "submit", id: "new-chat-start" }, "Start chat"));
  const [nameRow, name] = field("new-group-name", "Group name", { required: true, maxlength: "64" });
  const [membersRow, members] = field("new-group-members", "Members (usernames, comma-separated)", { placeholder: "alice, bob" });
  const err2 = h("p", { class: "form-error", role: "alert" });
  const group = h("form", { class: "stack" }, nameRow, membersRow, err2, h("button", { class: "primary", type: "submit", id: "new-group-create" }, "Create group"));
  const body = h("div", { class: "stack" }, h("h3", {}, "Chat with someone"), direct, h("hr"), h("h3", {}, "New group"), group);
  const { close } = modal("New chat", body, "new-chat");
  direct.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err1.textContent = "";
    try {
      const room = await api.openDirect(user.value);
      close();
      open(room);
    } catch (e) {
      err1.textContent = userError(e);
    }
  });
  group.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err2.textContent = "";
    try {
      const room = await api.createGroup(name.value, members.value.split(","));
      close();
      open(room);
    } catch (e) {
      err2.textContent = userError(e);
    }
  });
  user.focus();
}

/** Contacts: my QR code, add by picture / paste / camera / text, the list. */
export function contactsDialog(open: (room: number) => void): void {
  const qr = h("div", { class: "qr", id: "my-qr", role: "img", "aria-label": "My contact QR code" }, "Loading…");
  const uri = h("input", { id: "my-code", readonly: true, "aria-label": "My contact code as text" });
  const status = h("p", { class: "form-error", role: "alert", id: "contact-status" });
  const list = h("ul", { class: "contacts", id: "contact-list", "aria-label": "Contacts" });
  const [codeRow, codeText] = field("contact-code-text", "…or paste a contact code", { placeholder: "tidings:contact?…" });
  const reset = h("button", { type: "button", class: "danger", id: "reset-code" }, "Reset my code");

  const load = async (resetCode: boolean) => {
    try {
      const code = await api.contactCode(resetCode);
      showSvg(qr, code.svg);
      uri.value = code.uri;
    } catch (e) {
      fill(qr, h("p", {}, errorText(e)));
    }
  };
  const loadContacts = async () => {
    try {
      const contacts = await api.contacts();
      fill(list, contacts.length === 0 ? h("li", { class: "muted" }, "No contacts yet") : contacts.map((c) =>
        h("li", { "data-username": c.username, "data-trust": c.trust },
          h("button", { type: "button", class: "contact", onclick: () => { if (c.room !== null) { done.close(); open(c.room); } } }, c.username, trustTag(c.trust)),
          h("button", { type: "button", class: "small security-code-button", "aria-label": `Security code with ${c.username}`,
            "data-username": c.username, onclick: () => securityCodeDialog(c.username, () => void loadContacts()) }, "Security code"))));
    } catch (e) {
      fill(list, h("li", { class: "muted" }, errorText(e)));
    }
  };
  const scan = scanner({
    ids: { pick: "qr-pick", file: "qr-file", camera: "qr-camera" },
    status,
    busy: "Adding…",
    scan: api.addContactImage,
    found: async (room: number) => {
      status.textContent = "Contact added.";
      await loadContacts();
      done.close();
      open(room);
    },
    alive: () => done.dialog.open,
    // Added, but the key the server gave is not the one in their code: the list shows it.
    failed: (e) => { if (isAppError(e) && e.code === "key_mismatch") void loadContacts(); },
  });
  codeText.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && codeText.value.trim()) void scan.attempt(api.addContact(codeText.value));
  });
  reset.addEventListener("click", async () => {
    if (confirm("Reset your code? People who have the old one can no longer add you with it.")) await load(true);
  });

  const body = h("div", { class: "contacts-body" },
    h("section", { class: "my-code", "aria-label": "My code" }, h("p", { class: "muted" }, "Let people scan this to add you."), qr, uri, reset),
    h("section", { class: "add", "aria-label": "Add a contact" },
      scan.buttons,
      h("p", { class: "muted small" }, "You can also paste a screenshot of a QR code here."),
      scan.video, codeRow, status,
      h("h3", {}, "Contacts"), list),
  );
  const done = modal("Contacts", body, "contacts");
  scan.takePastes(done.dialog);
  done.dialog.addEventListener("close", scan.stop);
  void load(false);
  void loadContacts();
}

/** A contact's trust as a badge beside their name (nothing while unverified). */
function trustTag(trust: Trust): HTMLElement | null {
  const badge = trustBadge(trust);
  return badge ? h("span", { class: badge.cls, title: badge.label, "aria-label": badge.label }, badge.text) : null;
}

/**
 * A contact's security code screen: whether they are verified, the 60 digits we share (three
 * rows of four groups of five) to compare with the ones on their device, the QR code their
 * device scans to verify me, and "Scan their code" (picture, pasted screenshot, camera or
 * pasted text) to verify them; when their code changed, "Accept new code". Or, before any
 * encrypted chat with them, why there is none yet. `changed` is told when their trust did.
 */
export function securityCodeDialog(username: string, changed: () => void = () => undefined): void {
  const shown = h("div", { class: "stack", id: "security-code-body", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const trustLine = h("div", { class: "trust-line", id: "security-trust" });
  const qr = h("div", { class: "qr shown", id: "verify-qr", role: "img", "aria-label": `Security code QR code for ${username} to scan` });
  const status = h("p", { class: "form-error", role: "alert", id: "verify-status" });
  const [codeRow, codeText] = field("verify-code-text", "…or paste the code from their screen", { placeholder: "tidings:verify?…" });
  const scan = scanner({
    ids: { pick: "verify-pick", file: "verify-file", camera: "verify-camera" },
    status,
    busy: "Verifying…",
    scan: (image: Blob) => api.verifyContactImage(username, image),
    found: async () => {
      codeText.value = "";
      await showTrust();
      status.textContent = `${username} is verified.`;
      changed();
    },
    alive: () => done.dialog.open,
  });
  codeText.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && codeText.value.trim()) {
      ev.preventDefault();
      void scan.attempt(api.verifyContact(username, codeText.value));
    }
  });
  const accept = async () => {
    status.textContent = "";
    try {
      await api.acceptKey(username);
      await showTrust();
      changed();
    } catch (e) {
      status.textContent = errorText(e);
    }
  };
  const showTrust = async () => {
    let trust: Trust;
    try {
      trust = await api.trust(username);
    } catch (e) {
      fill(trustLine, h("p", { class: "form-error" }, errorText(e)));
      return;
    }
    trustLine.dataset.trust = trust;
    switch (trust) {
      case "verified":
        fill(trustLine, trustTag(trust), h("span", { class: "muted small" }, ` You verified ${username}.`));
        break;
      case "unverified":
        fill(trustLine, h("span", { class: "muted" }, `${username} is not verified yet.`));
        break;
      case "changed":
        fill(trustLine,
          h("p", { class: "security-warning", id: "security-changed" },
            `${username}'s security code changed: a new device of theirs, a reinstall — or someone in between. `,
            `Messages to ${username} are held until you accept the new code or verify them again.`),
          h("button", { type: "button", class: "primary", id: "accept-key", onclick: () => void accept() }, "Accept new code"));
        break;
    }
  };
  const done = modal(`Security code with ${username}`, h("div", {}, shown), "security-code");
  scan.takePastes(done.dialog);
  done.dialog.addEventListener("close", scan.stop);
  void (async () => {
    try {
      const [grouped, verify] = await Promise.all([api.securityCode(username), api.verifyCode(username)]);
      const groups = grouped.split(" ");
      const rows = [0, 4, 8].map((i) => h("div", { class: "security-code-row" }, groups.slice(i, i + 4).join(" ")));
      showSvg(qr, verify.svg);
      fill(shown,
        trustLine,
        h("div", { class: "security-code", id: "security-code-digits", role: "group", "aria-label": "Security code digits" }, rows),
        h("p", { id: "security-code-explain" }, `Compare these digits with the ones on ${username}'s device. If they match, nobody is listening in between.`),
        h("div", { class: "verify-body" },
          h("section", { class: "stack", "aria-labelledby": "verify-scan-title" },
            h("h3", { id: "verify-scan-title" }, "Scan their code"),
            h("p", { class: "muted small" }, `Open ${username}'s security code on their device and scan it: if it matches, ${username} is verified here. You can also paste a screenshot of it.`),
            scan.buttons, scan.video, codeRow, status),
          h("section", { class: "my-code", "aria-label": "My code for them to scan" },
            qr, h("p", { class: "muted small" }, `Let ${username} scan this to verify you on their device.`))));
      await showTrust();
    } catch (e) {
      fill(shown, h("p", { class: "form-error", role: "alert", id: "security-code-error" }, errorText(e)));
    }
  })();
}

/** Settings: who I am, my devices, sign out. */
export function settingsDialog(signedOut: () => void): void {
  const s = store.session;
  const devices = h("ul", { class: "devices", id: "device-list", "aria-label": "My devices" }, h("li", {}, "Loading…"));
  const signOut = h("button", { class: "danger", type: "button", id: "sign-out" }, "Sign out of this device");
  const err = h("p", { class: "form-error", role: "alert" });
  const loadDevices = async () => {
    try {
      const list = await api.devices();
      fill(devices, list.map((d) => h("li", {},
        h("div", {}, h("strong", {}, d.name), d.current ? h("span", { class: "badge-soft" }, "this device") : null,
          h("div", { class: "muted small" }, `Last active ${new Date(d.last_seen_ms).toLocaleString()}`)),
        d.current ? null : h("button", { type: "button", class: "danger small", onclick: async () => {
          try { await api.revokeDevice(d.id); await loadDevices(); } catch (e) { err.textContent = errorText(e); }
        } }, "Sign out"))));
    } catch (e) {
      fill(devices, h("li", { class: "muted" }, errorText(e)));
    }
  };
  const blocked = h("ul", { class: "devices", id: "blocked-list", "aria-label": "Blocked people" });
  const loadBlocked = async () => {
    try {
      const names = await api.blockedUsers();
      fill(blocked, names.length === 0 ? h("li", { class: "muted" }, "Nobody.") : names.map((name) => h("li", {},
        h("strong", {}, name),
        h("button", { type: "button", class: "small", onclick: async () => {
          try { await api.unblockUser(name); await loadBlocked(); } catch (e) { err.textContent = errorText(e); }
        } }, "Unblock"))));
    } catch (e) {
      fill(blocked, h("li", { class: "muted" }, errorText(e)));
    }
  };
  const link = h("button", { type: "button", id: "link-device" }, "Link a new device");
  link.addEventListener("click", () => linkDeviceDialog(() => void loadDevices()));
  signOut.addEventListener("click", async () => {
    try {
      await api.signOut();
      done.close();
      signedOut();
    } catch (e) {
      err.textContent = errorText(e);
    }
  });
  const body = h("div", { class: "stack" },
    h("p", {}, "Signed in as ", h("strong", { id: "me" }, s?.username ?? "?"), " on ", h("code", {}, s?.server ?? "?"),
      s && !s.encrypted ? h("span", { class: "insecure", id: "not-encrypted" }, " — not encrypted") : ""),
    h("h3", {}, "My devices"), devices, h("div", { class: "row" }, link), h("h3", {}, "Blocked people"), blocked, err, signOut);
  const done = modal("Settings", body, "settings");
  void loadDevices();
  void loadBlocked();
}

/** A link code for a new device of mine: its QR code, its text, how long it works, and
 * (opt-in, its size shown first) the history of my chats to send with it. Polls my devices
 * while open, to say when one has linked; `closed` refreshes the list behind. */
function linkDeviceDialog(closed: () => void): void {
  const qr = h("div", { class: "qr shown", id: "link-qr", role: "img", "aria-label": "Link code QR code" }, "Loading…");
  const code = h("input", { id: "link-code", class: "grow", readonly: true, "aria-label": "Link code as text" });
  const copy = h("button", { type: "button", id: "link-copy" }, "Copy");
  const expires = h("p", { class: "muted small", id: "link-expires", "aria-live": "polite" });
  const status = h("p", { class: "form-error", role: "alert", id: "link-status" });
  const again = h("button", { type: "button", id: "link-again", hidden: true }, "Show a new code");
  // Off until I choose: then a new code is made, with the archive sealed and uploaded first.
  const history = h("input", { type: "checkbox", id: "link-history" });
  const historySize = h("span", { id: "link-history-size", class: "muted" });
  const historyRow = h("label", { class: "check" }, history, h("span", {}, "Also send my past chats to the new device ", historySize));
  const historyStatus = h("p", { class: "muted small", id: "link-history-status", "aria-live": "polite" });
  let until = 0;
  let known: Set<number> | null = null;
  // Only the newest request's answer is shown (the box may be ticked again meanwhile).
  let generation = 0;
  const tick = () => {
    if (until === 0) return;
    expires.textContent = linkExpiry(until);
    again.hidden = Date.now() < until;
  };
  const load = async () => {
    const mine = ++generation;
    const withHistory = history.checked;
    status.textContent = "";
    until = 0;
    expires.textContent = "";
    again.hidden = true;
    historyStatus.textContent = "";
    if (withHistory) {
      fill(qr, h("p", {}, "Preparing your past chats…"));
      code.value = "";
    }
    try {
      const offer = await api.linkCode(withHistory);
      if (mine !== generation) return;
      showSvg(qr, offer.svg);
      code.value = offer.uri;
      until = offer.expires_ms;
      historyStatus.textContent = offer.history
        ? `Your past chats go with this code: ${count(offer.history.messages)}, ${bytes(offer.history.bytes)}, sealed so that only the new device can open them.`
        : "";
      tick();
    } catch (e) {
      if (mine !== generation) return;
      fill(qr, h("p", {}, errorText(e)));
      code.value = "";
      again.hidden = false;
    }
  };
  const count = (n: number) => `${n.toLocaleString()} message${n === 1 ? "" : "s"}`;
  history.addEventListener("change", () => void load());
  const sizeUp = async () => {
    try {
      const size = await api.historySize();
      historySize.textContent = size.messages === 0 ? "(none yet)" : `(${count(size.messages)}, up to ${bytes(size.bytes)})`;
    } catch {
      historySize.textContent = "";
    }
  };
  // Whoever redeems the code shows up as a new device of mine.
  const watch = async () => {
    try {
      const ids = new Set((await api.devices()).map((d) => d.id));
      const fresh = known ? [...ids].filter((id) => !known?.has(id)) : [];
      known = ids;
      if (fresh.length > 0) {
        status.textContent = "A new device is linked to your account.";
        until = 0;
        expires.textContent = "";
        fill(qr, h("p", {}, "Linked."));
        code.value = "";
        again.hidden = false;
        closed();
      }
    } catch {
      // Offline for a moment: the next look tells.
    }
  };
  copy.addEventListener("click", async () => {
    code.select();
    try {
      await navigator.clipboard.writeText(code.value);
      status.textContent = "Copied.";
    } catch {
      status.textContent = "Select the text and copy it.";
    }
  });
  again.addEventListener("click", () => void load());
  const body = h("div", { class: "stack my-code" },
    h("p", { id: "link-warning" }, h("strong", {}, "Whoever scans or types this code gets your account on their device"),
      ": your chats, your contacts, and the messages from now on. Show it only to a device of your own."),
    h("p", { class: "muted small" }, "On the new device, choose “Link to a device I already use” and scan this code, or paste its text."),
    historyRow, historyStatus,
    qr, h("div", { class: "row" }, code, copy), expires, status, again);
  const done = modal("Link a new device", body, "link-device-dialog");
  const ticker = window.setInterval(tick, 1000);
  const poll = window.setInterval(() => void watch(), 3000);
  done.dialog.addEventListener("close", () => {
    window.clearInterval(ticker);
    window.clearInterval(poll);
    closed();
  });
  void sizeUp();
  void watch().then(load);
}

/** Items the server has not confirmed: why, and retry / discard for failures. */
export function pendingDialog(): void {
  const list = h("ul", { class: "pending-list", id: "pending-list", "aria-label": "Unsent items" });
  const render = () => {
    const items = store.outbox;
    fill(list, items.length === 0 ? h("li", { class: "muted" }, "Everything has been sent.") : items.map((o) => {
      const room = o.room !== null ? store.room(o.room)?.name : null;
      return h("li", { class: `pending-item ${o.state}` },
        h("div", {},
          h("strong", {}, outboxKind(o.kind)), room ? ` in ${room}` : "",
          h("div", { class: "muted small" }, o.state === "failed" ? `Not sent: ${stuckReason(o.reason)}` :
            o.reason ? `Waiting to retry (${o.attempts} attempts): ${stuckReason(o.reason)}` : "Waiting for the network")),
        o.state === "failed" ? h("div", { class: "row" },
          h("button", { type: "button", class: "small retry", onclick: () => void api.retry(o.id) }, "Retry"),
          h("button", { type: "button", class: "small danger", onclick: () => void api.discard(o.id) }, "Discard")) : null);
    }));
  };
  const body = h("div", { class: "stack" }, list);
  const done = modal("Unsent", body, "pending");
  const off = store.on(render);
  done.dialog.addEventListener("close", off);
  void store.loadOutbox().then(render);
}

/** A room's details: members' read state for a message, rename, invite, leave. */
export function roomDialog(room: RoomSummary, left: () => void): void {
  const err = h("p", { class: "form-error", role: "alert" });
  const [nameRow, name] = field("room-name", "Group name", { value: room.name });
  const [inviteRow, invitee] = field("room-invite", "Invite (username)");
  const rename = h("form", { class: "row-form" }, nameRow, h("button", { type: "submit" }, "Rename"));
  const invite = h("form", { class: "row-form" }, inviteRow, h("button", { type: "submit" }, "Invite"));
  const leave = h("button", { type: "button", class: "danger", id: "leave-room" }, room.direct ? "Leave chat" : "Leave group");
  rename.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api.rename(room.room, name.value); err.textContent = "Renamed."; } catch (e) { err.textContent = errorText(e); }
  });
  invite.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api.invite(room.room, invitee.value); invitee.value = ""; err.textContent = "Invited."; } catch (e) { err.textContent = userError(e); }
  });
  leave.addEventListener("click", async () => {
    try { await api.leave(room.room); done.close(); left(); } catch (e) { err.textContent = errorText(e); }
  });
  const body = h("div", { class: "stack" }, room.direct ? null : rename, room.direct ? null : invite, err, leave);
  const done = modal(room.name, body, "room-info");
}

/** Who has read one of my messages in a group. */
export async function readByDialog(room: number, seq: number, at: number): Promise<void> {
  const list = h("ul", { class: "read-by", id: "read-by-list" });
  modal(`Message sent ${clock(at)}`, h("div", {}, list), "read-by");
  try {
    const receipts = await api.readBy(room, seq);
    fill(list, receipts.map((r) => h("li", {}, h("span", {}, r.username),
      h("span", { class: r.read ? "tick read" : r.delivered ? "tick delivered" : "tick sent" }, r.read ? "Read" : r.delivered ? "Delivered" : "Not yet delivered"))));
  } catch (e) {
    fill(list, h("li", {}, errorText(e)));
  }
}

/** How many chats the forward dialog lists at once (the filter finds the others). */
const FORWARD_SHOWN = 50;

/** Forwarding a message: pick the chat to send a copy to (by name; the box filters). */
export function forwardDialog(from: number, message: string): void {
  const filter = h("input", { type: "search", id: "forward-filter", placeholder: "Search chats", "aria-label": "Search chats", autocomplete: "off", maxlength: 64 });
  const list = h("ul", { class: "forward-list", id: "forward-list", "aria-label": "Chats" });
  const err = h("p", { class: "form-error", role: "alert", id: "forward-error" });
  let busy = false;
  const choices = () => {
    const q = filter.value.trim().toLowerCase();
    return store.rooms.filter((r) => r.member && r.name.toLowerCase().includes(q));
  };
  const pick = async (r: RoomSummary) => {
    if (busy) return;
    busy = true;
    err.textContent = "";
    try {
      await api.forward(r.room, from, message);
      done.close();
    } catch (e) {
      err.textContent = errorText(e);
    } finally {
      busy = false;
    }
  };
  const render = () => {
    const rooms = choices();
    fill(list,
      rooms.length === 0 ? h("li", { class: "muted", id: "forward-none" }, "No chats found") : rooms.slice(0, FORWARD_SHOWN).map((r) => {
        const avatar = h("span", { class: "avatar small", "aria-hidden": "true" }, r.direct ? initials(r.name) : icon("group"));
        avatar.style.background = `hsl(${hue(r.name)} 55% 45%)`;
        return h("li", {}, h("button", { type: "button", class: "forward-target", "data-room": r.room, onclick: () => void pick(r) },
          avatar, h("span", { class: "room-name" }, r.name)));
      }),
      rooms.length > FORWARD_SHOWN ? h("li", { class: "muted small" }, `${rooms.length - FORWARD_SHOWN} more — type a name to find them`) : null);
  };
  filter.addEventListener("input", render);
  // Enter picks the first chat listed.
  filter.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    const first = choices()[0];
    if (first) void pick(first);
  });
  const done = modal("Forward to…", h("div", { class: "stack" }, filter, list, err), "forward");
  render();
  filter.focus();
}

/** A message's edit history: each version's text and when, oldest (as sent) first. */
export async function versionsDialog(room: number, message: string): Promise<void> {
  const list = h("ol", { class: "versions", id: "versions-list", "aria-label": "Versions, oldest first" }, h("li", { class: "muted" }, "Loading…"));
  modal("Edit history", h("div", {}, list), "versions");
  try {
    const versions = await api.messageVersions(room, message);
    fill(list, versions.map(([text, at], i) => h("li", { class: "version" },
      h("div", { class: "version-head" },
        h("strong", {}, i === 0 ? "Sent" : "Edited"),
        h("time", { datetime: new Date(at).toISOString() }, `${dayLabel(at)}, ${clock(at)}`)),
      h("p", { class: "version-text" }, text))));
  } catch (e) {
    fill(list, h("li", { class: "form-error" }, errorText(e)));
  }
}
