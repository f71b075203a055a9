// Fast UI tests: the real UI modules in headless Chromium (Debian's), Tauri IPC mocked
// (mock-backend.ts). They check what a user sees and what the UI asks the core to do.
// Run: npm --prefix ui run test:ui (needs /usr/bin/chromium; CHROMIUM to override).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createServer } from "vite";
import { chromium } from "playwright-core";
import { emojiColourPixels } from "../emoji-probe.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
let server;
let browser;
let base;

before(async () => {
  server = await createServer({ root, configFile: false, logLevel: "error", server: { port: 0, host: "127.0.0.1" } });
  await server.listen();
  base = server.resolvedUrls.local[0];
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(scenario) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${base}tests/ui/index.html?scenario=${scenario}`);
  page.errors = errors;
  return page;
}

const calls = (page, cmd) => page.evaluate((c) => window.__calls.filter((x) => x.cmd === c).map((x) => x.args), cmd);
const emit = (page, event, payload) => page.evaluate(([e, p]) => window.__emit(e, p), [event, payload]);

describe("first run", () => {
  it("signs up with the server, username and password given", async () => {
    const page = await open("fresh");
    await page.fill("#server", "http://127.0.0.1:7878");
    await page.fill("#username", "ann");
    await page.fill("#password", "correct horse");
    await page.click("#signin-submit");
    await page.waitForSelector("#room-list");
    assert.deepEqual(await calls(page, "sign_up"), [{ server: "http://127.0.0.1:7878", username: "ann", password: "correct horse" }]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("says why signing in failed, from the error code", async () => {
    const page = await open("fresh");
    await page.click("#signin-toggle");
    await page.fill("#username", "ann");
    await page.fill("#password", "wrong-password");
    await page.click("#signin-submit");
    await page.waitForFunction(() => document.querySelector("#signin-error")?.textContent !== "");
    assert.equal(await page.textContent("#signin-error"), "Wrong username or password.");
    assert.equal((await calls(page, "sign_in")).length, 1);
    await page.close();
  });

  it("refuses a short password before asking the server", async () => {
    const page = await open("fresh");
    await page.fill("#username", "ann");
    await page.fill("#password", "short");
    await page.click("#signin-submit");
    assert.match(await page.textContent("#signin-error"), /at least 8/);
    assert.equal((await calls(page, "sign_up")).length, 0);
    await page.close();
  });
});

describe("linking this device", () => {
  const code = `tidings:link?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&secret=${"ab".repeat(32)}`;

  it("links from a pasted code, and says what is wrong with a bad one", async () => {
    const page = await open("fresh");
    await page.click("#signin-link");
    await page.waitForSelector("#link-code-text");
    await page.click("#link-submit");
    assert.equal(await page.textContent("#link-error"), "Paste the link code first.");
    const said = async (text) => {
      await page.fill("#link-code-text", text);
      await page.click("#link-submit");
      await page.waitForFunction(() => !/^(|Linking…)$/.test(document.querySelector("#link-error")?.textContent ?? ""));
      const out = await page.textContent("#link-error");
      await page.evaluate(() => (document.querySelector("#link-error").textContent = ""));
      return out;
    };
    assert.match(await said("hello there"), /not a Tidings link code.*Settings › Link a new device/);
    assert.match(await said("tidings:contact?v=1&server=127.0.0.1%3A7878&user=bob&key=abcdefghijklmnop"), /^This is a contact code/);
    assert.match(await said(`tidings:link?v=1&server=http%3A%2F%2F127.0.0.1%3A7878&secret=${"cd".repeat(32)}`), /used already or has expired\. Show a new one/);
    await page.fill("#link-code-text", ` ${code}\n`);
    await page.click("#link-submit");
    await page.waitForSelector("#room-list");
    assert.equal((await calls(page, "link_device")).length, 4);
    assert.deepEqual(await calls(page, "sign_in"), []);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("links from a picture or a pasted screenshot of the QR code, and goes back", async () => {
    const page = await open("fresh");
    await page.click("#signin-link");
    await page.click("#link-back");
    await page.waitForSelector("#signin-submit");
    await page.click("#signin-link");
    // A picture with no code in it: said, and nothing else happens.
    await page.setInputFiles("#link-qr-file", { name: "cat.png", mimeType: "image/png", buffer: Buffer.from("not a qr") });
    await page.waitForFunction(() => /no QR code/.test(document.querySelector("#link-error")?.textContent ?? ""));
    // A screenshot pasted into the screen.
    await page.focus("#link-code-text");
    await page.evaluate(() => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(64)], "shot.png", { type: "image/png" }));
      document.activeElement.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
    });
    await page.waitForSelector("#room-list");
    assert.equal((await calls(page, "link_device_image")).length, 2);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("shows a link code in settings with its QR code, expiry and warning, and sees the new device", async () => {
    const page = await open("signed-in");
    await page.click("#settings-button");
    await page.waitForFunction(() => /ann's laptop/.test(document.querySelector("#device-list")?.textContent ?? ""));
    await page.click("#link-device");
    await page.waitForSelector("#link-qr svg");
    assert.equal(await page.inputValue("#link-code"), code);
    assert.match(await page.textContent("#link-expires"), /^Works once, for 10 more minutes/);
    assert.match(await page.textContent("#link-warning"), /Whoever scans or types this code gets your account on their device/);
    // The new device redeems the code: this side sees it among my devices.
    await page.evaluate(() => window.__devices.push({ id: 12, name: "ann's phone", created_ms: Date.now(), last_seen_ms: Date.now(), current: false }));
    await page.waitForFunction(() => /new device is linked/.test(document.querySelector("#link-status")?.textContent ?? ""), null, { timeout: 10_000 });
    assert.equal(await page.inputValue("#link-code"), "", "a used code is not shown");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#link-device-dialog", { state: "detached" });
    assert.match(await page.textContent("#device-list"), /ann's phone/);
    assert.equal(await page.isVisible("#settings"), true, "back in settings");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("sends my past chats with the code only if I tick the box, its size shown before and after", async () => {
    const page = await open("signed-in");
    await page.click("#settings-button");
    await page.click("#link-device");
    await page.waitForSelector("#link-qr svg");
    await page.waitForFunction(() => /messages/.test(document.querySelector("#link-history-size")?.textContent ?? ""));
    assert.match(await page.textContent("#link-history-size"), /^\(1.?234 messages, up to 3\.2 MB\)$/);
    assert.equal(await page.isChecked("#link-history"), false, "off until I choose");
    assert.equal(await page.textContent("#link-history-status"), "");
    assert.deepEqual(await calls(page, "link_code"), [{ history: false }]);
    // Ticked: a new code, with the archive; the old one is not shown meanwhile.
    await page.check("#link-history");
    await page.waitForFunction(() => /Preparing your past chats/.test(document.querySelector("#link-qr")?.textContent ?? ""));
    assert.equal(await page.inputValue("#link-code"), "");
    await page.waitForFunction(() => /go with this code/.test(document.querySelector("#link-history-status")?.textContent ?? ""));
    assert.match(await page.textContent("#link-history-status"), /^Your past chats go with this code: 1.?234 messages, 2\.1 MB/);
    assert.equal(await page.inputValue("#link-code"), code);
    // Unticked again: a code without it.
    await page.uncheck("#link-history");
    await page.waitForFunction(() => document.querySelectorAll("#link-qr svg").length === 1 && document.querySelector("#link-history-status")?.textContent === "");
    assert.deepEqual(await calls(page, "link_code"), [{ history: false }, { history: true }, { history: false }]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});

describe("chats", () => {
  it("says 'pick a chat' once the list has chats, not 'no chats yet'", async () => {
    const page = await open("no-chats");
    await page.waitForFunction(() => /No chats yet/.test(document.querySelector(".empty p")?.textContent ?? ""));
    // Someone writes: the list gets a chat, and the pane stops saying there are none.
    await page.evaluate(() => window.__rooms.push({ room: 9, server_id: 90, name: "carol", unread: 1, last_seq: 1, last_message: "Hi!", my_last_state: null, member: true, direct: true, last_activity_ms: Date.now(), typing: [], request_from: null, draft: null, disappearing_s: null, muted: false, unread_mentions: 0 }));
    await emit(page, "core", [{ kind: "rooms_changed" }]);
    await page.waitForSelector('button.room[data-room="9"]');
    await page.waitForFunction(() => document.querySelector(".empty p")?.textContent === "Pick a chat.");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("lists chats with unread badge, last message and my tick", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("button.room");
    const names = await page.$$eval("button.room .room-name", (els) => els.map((e) => e.textContent));
    assert.deepEqual(names, ["bob", "Climbing club"]);
    assert.equal(await page.getAttribute('button.room[data-room="1"]', "aria-label"), "bob, 2 unread");
    assert.equal(await page.textContent('button.room[data-room="1"] .badge'), "2");
    assert.equal(await page.getAttribute('button.room[data-room="2"] .tick', "aria-label"), "Delivered");
    await page.close();
  });

  it("shows a chat from a stranger as a request: no call button until accepted", async () => {
    const page = await open("request");
    await page.waitForSelector('button.room[data-room="3"] .request-tag');
    assert.equal(await page.getAttribute('button.room[data-room="3"]', "aria-label"), "mallory, chat request, 1 unread");
    await page.click('button.room[data-room="3"]');
    await page.waitForSelector("#request-bar:not([hidden])");
    assert.match(await page.textContent("#request-bar"), /mallory is not in your contacts/);
    assert.equal(await page.isVisible("#call-button"), false);
    await page.click("#request-accept");
    await page.waitForSelector("#request-bar", { state: "hidden" });
    assert.deepEqual(await calls(page, "accept_request"), [{ room: 3 }]);
    assert.equal(await page.isVisible("#call-button"), true);
    assert.equal(await page.$('button.room[data-room="3"] .request-tag'), null);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("lists blocked people in settings and unblocks one", async () => {
    const page = await open("request");
    await page.click("#settings-button");
    await page.waitForSelector("#blocked-list li strong");
    assert.equal(await page.textContent("#blocked-list li strong"), "mallory");
    await page.click("#blocked-list button");
    await page.waitForFunction(() => document.querySelector("#blocked-list")?.textContent === "Nobody.");
    assert.deepEqual(await calls(page, "unblock_user"), [{ username: "mallory" }]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("makes web addresses in messages links that open in the browser only when clicked", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector("#timeline a.link");
    assert.equal(await page.textContent("#timeline a.link"), "https://example.org/menu?day=fri");
    assert.deepEqual(await calls(page, "open_link"), [], "nothing is opened or fetched before a click");
    await page.click("#timeline a.link");
    assert.deepEqual(await calls(page, "open_link"), [{ url: "https://example.org/menu?day=fri" }]);
    assert.equal(page.url().includes("example.org"), false, "the web view stays where it is");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("shows messages grouped by day with ticks, and sends with Enter", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector("#timeline article.msg");
    const days = await page.$$eval("#timeline .day-label", (els) => els.map((e) => e.textContent));
    assert.deepEqual(days, ["Yesterday", "Today"]);
    assert.equal(await page.getAttribute("#timeline article.mine .tick", "aria-label"), "Read");
    await page.fill("#composer", "On my way");
    await page.press("#composer", "Enter");
    await page.waitForSelector('#timeline article.mine.pending');
    assert.deepEqual(await calls(page, "send_text"), [{ room: 1, text: "On my way" }]);
    assert.equal(await page.inputValue("#composer"), "");
    assert.equal(await page.getAttribute("#timeline article.pending .tick", "aria-label"), "Sending");
    // Opening a chat with unread messages reads it.
    assert.deepEqual((await calls(page, "mark_read"))[0], { room: 1 });
    await page.close();
  });

  it("shows typing and the connection banner from core events", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("button.room");
    assert.equal(await page.isHidden("#connection-banner"), true);
    await emit(page, "core", [{ kind: "connection", state: "offline" }]);
    await page.waitForSelector("#connection-banner:not([hidden])");
    assert.match(await page.textContent("#connection-banner"), /Offline/);
    await emit(page, "core", [{ kind: "connection", state: "syncing" }, { kind: "sync_progress", done: 30, total: 120 }]);
    await page.waitForFunction(() => document.querySelector("#connection-banner")?.textContent === "Syncing… 25%");
    await page.close();
  });

  it("reviews a failed send and retries it", async () => {
    const page = await open("failed-send");
    await page.waitForSelector("#pending-button:not([hidden])");
    assert.equal(await page.textContent("#pending-button"), "1 not sent — review");
    await page.click("#pending-button");
    await page.waitForSelector("#pending-list .pending-item.failed");
    assert.match(await page.textContent("#pending-list"), /too large for this server/);
    await page.click("#pending-list button.retry");
    await page.waitForSelector("#pending-button[hidden]", { state: "attached" });
    assert.deepEqual(await calls(page, "retry"), [{ id: 7 }]);
    await page.close();
  });

  it("shows a refused message as not sent, with Retry, as soon as the core says so", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.fill("#composer", "Too late?");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#timeline article.mine.pending");
    await page.evaluate(() => window.__refuse(1));
    await page.waitForSelector("#timeline article.mine.failed .failed-note button");
    assert.match(await page.textContent("#timeline article.mine.failed"), /Not sent\. Retry/);
    await page.close();
  });

  it("draws emoji in colour on a machine without a colour emoji font (the app ships one)", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("button.room");
    const coloured = await page.evaluate(emojiColourPixels);
    assert.ok(coloured > 20, `the emoji is drawn in colour (${coloured} coloured pixels)`);
    await page.close();
  });

  it("is usable with the keyboard alone", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("button.room");
    await page.focus('button.room[data-room="1"]');
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("data-room")), "2");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#chat-title");
    assert.equal(await page.textContent("#chat-title"), "Climbing club");
    // Every button has a name a screen reader can say.
    const unnamed = await page.$$eval("button", (bs) => bs.filter((b) => !(b.getAttribute("aria-label") || b.textContent?.trim())).length);
    assert.equal(unnamed, 0);
    await page.close();
  });
});

describe("what people do with messages", () => {
  const bubble = (seq) => `#timeline article.msg[data-seq="${seq}"]`;
  const menu = async (page, seq) => {
    await page.hover(bubble(seq));
    await page.click(`${bubble(seq)} .msg-actions`);
    await page.waitForSelector("#message-menu");
  };

  it("replies to a message, quoting it, and jumps to it from the quote", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(1));
    await menu(page, 1);
    await page.click("#menu-reply");
    assert.match(await page.textContent("#composer-context"), /Replying to bob: Dinner tomorrow\?/);
    await page.fill("#composer", "Yes!");
    await page.press("#composer", "Enter");
    await page.waitForSelector("#timeline article.mine.pending .quote");
    assert.deepEqual(await calls(page, "reply"), [{ room: 1, to: "r1-1-16", text: "Yes!" }]);
    assert.deepEqual(await calls(page, "send_text"), []);
    assert.equal(await page.isHidden("#composer-context"), true);
    assert.match(await page.textContent("#timeline article.pending .quote"), /bobDinner tomorrow\?/);
    await page.click("#timeline article.pending .quote");
    await page.waitForSelector(`${bubble(1)}.flash`);
    // Escape cancels a reply: the next message is a plain one.
    await menu(page, 3);
    await page.click("#menu-reply");
    await page.press("#composer", "Escape");
    assert.equal(await page.isHidden("#composer-context"), true);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("edits my message, shown as edited; only mine offer Edit and Delete for everyone", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(2));
    await menu(page, 3);
    assert.equal(await page.$("#menu-edit"), null, "bob's message");
    assert.equal(await page.$("#menu-delete-everyone"), null);
    await page.click("#timeline"); // closes the menu
    await page.waitForSelector("#message-menu", { state: "detached" });
    await menu(page, 2);
    await page.click("#menu-edit");
    assert.equal(await page.inputValue("#composer"), "Sounds good");
    await page.fill("#composer", "Sounds great");
    await page.press("#composer", "Enter");
    await page.waitForSelector(`${bubble(2)} .edited`);
    assert.deepEqual(await calls(page, "edit_message"), [{ room: 1, to: "r1-2-11", text: "Sounds great" }]);
    assert.equal(await page.textContent(`${bubble(2)} .text`), "Sounds great");
    await page.close();
  });

  it("reacts and takes a reaction back, from the menu and from the count", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(`${bubble(3)} .reaction`);
    assert.equal(await page.textContent(`${bubble(3)} .reaction`), "🎉 1");
    await menu(page, 3);
    await page.click('#message-menu .quick-reactions button:has-text("👍")');
    await page.waitForFunction(() => document.querySelectorAll('#timeline article.msg[data-seq="3"] .reaction').length === 2);
    assert.equal(await page.getAttribute(`${bubble(3)} .reaction.mine`, "aria-pressed"), "true");
    // Joining bob's 🎉 by its count, then taking mine back.
    await page.click(`${bubble(3)} .reaction:has-text("🎉")`);
    await page.waitForFunction(() => document.querySelector('#timeline article.msg[data-seq="3"] .reaction')?.textContent === "🎉 2");
    await page.click(`${bubble(3)} .reaction:has-text("👍")`);
    await page.waitForFunction(() => document.querySelectorAll('#timeline article.msg[data-seq="3"] .reaction').length === 1);
    assert.deepEqual((await calls(page, "react")).map((c) => [c.emoji, c.on]), [["👍", true], ["🎉", true], ["👍", false]]);
    await page.close();
  });

  it("deletes my message for everyone after asking again, and anyone's for me", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(2));
    await menu(page, 2);
    await page.click("#menu-delete-everyone");
    // Asked once more in place; only the second press deletes.
    assert.match(await page.textContent("#menu-delete-everyone"), /Press again/);
    assert.deepEqual(await calls(page, "delete_message"), []);
    await page.click("#menu-delete-everyone");
    await page.waitForSelector(`${bubble(2)}.deleted`);
    assert.equal(await page.textContent(`${bubble(2)} .text`), "Message deleted");
    await menu(page, 4);
    await page.click("#menu-delete-me");
    await page.waitForSelector(bubble(4), { state: "detached" });
    assert.deepEqual(await calls(page, "delete_message"), [
      { room: 1, to: "r1-2-11", forEveryone: true },
      { room: 1, to: "r1-4-39", forEveryone: false },
    ]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});

describe("forwarding, timers, drafts, unread, mentions and edit history", () => {
  const bubble = (seq) => `#timeline article.msg[data-seq="${seq}"]`;
  const menu = async (page, seq) => {
    await page.hover(bubble(seq));
    await page.click(`${bubble(seq)} .msg-actions`);
    await page.waitForSelector("#message-menu");
  };
  const focused = (page) => page.evaluate(() => document.activeElement?.id ?? "");

  it("forwards a message to a chat picked by name, where it shows as forwarded", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(3));
    await menu(page, 3);
    await page.click("#menu-forward");
    await page.waitForSelector("#forward[open]");
    assert.equal(await focused(page), "forward-filter");
    assert.deepEqual(await page.$$eval("#forward-list .forward-target .room-name", (els) => els.map((e) => e.textContent)), ["bob", "Climbing club"]);
    await page.click('#forward-list .forward-target[data-room="2"]');
    await page.waitForSelector("#forward", { state: "detached" });
    assert.deepEqual(await calls(page, "forward"), [{ room: 2, from: 1, message: "r1-3-13" }]);
    // Only the copy says so.
    assert.equal(await page.$("#timeline .forwarded"), null);
    await page.click('button.room[data-room="2"]');
    await page.waitForSelector("#timeline article.mine .forwarded");
    assert.equal(await page.textContent("#timeline article.msg:has(.forwarded) .forwarded"), "Forwarded");
    assert.equal(await page.textContent("#timeline article.msg:has(.forwarded) .text"), "See you at 6?");
    assert.equal(await page.$$eval("#timeline .forwarded", (els) => els.length), 1);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("forwards with the keyboard alone, and offers no Forward for a deleted message", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(4));
    await page.focus(`${bubble(4)} .msg-actions`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#message-menu");
    // bob's message: the reactions, Reply, Forward, Delete for me.
    await page.keyboard.press("End");
    assert.equal(await focused(page), "menu-delete-me");
    await page.keyboard.press("ArrowUp");
    assert.equal(await focused(page), "menu-forward");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#forward[open]");
    await page.keyboard.type("clim");
    assert.deepEqual(await page.$$eval("#forward-list .forward-target", (els) => els.map((e) => e.dataset.room)), ["2"]);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#forward", { state: "detached" });
    assert.deepEqual(await calls(page, "forward"), [{ room: 2, from: 1, message: "r1-4-39" }]);
    // Escape closes a message menu and puts the focus back on its button.
    await page.focus(`${bubble(3)} .msg-actions`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#message-menu");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#message-menu", { state: "detached" });
    assert.equal(await page.evaluate(() => document.activeElement?.closest("article")?.dataset.seq), "3");
    // Deleted for everyone: nothing left to forward.
    await menu(page, 2);
    await page.click("#menu-delete-everyone");
    await page.click("#menu-delete-everyone");
    await page.waitForSelector(`${bubble(2)}.deleted`);
    await menu(page, 2);
    assert.equal(await page.$("#menu-forward"), null);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("sets the disappearing-message timer from the chat menu, shown in the header and as a notice", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(4));
    assert.equal(await page.isHidden("#chat-timer"), true);
    await page.click("#chat-menu-button");
    await page.waitForSelector("#chat-menu");
    assert.equal(await page.getAttribute("#chat-menu-button", "aria-expanded"), "true");
    assert.deepEqual(await page.$$eval("#chat-menu [role=menuitemradio]", (els) => els.map((e) => [e.textContent, e.getAttribute("aria-checked")])),
      [["Off", "true"], ["30 seconds", "false"], ["5 minutes", "false"], ["1 hour", "false"], ["1 day", "false"], ["1 week", "false"]]);
    await page.click("#chat-timer-86400");
    await page.waitForSelector("#chat-menu", { state: "detached" });
    assert.deepEqual(await calls(page, "set_disappearing"), [{ room: 1, seconds: 86400 }]);
    await page.waitForSelector("#chat-timer:not([hidden])");
    assert.equal(await page.textContent("#chat-timer"), "⏱ 1 day");
    assert.equal(await page.getAttribute("#chat-timer", "aria-label"), "Messages disappear after 1 day");
    await page.waitForSelector("#timeline .event.disappearing");
    assert.equal(await page.textContent("#timeline .event.disappearing"), "You set messages to disappear after 1 day");
    // What I send now disappears, and says so.
    await page.fill("#composer", "Gone tomorrow");
    await page.press("#composer", "Enter");
    await page.waitForSelector("#timeline article.mine.pending .expires");
    assert.equal(await page.getAttribute("#timeline article.mine.pending .expires", "aria-label"), "Disappearing message");
    // Off, with the keyboard; Escape closes the menu where the focus was.
    await page.focus("#chat-menu-button");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#chat-menu");
    assert.equal(await focused(page), "chat-menu-mute");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#chat-menu", { state: "detached" });
    assert.equal(await focused(page), "chat-menu-button");
    await page.keyboard.press("Enter");
    await page.keyboard.press("ArrowDown");
    assert.equal(await focused(page), "chat-timer-0");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#chat-timer", { state: "hidden" });
    assert.deepEqual((await calls(page, "set_disappearing")).at(-1), { room: 1, seconds: 0 });
    await page.waitForFunction(() => [...document.querySelectorAll("#timeline .event.disappearing")].length === 2);
    assert.equal(await page.textContent("#timeline .event.disappearing >> nth=-1"), "You turned off disappearing messages");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("keeps what I type as the chat's draft, shows it in the list, puts it back, and clears it once sent", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(4));
    assert.deepEqual(await calls(page, "draft"), [{ room: 1 }]);
    await page.locator("#composer").pressSequentially("Half a tho");
    await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "set_draft"));
    assert.deepEqual(await calls(page, "set_draft"), [{ room: 1, text: "Half a tho" }], "once, after typing stops");
    // An edit borrows the composer; cancelling it brings the draft back.
    await menu(page, 2);
    await page.click("#menu-edit");
    assert.equal(await page.inputValue("#composer"), "Sounds good");
    await page.press("#composer", "Escape");
    assert.equal(await page.inputValue("#composer"), "Half a tho");
    // Switching chats at once keeps the rest.
    await page.locator("#composer").pressSequentially("ught");
    await page.click('button.room[data-room="2"]');
    await page.waitForSelector('button.room[data-room="1"] .preview.draft');
    assert.deepEqual(await calls(page, "set_draft"), [{ room: 1, text: "Half a tho" }, { room: 1, text: "Half a thought" }]);
    assert.equal(await page.textContent('button.room[data-room="1"] .preview.draft'), "Draft: Half a thought");
    assert.equal(await page.textContent('button.room[data-room="1"] .draft-label'), "Draft:");
    assert.equal(await page.inputValue("#composer"), "", "the other chat has none");
    // Back: the draft is in the composer (and not in the list while the chat is open).
    await page.click('button.room[data-room="1"]');
    await page.waitForFunction(() => document.querySelector("#composer")?.value === "Half a thought");
    assert.equal(await page.$('button.room[data-room="1"] .preview.draft'), null);
    // Sent: the draft is cleared.
    await page.press("#composer", "Enter");
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "set_draft").length === 3);
    assert.deepEqual((await calls(page, "set_draft")).at(-1), { room: 1, text: "" });
    assert.deepEqual((await calls(page, "send_text")).at(-1), { room: 1, text: "Half a thought" });
    await page.click('button.room[data-room="2"]');
    await page.waitForSelector('button.room[data-room="1"] .preview:not(.draft)');
    assert.equal(await page.textContent('button.room[data-room="1"] .preview'), "See you at 6?");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("marks where the unread messages start, asked before the chat is read", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector("#unread-divider");
    assert.equal(await page.textContent("#unread-divider"), "Unread messages");
    assert.equal(await page.evaluate(() => document.querySelector("#unread-divider")?.nextElementSibling?.getAttribute("data-seq")), "3");
    assert.deepEqual(await calls(page, "first_unread"), [{ room: 1 }]);
    await page.waitForFunction(() => window.__calls.some((c) => c.cmd === "mark_read"));
    assert.deepEqual(await page.evaluate(() => window.__calls.map((c) => c.cmd).filter((c) => c === "first_unread" || c === "mark_read")), ["first_unread", "mark_read"]);
    assert.equal(await page.isHidden("#jump-unread"), true);
    // Read now: opened again, there is no divider.
    await page.click('button.room[data-room="2"]');
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(4));
    await page.waitForFunction(() => window.__calls.filter((c) => c.cmd === "first_unread").length === 3);
    assert.equal(await page.$("#unread-divider"), null);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("jumps to the first unread message when it is further back than the pages loaded", async () => {
    const page = await open("long");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector("#jump-unread:not([hidden])");
    assert.equal(await page.textContent("#jump-unread"), "↑ Jump to first unread");
    assert.equal(await page.$("#unread-divider"), null);
    assert.equal(await page.$(bubble(41)), null);
    await page.click("#jump-unread");
    await page.waitForSelector("#unread-divider");
    assert.equal(await page.evaluate(() => document.querySelector("#unread-divider")?.nextElementSibling?.getAttribute("data-seq")), "41");
    assert.ok((await calls(page, "messages")).some((c) => c.before !== null), "older pages were loaded");
    await page.waitForSelector("#jump-unread", { state: "hidden" });
    assert.equal(await focused(page), "unread-divider");
    const inView = await page.evaluate(() => {
      const d = document.querySelector("#unread-divider").getBoundingClientRect();
      const t = document.querySelector("#timeline").getBoundingClientRect();
      return d.top >= t.top && d.bottom <= t.bottom;
    });
    assert.ok(inView, "the divider is in view");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("marks mentions, mine most; lists a muted chat's @ badge; mutes and unmutes from the chat menu", async () => {
    const page = await open("mention");
    await page.waitForSelector('button.room[data-room="2"] .badge.mention');
    assert.equal(await page.textContent('button.room[data-room="2"] .badge.mention'), "@");
    assert.notEqual(await page.$('button.room[data-room="2"] .muted-icon'), null);
    assert.notEqual(await page.$('button.room[data-room="2"] .badge.quiet'), null, "a muted chat's count is quieter");
    assert.equal(await page.getAttribute('button.room[data-room="2"]', "aria-label"), "Climbing club, 1 unread, mentioned, muted");
    assert.equal(await page.$('button.room[data-room="1"] .muted-icon'), null);
    await page.click('button.room[data-room="2"]');
    await page.waitForSelector("#timeline article.mentions-me");
    assert.deepEqual(await page.$$eval("#timeline .mention", (els) => els.map((e) => [e.textContent, e.className])),
      [["@ann", "mention me"], ["@dave", "mention"]]);
    // The text goes in as text: markup in it is shown, not run.
    assert.equal(await page.textContent("#timeline article.mentions-me .text"), "@ann can you bring the rope? <img src=x onerror=alert(1)> cc @dave.");
    assert.equal(await page.$("#timeline img"), null);
    // Read: the @ badge goes.
    await page.waitForSelector('button.room[data-room="2"] .badge.mention', { state: "detached" });
    await page.click("#chat-menu-button");
    assert.equal(await page.textContent("#chat-menu-mute"), "Unmute");
    await page.click("#chat-menu-mute");
    await page.waitForSelector('button.room[data-room="2"] .muted-icon', { state: "detached" });
    await page.click("#chat-menu-button");
    assert.equal(await page.textContent("#chat-menu-mute"), "Mute");
    await page.click("#chat-menu-mute");
    await page.waitForSelector('button.room[data-room="2"] .muted-icon');
    assert.deepEqual(await calls(page, "set_room_muted"), [{ room: 2, muted: false }, { room: 2, muted: true }]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("shows an edited message's versions from its edited mark", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector(bubble(2));
    assert.equal(await page.$(`${bubble(2)} .edited`), null);
    await menu(page, 2);
    await page.click("#menu-edit");
    await page.fill("#composer", "Sounds great");
    await page.press("#composer", "Enter");
    await page.waitForSelector(`${bubble(2)} .edited`);
    await page.focus(`${bubble(2)} .edited`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#versions-list .version");
    assert.deepEqual(await calls(page, "message_versions"), [{ room: 1, message: "r1-2-11" }]);
    assert.deepEqual(await page.$$eval("#versions-list .version", (els) => els.map((e) => [e.querySelector("strong")?.textContent, e.querySelector(".version-text")?.textContent])),
      [["Sent", "Sounds good"], ["Edited", "Sounds great"]]);
    assert.match(await page.textContent("#versions-list .version >> nth=0 >> time"), /^Yesterday, \d/);
    assert.match(await page.textContent("#versions-list .version >> nth=1 >> time"), /^Today, \d/);
    await page.keyboard.press("Escape");
    await page.waitForSelector("#versions", { state: "detached" });
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});

describe("search", () => {
  it("finds messages in every chat with the words marked, and opens the chat at one", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("#room-list button.room");
    await page.fill("#search", "SEE 6");
    await page.waitForSelector("#search-results .search-hit");
    assert.equal(await page.isHidden("#room-list"), true);
    const hits = await page.$$eval("#search-results .search-hit", (els) => els.map((e) => [e.querySelector(".room-name")?.textContent, [...e.querySelectorAll("mark")].map((m) => m.textContent)]));
    assert.deepEqual(hits, [["bob", ["See", "6"]]]);
    assert.deepEqual((await calls(page, "search")).at(-1), { query: "SEE 6", room: null, limit: 50 });
    await page.click("#search-results .search-hit");
    await page.waitForSelector('#timeline article.msg[data-seq="3"].flash');
    // Nothing found, said; Escape brings the chat list back.
    await page.fill("#search", "zebra");
    await page.waitForSelector("#search-none");
    await page.press("#search", "Escape");
    await page.waitForSelector("#room-list button.room");
    assert.equal(await page.isHidden("#search-results"), true);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("searches only the open chat when asked", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="2"]');
    await page.waitForSelector("#timeline article.msg");
    await page.fill("#search", "s");
    await page.waitForSelector("#search-results .search-hit");
    await page.check("#search-here");
    await page.waitForFunction(() => [...document.querySelectorAll("#search-results .search-hit")].every((e) => e.getAttribute("data-room") === "2"));
    assert.deepEqual((await calls(page, "search")).at(-1), { query: "s", room: 2, limit: 50 });
    await page.close();
  });
});

describe("calls", () => {
  it("rings, accepts, shows the timer and a clear busy ending", async () => {
    const page = await open("signed-in");
    await page.waitForSelector("button.room");
    const peer = { room: 1, user: 2, device: 21 };
    await emit(page, "core", [{ kind: "call", state: "ringing", call: 5, peer, video: false }]);
    await page.waitForSelector("#call-accept");
    assert.equal(await page.textContent("#call-peer"), "bob");
    await page.click("#call-accept");
    assert.equal((await calls(page, "accept_call")).length, 1);
    await emit(page, "core", [{ kind: "call", state: "connected", call: 5 }]);
    await page.waitForSelector("#call-timer");
    await page.click("#call-mute");
    assert.deepEqual(await calls(page, "set_muted"), [{ muted: true }]);
    await emit(page, "core", [{ kind: "call", state: "ended", call: 5, reason: "remote_hung_up" }]);
    await page.waitForFunction(() => document.querySelector("#call-status")?.textContent === "Call ended");
    await page.close();
  });

  it("shows requesting… then busy for an outgoing call", async () => {
    const page = await open("signed-in");
    await page.click('button.room[data-room="1"]');
    await page.click("#call-button");
    assert.deepEqual(await calls(page, "call"), [{ room: 1 }]);
    await emit(page, "core", [{ kind: "call", state: "requesting", call: 9, peer: { room: 1, user: 2, device: null } }]);
    await page.waitForFunction(() => document.querySelector("#call-status")?.textContent === "Requesting…");
    await emit(page, "core", [{ kind: "call", state: "ended", call: 9, reason: "busy" }]);
    await page.waitForFunction(() => /Busy/.test(document.querySelector("#call-status")?.textContent ?? ""));
    await page.close();
  });
});

describe("contacts", () => {
  it("shows my QR code and explains a bad pasted code", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.waitForSelector("#my-qr svg");
    assert.match(await page.inputValue("#my-code"), /^tidings:contact\?/);
    await page.fill("#contact-code-text", "https://example.com");
    await page.press("#contact-code-text", "Enter");
    await page.waitForFunction(() => /not a Tidings contact code/.test(document.querySelector("#contact-status")?.textContent ?? ""));
    await page.close();
  });

  it("shows the security code shared with a contact, in three rows of four groups", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.click("#contact-list button[aria-label='Security code with bob']");
    await page.waitForSelector("#security-code-digits");
    assert.deepEqual(await calls(page, "security_code"), [{ username: "bob" }]);
    const rows = await page.$$eval("#security-code-digits .security-code-row", (els) => els.map((e) => e.textContent));
    assert.deepEqual(rows, ["12345 67890 11111 22222", "33333 44444 55555 66666", "77777 88888 99999 00000"]);
    assert.match(await page.evaluate(() => getComputedStyle(document.querySelector("#security-code-digits")).fontFamily), /monospace/);
    assert.equal(await page.textContent("#security-code-explain"),
      "Compare these digits with the ones on bob's device. If they match, nobody is listening in between.");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("verifies a contact by the code their screen shows, and warns of one that is not ours", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.waitForSelector('#contact-list li[data-username="bob"]');
    assert.equal(await page.$('#contact-list li[data-username="bob"] .trust'), null, "no badge while unverified");
    await page.click("#contact-list button[aria-label='Security code with bob']");
    await page.waitForSelector("#verify-qr svg");
    assert.equal(await page.getAttribute("#security-trust", "data-trust"), "unverified");
    assert.equal(await page.textContent("#security-trust"), "bob is not verified yet.");
    assert.deepEqual(await calls(page, "verify_code"), [{ username: "bob" }]);
    // Someone else's screen: a security warning, and bob stays unverified.
    await page.fill("#verify-code-text", `tidings:verify?v=1&from=bob&to=ann&code=${"1".repeat(60)}`);
    await page.press("#verify-code-text", "Enter");
    await page.waitForFunction(() => /not the security code you share with bob/.test(document.querySelector("#verify-status")?.textContent ?? ""));
    assert.equal(await page.getAttribute("#verify-status", "class"), "form-error security-warning");
    // Bob's own screen: verified.
    const code = `tidings:verify?v=1&from=bob&to=ann&code=${"0123456789".repeat(6)}`;
    await page.fill("#verify-code-text", code);
    await page.press("#verify-code-text", "Enter");
    await page.waitForFunction(() => document.querySelector("#verify-status")?.textContent === "bob is verified.");
    assert.equal(await page.getAttribute("#security-trust", "data-trust"), "verified");
    assert.match(await page.textContent("#security-trust"), /Verified/);
    assert.deepEqual((await calls(page, "verify_contact")).at(-1), { username: "bob", code });
    // Back in the list, bob has the Verified badge.
    await page.keyboard.press("Escape");
    await page.waitForSelector('#contact-list li[data-username="bob"] .trust.verified');
    assert.equal(await page.getAttribute('#contact-list li[data-username="bob"] .trust', "aria-label"), "Verified");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("verifies a contact from a picture of the code their screen shows", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.click("#contact-list button[aria-label='Security code with bob']");
    await page.waitForSelector("#verify-pick");
    await page.setInputFiles("#verify-file", { name: "bob.png", mimeType: "image/png", buffer: Buffer.alloc(64, 7) });
    await page.waitForFunction(() => document.querySelector("#verify-status")?.textContent === "bob is verified.");
    assert.equal((await calls(page, "verify_contact_image")).length, 1);
    assert.equal(await page.getAttribute("#security-trust", "data-trust"), "verified");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("warns that a scanned contact code names another key than the server gave", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.fill("#contact-code-text", "tidings:contact?v=2&server=127.0.0.1%3A7878&user=eve&key=abcdefghijklmnop");
    await page.press("#contact-code-text", "Enter");
    await page.waitForFunction(() => /^Security warning:/.test(document.querySelector("#contact-status")?.textContent ?? ""));
    assert.match(await page.textContent("#contact-status"), /someone may be intercepting/);
    assert.equal(await page.getAttribute("#contact-status", "class"), "form-error security-warning");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("says to write first to a contact with no encrypted chat yet", async () => {
    const page = await open("signed-in");
    await page.click("#contacts-button");
    await page.click("#contact-list button[aria-label='Security code with dana']");
    await page.waitForSelector("#security-code-error");
    assert.equal(await page.textContent("#security-code-error"), "No encrypted chat with dana yet — write to them first");
    assert.equal(await page.$("#security-code-digits"), null);
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});

describe("a changed security code", () => {
  it("holds sending with a banner until the new code is accepted", async () => {
    const page = await open("held");
    await page.click('button.room[data-room="1"]');
    await page.waitForSelector("#security-bar:not([hidden])");
    assert.match(await page.textContent("#security-bar"), /^bob's security code changed\. Messages to bob are held until you accept the new code or verify bob again\./);
    assert.equal(await page.textContent("#timeline .event.security.key_changed"), "bob's security code changed");
    assert.equal(await page.isDisabled("#send-button"), true);
    assert.equal(await page.isDisabled("#attach-button"), true);
    // Enter still asks the core, which refuses: the sentence shows and the text stays.
    await page.fill("#composer", "Is this really you?");
    await page.press("#composer", "Enter");
    await page.waitForFunction(() => document.querySelector("#composer-error")?.textContent !== "");
    assert.equal(await page.textContent("#composer-error"), "bob's security code changed — accept it or verify again to send");
    assert.equal(await page.inputValue("#composer"), "Is this really you?");
    await page.click("#security-accept");
    await page.waitForSelector("#security-bar", { state: "hidden" });
    assert.deepEqual(await calls(page, "accept_key"), [{ username: "bob" }]);
    assert.equal(await page.isDisabled("#send-button"), false);
    assert.equal(await page.textContent("#composer-error"), "");
    await page.click("#send-button");
    await page.waitForFunction(() => document.querySelector("#timeline")?.textContent?.includes("Is this really you?"));
    assert.deepEqual((await calls(page, "send_text")).at(-1), { room: 1, text: "Is this really you?" });
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it("opens their security code screen from the banner, where the new code can be accepted", async () => {
    const page = await open("held");
    await page.click("#contacts-button");
    await page.waitForSelector('#contact-list li[data-username="bob"] .trust.changed');
    await page.keyboard.press("Escape");
    await page.click('button.room[data-room="1"]');
    await page.click("#security-verify");
    await page.waitForSelector("#security-changed");
    assert.match(await page.textContent("#security-changed"), /Messages to bob are held/);
    await page.waitForSelector("#verify-pick");
    await page.click("#accept-key");
    await page.waitForFunction(() => document.querySelector("#security-trust")?.dataset.trust === "unverified");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#security-bar", { state: "hidden" });
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
