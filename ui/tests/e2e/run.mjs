// End-to-end: the real app (the Tauri binary with the embedded UI) driven through
// tauri-driver + WebKitWebDriver, each of two profiles on its own Xvfb display, against a
// real `tidings serve` on a loopback port behind a real nginx terminating TLS (the
// configuration of docs/nginx.conf, a certificate from a test CA the app trusts through
// SSL_CERT_FILE, as the platform verifier allows). Two people sign up, one writes to the
// other, who accepts the request, one adds the other from a
// picture of their QR code, messages go both ways, ticks turn to read, a photo arrives with
// its thumbnail, and a send the server refused (too large) is retried after the limit is
// raised; then Ann calls Bob from the chat, he answers, both connect, she hangs up. Last, a
// third profile, signed out, links to Ann's account with the code her Settings show (pasted
// as text), her past chats sent with it: it shows her chat with Bob from before, and reads
// what he sends from then on. Ann's one scan of
// Bob's contact code verified both: each contact list shows the other verified. Then Bob signs
// in on a fresh profile of the CLI with his password alone — a new identity — and writes to
// Ann: her chat shows the notice and the banner, refuses to send until she accepts his new
// code, then sends; and she verifies him again from a picture of the code his new device
// shows.
//
// Needs: TIDINGS_BIN (the server), TIDINGS_APP (the app), TIDINGS_TESTDATA (photos),
// Xvfb, tauri-driver, WebKitWebDriver, qrencode, openssl, nginx. `cargo xtask test` sets
// all of it up.
// TIDINGS_SCREENSHOTS=DIR saves screenshots of both windows (README's are made this way).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import { remote } from "webdriverio";
import { emojiColourPixels } from "../emoji-probe.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through cargo xtask test)`);
  return v;
};
const SERVER_BIN = env("TIDINGS_BIN");
const APP = env("TIDINGS_APP");
const PHOTO = join(env("TIDINGS_TESTDATA"), "images", "jolla_8mp_progressive.jpg");
const SHOTS = process.env.TIDINGS_SCREENSHOTS;
const work = mkdtempSync(join(tmpdir(), "tidings-e2e-"));
const children = [];
// Whatever happens, no server, display, driver or app outlives the test.
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  child.output = () => out;
  children.push(child);
  return child;
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, f, ms = 20_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(150);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

// --- the server, and nginx terminating TLS in front of it ----------------------------------
const port = await freePort();
const plain = `http://127.0.0.1:${port}`;
const data = join(work, "server");
let server;
async function startServer(maxUpload) {
  server = start(SERVER_BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data", data, "--max-upload-bytes", String(maxUpload)]);
  await until("the server", async () => (await fetch(`${plain}/healthz`)).ok);
}

// A test CA and a certificate for localhost, made with openssl.
function certificates() {
  const dir = join(work, "tls");
  mkdirSync(dir);
  const f = (name) => join(dir, name);
  const run = (args) => execFileSync("openssl", args, { stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=Tidings e2e CA"]);
  run(["req", ...ec, "-keyout", f("key.pem"), "-out", f("leaf.csr"), "-subj", "/CN=localhost"]);
  writeFileSync(f("leaf.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  run(["x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", f("leaf.ext"), "-out", f("cert.pem")]);
  return { ca: f("ca.pem"), cert: f("cert.pem"), key: f("key.pem") };
}

// nginx with docs/nginx.conf, changing only the listen address, certificate and upstream.
async function nginx(tls, listen) {
  const prefix = join(work, "nginx");
  mkdirSync(join(prefix, "logs"), { recursive: true });
  const site = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../../../docs/nginx.conf"), "utf8")
    .replace("listen 443 ssl;", `listen 127.0.0.1:${listen} ssl;`)
    .replace("/etc/ssl/tidings/fullchain.pem", tls.cert)
    .replace("/etc/ssl/tidings/privkey.pem", tls.key)
    .replace("127.0.0.1:7878", `127.0.0.1:${port}`);
  const conf = join(prefix, "nginx.conf");
  writeFileSync(conf, `daemon off; master_process off; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy;
${site}
}
`);
  start("nginx", ["-p", prefix, "-c", conf]);
}

const tls = certificates();
const tlsPort = await freePort();
await nginx(tls, tlsPort);
// What people type: the https address nginx answers on.
const url = `https://localhost:${tlsPort}`;
async function stopServer() {
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
}

// --- two displays, two drivers, two apps ---------------------------------------------------
// A display of its own: Xvfb picks a free number and tells it (-displayfd), so a stale
// server from an earlier run can never be reused.
async function display() {
  const x = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1040x720x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  children.push(x);
  let out = "";
  x.stdio[3].on("data", (d) => (out += d));
  const n = await until("Xvfb's display number", () => /\n/.test(out) && out.trim());
  return `:${n}`;
}

async function app(name) {
  const screen = await display();
  const port = await freePort();
  const nativePort = await freePort();
  start("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
    // The app trusts the test CA the way a system trusts its CAs (the platform verifier
    // reads SSL_CERT_FILE on Linux).
    env: { ...process.env, DISPLAY: screen, SSL_CERT_FILE: tls.ca },
  });
  await until("tauri-driver", async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok);
  const browser = await remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "error",
    connectionRetryTimeout: 60_000,
    capabilities: {
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": { application: APP, args: ["--profile-dir", join(work, name), "--server", url] },
    },
  });
  browser.display = screen;
  return browser;
}

async function shot(b, name) {
  if (!SHOTS) return;
  // WebDriver screenshots can be stale in WebKitWebDriver; the X server's pixels are not.
  await sleep(400);
  execFileSync("import", ["-window", "root", join(SHOTS, `${name}.png`)], { env: { ...process.env, DISPLAY: b.display } });
}

// A person picks a file in the system dialog; WebDriver types its path into the (hidden)
// file input instead, which it can only do to a visible one.
async function pickFile(b, sel, path) {
  await b.execute((s) => document.querySelector(s)?.classList.remove("visually-hidden"), sel);
  await (await b.$(sel)).addValue(path);
  await b.execute((s) => document.querySelector(s)?.classList.add("visually-hidden"), sel);
}

// The CLI (the same binary as the server) on a profile of its own, trusting the test CA.
function cli(profile, args, input = "") {
  const out = execFileSync(SERVER_BIN, ["--json", "--profile", join(work, profile), ...args], {
    input,
    // Its log stays out of the test's output (a failure's error carries it).
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, TIDINGS_KEYCHAIN: "off", SSL_CERT_FILE: tls.ca },
  });
  return out.toString().split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// How far `b` trusts contact `who`, as the contacts dialog's list shows it.
async function trustIn(b, who) {
  await (await b.$("#contacts-button")).click();
  const trust = await until(`${who} in the contact list`, () =>
    b.execute((n) => document.querySelector(`#contact-list li[data-username="${n}"]`)?.dataset.trust, who));
  await b.keys("Escape");
  await until("the contacts dialog closed", async () => (await b.$$("#contacts")).length === 0);
  return trust;
}

const text = async (b, sel) => (await b.$(sel)).getText();
const attr = async (b, sel, a) => (await b.$(sel)).getAttribute(a);

async function signUp(b, username) {
  await (await b.$("#username")).waitForExist({ timeout: 30_000 });
  assert.equal(await (await b.$("#server")).getValue(), url, "the first-run screen suggests the server");
  await (await b.$("#username")).setValue(username);
  await (await b.$("#password")).setValue("correct horse battery");
  await (await b.$("#signin-submit")).click();
  await (await b.$("#room-list")).waitForExist({ timeout: 20_000 });
}

async function openRoom(b, name) {
  // By textContent: WebKitWebDriver's getText leaves out text in overflow-hidden boxes.
  const id = await until(`room ${name}`, () =>
    b.execute((n) => [...document.querySelectorAll("button.room")].find((x) => x.querySelector(".room-name")?.textContent === n)?.dataset.room, name));
  // The list re-renders on every sync event (more of them now that the first message sets
  // the room's encryption up): a click on a button just replaced is lost, so click again
  // until the chat is open.
  await until(`chat ${name}`, async () => {
    if ((await text(b, "#chat-title").catch(() => null)) === name) return true;
    await (await b.$(`button.room[data-room="${id}"]`)).click();
    return false;
  });
}

async function send(b, message) {
  const box = await b.$("#composer");
  await box.setValue(message);
  await (await b.$("#send-button")).click();
}

async function lastMineState(b) {
  const ticks = await b.$$("#timeline article.mine .tick");
  return ticks.length ? ticks[ticks.length - 1].getAttribute("data-state") : null;
}

const started = Date.now();
let ann;
let bob;
let laptop;
try {
  await startServer(1_500_000);
  await until("nginx", async () => {
    const out = execFileSync("curl", ["-sS", "--cacert", tls.ca, `${url}/healthz`]).toString();
    return out.length > 0;
  });
  [ann, bob] = [await app("ann"), await app("bob")];
  const suffix = randomBytes(3).toString("hex");
  await signUp(ann, `ann${suffix}`);
  await signUp(bob, `bob${suffix}`);
  await shot(ann, "signed-in");
  console.log("ok - both signed up");

  // Bob writes to Ann before they are contacts: on her side it is a request, with no call
  // button, until she accepts it.
  await (await bob.$("#new-chat-button")).click();
  await (await bob.$("#new-chat-username")).setValue(`ann${suffix}`);
  await (await bob.$("#new-chat-start")).click();
  await until("bob's chat with ann", async () => (await text(bob, "#chat-title")) === `ann${suffix}`);
  await send(bob, "Hi Ann, it's Bob from the climbing club");
  await openRoom(ann, `bob${suffix}`);
  await until("the request bar", async () => (await ann.$("#request-bar")).isDisplayed());
  assert.match(await text(ann, "#request-bar"), /not in your contacts/);
  assert.equal(await (await ann.$("#call-button")).isDisplayed(), false, "no calls from a request");
  await (await ann.$("#request-accept")).click();
  await until("the request accepted", async () => !(await (await ann.$("#request-bar")).isDisplayed()));
  await until("ann's call button", async () => (await ann.$("#call-button")).isDisplayed());
  console.log("ok - a stranger's chat was a request until accepted");

  // Bob shows his code; Ann adds him from a picture of it.
  await (await bob.$("#contacts-button")).click();
  const uri = await until("bob's code", async () => (await bob.$("#my-code")).getValue());
  assert.match(uri, /^tidings:contact\?/);
  await until("bob's QR code", async () => (await bob.$$("#my-qr svg")).length === 1);
  await shot(bob, "contacts");
  await bob.keys("Escape");
  const qr = join(work, "bob-qr.png");
  execFileSync("qrencode", ["-o", qr, "-s", "8", uri]);
  await (await ann.$("#contacts-button")).click();
  await pickFile(ann, "#qr-file", qr);
  await until("the direct chat with bob", async () => (await text(ann, "#chat-title")) === `bob${suffix}`);
  console.log("ok - a QR picture added a contact and opened our chat");

  // Messages both ways; ticks go to read when Bob opens the chat.
  await send(ann, "Hi Bob! Dinner at 7?");
  await until("ann's message sent", async () => ["sent", "delivered", "read"].includes(await lastMineState(ann)));
  await openRoom(bob, `ann${suffix}`);
  await until("bob sees the message", async () => (await text(bob, "#timeline")).includes("Hi Bob! Dinner at 7?"));
  await until("ann's tick turns read", async () => (await lastMineState(ann)) === "read");
  console.log("ok - message delivered and read ticks");
  await send(bob, "Yes! See you there");
  await until("ann sees the reply", async () => (await text(ann, "#timeline")).includes("See you there"));
  console.log("ok - reply arrived");
  // Emoji in colour in the app's own web view, from the font it ships (this machine has no
  // colour emoji font).
  const coloured = await ann.execute(emojiColourPixels);
  assert.ok(coloured > 20, `emoji drawn in colour (${coloured} coloured pixels)`);
  console.log("ok - emoji in colour");

  // What people do with messages, from each message's menu: Bob reacts and replies; Ann
  // edits hers, deletes one for everyone (asked again in place) and finds one by search.
  // The menu is opened and pressed inside the page (the timeline re-renders as sync events
  // arrive, and a WebDriver click on a bubble just replaced is lost).
  const press = (b, words, item) => b.execute((w, it) => {
    const bubble = [...document.querySelectorAll("#timeline article.msg")].find((a) => a.querySelector(".text")?.textContent.includes(w));
    if (!bubble) return false;
    if (!bubble.querySelector("#message-menu")) bubble.querySelector(".msg-actions")?.click();
    const target = bubble.querySelector(it);
    target?.click();
    return target !== null;
  }, words, item);
  const fromMenu = (b, words, item) => until(`${item} on "${words}"`, () => press(b, words, item));
  const timelineHas = (b, f) => b.execute(f);
  await fromMenu(bob, "Dinner at 7", ".quick-reactions button");
  await until("ann sees bob's reaction", () => timelineHas(ann, () => [...document.querySelectorAll("#timeline .reaction")].some((r) => r.textContent === "👍 1")));
  await fromMenu(ann, "Dinner at 7", "#menu-edit");
  await send(ann, "Hi Bob! Dinner at 8?");
  await until("bob sees the edit", () => timelineHas(bob, () => {
    const t = document.querySelector("#timeline").textContent;
    return t.includes("Dinner at 8?") && !t.includes("Dinner at 7?") && document.querySelectorAll("#timeline .edited").length === 1;
  }));
  await fromMenu(bob, "Dinner at 8", "#menu-reply");
  await send(bob, "8 works for me");
  await until("ann sees the reply's quote", () => timelineHas(ann, () => [...document.querySelectorAll("#timeline .quote")].some((q) => q.textContent.includes("Dinner at 8"))));
  await send(ann, "oops, wrong chat");
  await until("bob sees the slip", () => timelineHas(bob, () => document.querySelector("#timeline").textContent.includes("oops, wrong chat")));
  // Pressed until it is gone: the second press deletes, unless a re-render closed the menu
  // in between (then it is asked again).
  await until("ann deletes it for everyone", async () => {
    const gone = await timelineHas(ann, () => !document.querySelector("#timeline").textContent.includes("oops"));
    if (!gone) await press(ann, "oops, wrong chat", "#menu-delete-everyone");
    return gone;
  }, 30_000);
  for (const [who, b] of [["ann", ann], ["bob", bob]]) {
    await until(`deleted for ${who}`, () => timelineHas(b, () => {
      const t = document.querySelector("#timeline").textContent;
      return !t.includes("oops") && t.includes("Message deleted");
    }));
  }
  await (await ann.$("#search")).setValue("dinner");
  await until("ann finds it by search", () => ann.execute(() => document.querySelector("#search-results")?.textContent.includes("Dinner at 8") ?? false));
  await ann.execute(() => {
    const box = document.querySelector("#search");
    box.value = "";
    box.dispatchEvent(new Event("input"));
  });
  await until("the chat list back", () => ann.execute(() => document.querySelector("#search-results")?.hidden ?? false));
  console.log("ok - reacted, edited, replied, deleted for everyone, found by search");

  // A photo: Bob sees its thumbnail.
  await pickFile(ann, "#attach-input", PHOTO);
  await until("the photo sent", async () => (await ann.$$("#timeline article.mine img.photo")).length === 1 && (await lastMineState(ann)) !== "pending", 60_000);
  await until("bob's thumbnail", async () => (await attr(bob, "#timeline img.photo", "data-loaded")) === "thumbnail", 30_000);
  await shot(ann, "chat");
  console.log("ok - photo arrived with its thumbnail");

  // A file over the server's limit fails with the reason; after the limit is raised, Retry sends it.
  const big = join(work, "notes-2mb.bin");
  writeFileSync(big, randomBytes(2_000_000));
  await pickFile(ann, "#attach-input", big);
  await until("the refusal", async () => (await lastMineState(ann)) === "failed", 30_000);
  // The chat shows it at once, with Retry in the bubble (no other event needed).
  await until("the failed bubble", async () => (await ann.$$("#timeline article.mine.failed .failed-note button")).length === 1, 5_000);
  await until("the unsent banner", async () => (await text(ann, "#pending-button")).includes("not sent"));
  await (await ann.$("#pending-button")).click();
  await until("the reason", async () => /too large|limit|bytes/i.test(await text(ann, "#pending-list")));
  await stopServer();
  await startServer(100_000_000);
  await (await ann.$("#pending-list button.retry")).click();
  await ann.keys("Escape");
  await until("the retried file sent", async () => ["sent", "delivered", "read"].includes(await lastMineState(ann)), 60_000);
  await until("bob gets the file", async () => (await text(bob, "#timeline")).includes("notes-2mb.bin"), 30_000);
  console.log("ok - a refused send was retried and delivered");

  // A call from the app: requesting…, Bob's phone rings, he answers, both are connected,
  // Ann hangs up, and the call's record is in the chat.
  await (await ann.$("#call-button")).click();
  await until("bob's incoming call", async () => (await bob.$$("#call-accept")).length === 1, 20_000);
  assert.equal(await text(bob, "#call-peer"), `ann${suffix}`);
  await (await bob.$("#call-accept")).click();
  await until("ann connected", async () => (await text(ann, "#call-status")) === "Connected", 30_000);
  await until("bob connected", async () => (await text(bob, "#call-status")) === "Connected", 30_000);
  await sleep(1500);
  await shot(bob, "call");
  await (await ann.$("#call-hangup")).click();
  await until("bob's call ended", async () => (await text(bob, "#call-status")) === "Call ended", 20_000);
  await until("the call record", async () => /Outgoing call · 0:0\d/.test(await text(ann, "#timeline")), 20_000);
  console.log("ok - a call connected both ways and ended with a record");

  // Ann links a new device: her Settings show a link code; she ticks sending her past chats
  // with it (their size shown first); a third app, signed out, takes its text (never
  // printed: it is a credential), becomes a device of her account, shows her chat with Bob
  // from before, and reads what Bob sends from then on.
  const laptopStarting = app("ann-laptop");
  laptopStarting.catch(() => {}); // awaited below; its failure is reported there
  await (await ann.$("#settings-button")).click();
  await (await ann.$("#link-device")).click();
  await until("ann's first link code", async () => (await ann.$("#link-code")).getValue());
  await until("the size of her past chats", async () => /messages?, up to/.test(await text(ann, "#link-history-size")));
  await (await ann.$("#link-history")).click();
  await until("her past chats sent", async () => /go with this code/.test(await text(ann, "#link-history-status")), 60_000);
  const linkCode = await until("ann's link code", async () => (await ann.$("#link-code")).getValue());
  assert.ok(linkCode.startsWith("tidings:link?"), "a link code");
  await until("the link QR code", async () => (await ann.$$("#link-qr svg")).length === 1);
  assert.match(await text(ann, "#link-expires"), /^Works once/);
  await shot(ann, "link-code");
  laptop = await laptopStarting;
  await (await laptop.$("#signin-link")).waitForExist({ timeout: 30_000 });
  await (await laptop.$("#signin-link")).click();
  await (await laptop.$("#link-code-text")).setValue(linkCode);
  await (await laptop.$("#link-submit")).click();
  await (await laptop.$("#room-list")).waitForExist({ timeout: 30_000 });
  await until("ann's window sees the new device", async () => /new device is linked/.test(await text(ann, "#link-status")), 15_000);
  await ann.keys("Escape");
  await until("two devices in ann's settings", async () => (await ann.$$("#device-list li")).length === 2);
  await ann.keys("Escape");
  await openRoom(laptop, `bob${suffix}`);
  // As it shows now: edited (the archive carries a message's last edit).
  await until("the linked device shows the chat from before", async () => (await text(laptop, "#timeline")).includes("Hi Bob! Dinner at 8?"), 30_000);
  await send(bob, "Hello to Ann's new laptop");
  await until("the linked device reads bob's message", async () => (await text(laptop, "#timeline")).includes("Hello to Ann's new laptop"), 30_000);
  await shot(laptop, "linked");
  console.log("ok - a device linked by code joined ann's account, shows her past chat and reads on");

  // Ann's one scan of Bob's contact code (above) verified him, and the proof it sent Bob's
  // devices verified her: both lists show it, and her chat says so.
  const annName = `ann${suffix}`;
  const bobName = `bob${suffix}`;
  await until("ann sees bob verified", async () => (await trustIn(ann, bobName)) === "verified");
  await until("bob sees ann verified", async () => (await trustIn(bob, annName)) === "verified", 30_000);
  assert.match(await text(ann, "#timeline"), new RegExp(`${bobName} is verified`));
  console.log("ok - one scan verified both ways");

  // Bob signs in on a fresh profile with his password alone: a new identity, which Ann's
  // device meets when it joins their chat. She verified the old one, so sending is held.
  cli("bob-new", ["login", "--server", url, "--username", bobName, "--password-stdin"], "correct horse battery\n");
  cli("bob-new", ["sync"]);
  const bobRoom = cli("bob-new", ["rooms"])[0].room;
  cli("bob-new", ["send", bobRoom, "It's me, on a new phone"]);
  cli("bob-new", ["sync"]); // `send` queues; a sync sends
  await until("ann reads bob's new device", async () => (await text(ann, "#timeline")).includes("It's me, on a new phone"), 30_000);
  await until("the security banner", async () => (await ann.$("#security-bar")).isDisplayed(), 15_000);
  assert.match(await text(ann, "#security-bar"), new RegExp(`${bobName}'s security code changed`));
  assert.match(await text(ann, "#timeline"), new RegExp(`${bobName}'s security code changed`));
  assert.equal(await (await ann.$("#send-button")).isEnabled(), false, "the send button is off");
  await (await ann.$("#composer")).setValue("Is this really you?");
  await ann.keys("Enter");
  await until("the refusal", async () => /security code changed — accept it or verify again to send/.test(await text(ann, "#composer-error")));
  assert.ok(!(await text(ann, "#timeline")).includes("Is this really you?"), "nothing was sent");
  assert.equal(await (await ann.$("#composer")).getValue(), "Is this really you?", "the text stays");
  await shot(ann, "security-code-changed");
  await (await ann.$("#security-accept")).click();
  await until("the banner gone", async () => !(await (await ann.$("#security-bar")).isDisplayed()));
  await (await ann.$("#send-button")).click();
  await until("bob reads it after ann accepted", async () => (await text(bob, "#timeline")).includes("Is this really you?"), 30_000);
  assert.equal(await trustIn(ann, bobName), "unverified");
  console.log("ok - a verified contact's new key held sending until accepted");

  // Ann verifies Bob again from a picture of the security code his new device shows.
  const verifyPng = join(work, "bob-verify.png");
  cli("bob-new", ["security-code", annName, "--png", verifyPng]);
  await (await ann.$("#contacts-button")).click();
  await (await ann.$(`#contact-list button[aria-label='Security code with ${bobName}']`)).click();
  await (await ann.$("#verify-pick")).waitForExist({ timeout: 15_000 });
  await pickFile(ann, "#verify-file", verifyPng);
  await until("bob verified again", async () => (await text(ann, "#verify-status")) === `${bobName} is verified.`, 15_000);
  assert.equal(await attr(ann, "#security-trust", "data-trust"), "verified");
  await shot(ann, "verified");
  await ann.keys("Escape");
  await ann.keys("Escape");
  console.log("ok - a scan of the security code on his new device verified him again");

  console.log(`e2e passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`not ok - ${e.stack ?? e}`);
  for (const [who, b] of [["ann", ann], ["bob", bob], ["ann's laptop", laptop]]) {
    if (!b) continue;
    try {
      console.error(`--- ${who}'s page:\n${(await text(b, "#app")).slice(0, 2000)}`);
      await shot(b, `failed-${who}`).catch((e) => console.error(`screenshot: ${e.message}`));
    } catch {}
  }
  if (server) console.error(`--- server output:\n${server.output().slice(-3000)}`);
  process.exitCode = 1;
} finally {
  for (const b of [ann, bob, laptop]) await b?.deleteSession().catch(() => {});
  for (const c of children.reverse()) c.kill("SIGTERM");
  await sleep(300);
  rmSync(work, { recursive: true, force: true });
}

