import { describe, expect, it } from "vitest";
import { banner, bytes, callRecord, caption, callStatus, dayLabel, duration, endReason, groupByDay, initials, linkExpiry, linkParts, mentionParts, noticeText, placeholderSize, stuckReason, tick, timerLabel, TIMER_CHOICES, trustBadge } from "../../src/format";
import type { Message } from "../../src/bindings";

const msg = (at: number): Message => ({
  room: 1, seq: 1, request_id: "r", sender: "a", at_ms: at, text: "t", notice: null, state: "sent",
  position: 1, image: null, file: null, video: null, call: null,
  reply_to: null, edited: false, deleted: false, reactions: [], forwarded: false, expires_ms: null, mentions_me: false,
});

describe("ticks", () => {
  it("say each state in words and symbols", () => {
    expect(tick("pending").label).toBe("Sending");
    expect(tick("sent").symbol).toBe("✓");
    expect(tick("delivered").symbol).toBe("✓✓");
    expect(tick("read").cls).toContain("read");
    expect(tick("failed").label).toBe("Not sent");
  });
});

describe("connection banner", () => {
  it("is hidden online and shows sync progress", () => {
    expect(banner("online")).toBeNull();
    expect(banner("offline")).toMatch(/Offline/);
    expect(banner("syncing", { done: 250, total: 1000 })).toBe("Syncing… 25%");
    expect(banner("syncing", { done: 5, total: 0 })).toBe("Syncing…");
  });
});

describe("days", () => {
  const noon = new Date(2026, 11, 1, 12, 0).getTime();
  it("names today, yesterday and weekdays, then dates", () => {
    expect(dayLabel(noon - 3_600_000, noon)).toBe("Today");
    expect(dayLabel(new Date(2026, 10, 30, 23, 59).getTime(), noon)).toBe("Yesterday");
    expect(dayLabel(new Date(2026, 10, 28, 9).getTime(), noon)).not.toMatch(/2026/);
    expect(dayLabel(new Date(2025, 0, 2).getTime(), noon)).toMatch(/2025/);
  });
  it("group messages by local day, keeping order", () => {
    const a = new Date(2026, 10, 30, 23, 50).getTime();
    const b = new Date(2026, 11, 1, 0, 10).getTime();
    const groups = groupByDay([msg(a), msg(a + 1000), msg(b)]);
    expect(groups.map((g) => g.messages.length)).toEqual([2, 1]);
  });
});

describe("numbers", () => {
  it("format durations and sizes", () => {
    expect(duration(0)).toBe("0:00");
    expect(duration(247_000)).toBe("4:07");
    expect(duration(3_723_000)).toBe("1:02:03");
    expect(bytes(512)).toBe("512 B");
    expect(bytes(2.5 * 1024 * 1024)).toBe("2.5 MB");
  });
  it("make initials from names", () => {
    expect(initials("ann")).toBe("A");
    expect(initials("bob smith")).toBe("BS");
    expect(initials("  ")).toBe("?");
  });
});

describe("captions", () => {
  it("leave out the core's stand-in text for attachments", () => {
    const image = { width: 1, height: 1, mime: "image/jpeg", size: 1, thumbnail_width: 1, thumbnail_height: 1, placeholder: "", media: null };
    expect(caption({ ...msg(0), text: "Photo", image })).toBeNull();
    expect(caption({ ...msg(0), text: "At the lake", image })).toBe("At the lake");
    expect(caption({ ...msg(0), text: "a.pdf", file: { name: "a.pdf", size: 1, mime: "application/pdf", media: null } })).toBeNull();
    expect(caption(msg(0))).toBe("t");
  });
});

describe("calls", () => {
  it("word records from my side", () => {
    expect(callRecord({ caller: 1, outcome: "completed", duration_ms: 65_000, video: false }, 1)).toBe("Outgoing call · 1:05");
    expect(callRecord({ caller: 2, outcome: "missed", duration_ms: 0, video: false }, 1)).toBe("Missed call");
    expect(callRecord({ caller: 1, outcome: "busy", duration_ms: 0, video: false }, 1)).toBe("Line busy");
  });
  it("say why a call ended, plainly", () => {
    expect(endReason("busy")).toMatch(/Busy/);
    expect(endReason("unavailable")).toMatch(/not online/);
    expect(endReason("no_answer")).toBe("No answer");
    expect(endReason("not_encrypted")).toMatch(/encryption was not ready/);
    expect(endReason("declined")).toBeNull();
    expect(callStatus({ state: "requesting", call: 1, peer: { room: 1, user: 2, device: null } })).toBe("Requesting…");
  });
});

describe("placeholder size", () => {
  it("follows the picture's shape within 32×1…64, whatever the sender claims", () => {
    expect(placeholderSize(4000, 3000)).toEqual({ w: 32, h: 24 });
    expect(placeholderSize(1, 100_000)).toEqual({ w: 32, h: 64 });
    expect(placeholderSize(100_000, 1)).toEqual({ w: 32, h: 1 });
    expect(placeholderSize(0, 0)).toEqual({ w: 32, h: 32 });
  });
});

describe("links in messages", () => {
  it("are found in text, without the punctuation that ends the sentence", () => {
    expect(linkParts("see https://example.org/a?b=1. ok")).toEqual([
      { text: "see " }, { link: "https://example.org/a?b=1" }, { text: ". ok" },
    ]);
    expect(linkParts("(docs: http://x.example/wiki/Foo_(bar))")).toEqual([
      { text: "(docs: " }, { link: "http://x.example/wiki/Foo_(bar)" }, { text: ")" },
    ]);
  });
  it("are only http and https addresses with a host", () => {
    expect(linkParts("javascript:alert(1) file:///etc/passwd ftp://x")).toEqual([
      { text: "javascript:alert(1) file:///etc/passwd ftp://x" },
    ]);
    expect(linkParts("https:// nothing")).toEqual([{ text: "https:// nothing" }]);
    expect(linkParts("plain text")).toEqual([{ text: "plain text" }]);
  });
});

describe("notices", () => {
  it("are worded from the facts, with who did it", () => {
    expect(noticeText({ kind: "created" }, "ann")).toBe("ann created the room");
    expect(noticeText({ kind: "joined", user: "bob" }, "ann")).toBe("bob joined");
    expect(noticeText({ kind: "invited", user: "bob" }, "ann")).toBe("ann invited bob");
    expect(noticeText({ kind: "left" }, "cy")).toBe("cy left");
    expect(noticeText({ kind: "renamed", name: "Trip" }, "ann")).toBe("ann renamed the room to Trip");
    expect(noticeText({ kind: "security", issue: "not_a_member" }, "ann")).toBe(
      "Refused: ann tried to let a device of someone not in this room read it",
    );
    expect(noticeText({ kind: "security", issue: "wrong_sender" }, "ann")).toContain("another device");
    expect(noticeText({ kind: "security", issue: "bad_signature" }, "ann")).toContain("not signed by them");
  });

  it("name whose security code changed or was verified", () => {
    expect(noticeText({ kind: "security", issue: "key_changed" }, "bob")).toBe("bob's security code changed");
    expect(noticeText({ kind: "security", issue: "verified" }, "bob")).toBe("bob is verified");
  });
});

describe("trust badges", () => {
  it("mark verified contacts and warn of a changed code, and say nothing otherwise", () => {
    expect(trustBadge("unverified")).toBeNull();
    expect(trustBadge("verified")?.label).toBe("Verified");
    expect(trustBadge("changed")?.label).toBe("Security code changed");
    expect(trustBadge("changed")?.cls).toContain("changed");
  });
});

describe("stuck reasons", () => {
  it("say why an item is not sent, whatever the server's message", () => {
    expect(stuckReason("too_large")).toMatch(/too large/);
    expect(stuckReason("forbidden")).toMatch(/no longer send/);
    expect(stuckReason(null)).toBe("unknown reason");
    expect(stuckReason("unknown")).toBe("the server refused it");
  });
});

describe("link code expiry", () => {
  it("says how long the code still works, then that it has expired", () => {
    const now = 1_700_000_000_000;
    expect(linkExpiry(now + 600_000, now)).toMatch(/^Works once, for 10 more minutes \(until .+\)\.$/);
    expect(linkExpiry(now + 61_000, now)).toMatch(/^Works once, for 2 more minutes/);
    expect(linkExpiry(now + 60_000, now)).toMatch(/^Works once, for 1 more minute /);
    expect(linkExpiry(now + 58_001, now)).toBe("Works once, for 59 more seconds.");
    expect(linkExpiry(now + 1, now)).toBe("Works once, for 1 more second.");
    expect(linkExpiry(now, now)).toBe("This code has expired. Show a new one.");
    expect(linkExpiry(now - 5_000, now)).toBe("This code has expired. Show a new one.");
  });
});

describe("disappearing messages", () => {
  it("word the timer", () => {
    expect(TIMER_CHOICES.map(timerLabel)).toEqual(["Off", "30 seconds", "5 minutes", "1 hour", "1 day", "1 week"]);
    expect(timerLabel(90)).toBe("90 seconds");
    expect(timerLabel(2 * 86_400)).toBe("2 days");
    expect(timerLabel(28 * 86_400)).toBe("4 weeks");
    expect(timerLabel(1)).toBe("1 second");
  });
  it("word the notice, mine as You", () => {
    expect(noticeText({ kind: "disappearing", seconds: 86_400 }, "ann", "bob")).toBe("ann set messages to disappear after 1 day");
    expect(noticeText({ kind: "disappearing", seconds: null }, "ann", "bob")).toBe("ann turned off disappearing messages");
    expect(noticeText({ kind: "disappearing", seconds: 300 }, "ann", "ann")).toBe("You set messages to disappear after 5 minutes");
    expect(noticeText({ kind: "disappearing", seconds: null }, "ann", "ann")).toBe("You turned off disappearing messages");
  });
});

describe("mentions", () => {
  it("are an @ that starts a word, then a username, as the core finds them", () => {
    expect(mentionParts("hi @Ann and @bob.smith, see @ann.")).toEqual([
      { text: "hi " }, { mention: "@Ann", name: "ann" }, { text: " and " }, { mention: "@bob.smith", name: "bob.smith" },
      { text: ", see " }, { mention: "@ann", name: "ann" }, { text: "." },
    ]);
    expect(mentionParts("mail ann@example.org")).toEqual([{ text: "mail ann@example.org" }]);
    expect(mentionParts("@ @@ @-")).toEqual([{ text: "@ @@ @-" }]);
    expect(mentionParts("(@zoe)")).toEqual([{ text: "(" }, { mention: "@zoe", name: "zoe" }, { text: ")" }]);
    expect(mentionParts("é@zoe")).toEqual([{ text: "é@zoe" }]);
    expect(mentionParts("@@zoe")).toEqual([{ text: "@" }, { mention: "@zoe", name: "zoe" }]);
    expect(mentionParts("no mentions")).toEqual([{ text: "no mentions" }]);
  });
});
