"""Search over 1,000,000 messages in FTS5: every word a prefix without prefix indexes, against
the last word a prefix with prefix indexes of 2, 3 and 4 characters (docs/performance.md, "Search").
The texts are bench core's (bench/src/client.rs, Texts). Run: python3 docs/bench/fts_prefixes.py DIR"""

import os
import sqlite3
import sys
import time

SYLLABLES = ["ka", "lo", "mi", "ne", "ra", "to", "su", "vi", "de", "po",
             "ba", "ze", "ti", "go", "fu", "ha", "je", "wy", "qu", "xe"]
MASK = (1 << 64) - 1


def word(rank):
    n, out = rank + 20, ""
    while n > 0:
        out += SYLLABLES[n % 20]
        n //= 20
    return out


def texts(count):
    state = 0x9E3779B97F4A7C15
    for _ in range(count):
        words = []
        for _ in range(8):
            state ^= state >> 12
            state ^= (state << 25) & MASK
            state ^= state >> 27
            u = (((state * 0x2545F4914F6CDD1D) & MASK) >> 11) / (1 << 53)
            words.append(word(min(int(5000 ** u) - 1, 4999)))
        yield " ".join(words)


def build(path, options):
    db = sqlite3.connect(path)
    db.execute("CREATE VIRTUAL TABLE search USING fts5(text, room, "
               f"tokenize = 'unicode61 remove_diacritics 2'{options})")
    started = time.time()
    with db:
        db.executemany("INSERT INTO search (rowid, text, room) VALUES (?, ?, ?)",
                       ((i + 1, t, f"r{i // 1000 + 1}") for i, t in enumerate(texts(1_000_000))))
    print(f"{path}: filled in {time.time() - started:.1f} s, {os.path.getsize(path) >> 20} MB")
    return db


def main(dir):
    before = build(os.path.join(dir, "before.db"), "")
    after = build(os.path.join(dir, "after.db"), ", prefix = '2 3 4'")
    queries = [
        ("the most common word", [word(0)], None),
        ("a word of rank 100", [word(100)], None),
        ("a rare word", [word(4000)], None),
        ("two common words", [word(1), word(2)], None),
        ("a two-letter prefix", [word(0)[:2]], None),
        ("a three-letter prefix", [word(0)[:3]], None),
        ("the most common word, in the oldest room", [word(0)], "r1"),
    ]
    for label, words, room in queries:
        row = [label]
        for db, every in [(before, True), (after, False)]:
            terms = [f'"{w}"' + ("*" if every or i == len(words) - 1 else "")
                     for i, w in enumerate(words)]
            query = f"text : ({' '.join(terms)})" + (f' AND room : "{room}"' if room else "")
            times = []
            for _ in range(5):
                started = time.perf_counter()
                db.execute("SELECT rowid, snippet(search, 0, '[', ']', '…', 16) FROM search "
                           "WHERE search MATCH ? ORDER BY rowid DESC LIMIT 20", (query,)).fetchall()
                times.append((time.perf_counter() - started) * 1000)
            row.append(f"{min(times):.1f} / {max(times):.1f} ms")
        print(" | ".join(row))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
