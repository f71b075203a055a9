//! The archive's format (see [`super`] for the records' layout): a [`Writer`] that stays
//! within its [`Limits`], and a [`Reader`] that checks every length it reads before it
//! allocates, and stops inflating at the limit.

use std::io::{Read, Write};

use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use tidings_proto::limits::{MAX_JOIN_ROOMS, MAX_PLAINTEXT_BYTES, MAX_ROOM_NAME_BYTES};

use super::{HistoryError, Limits};

pub(super) const MAGIC: &[u8] = b"tidings history\0";
pub(super) const VERSION: u8 = 1;
pub(super) const END: u8 = 0;
pub(super) const ROOM: u8 = 1;
pub(super) const EVENT: u8 = 2;
pub(super) const QUIET: u8 = 3;
/// The most namings-not-yet-seen an archive lists.
pub(super) const MAX_QUIET: usize = 10_000;
/// An event's body length meaning "no plaintext for it".
pub(super) const NO_BODY: u32 = u32::MAX;
/// Bytes of an event record besides its body.
pub(super) const EVENT_HEAD: u64 = 1 + 4 + 8 + 4;

/// A room in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchivedRoom {
    /// Its server id.
    pub room: i64,
    /// How far the sending device had applied the room's log.
    pub through: u64,
    /// Its name (a group's), as the sending device knew it.
    pub name: Option<String>,
}

/// One record of an archive, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A room (all rooms come before any event).
    Room(ArchivedRoom),
    /// An event of the `room`-th room: its plaintext body, or none.
    Event { room: usize, seq: u64, body: Option<Vec<u8>> },
    /// A naming the sending device sent and passes over when its log brings it.
    Quiet([u8; 16]),
    /// The end: per room, the seq at or below which nothing is described.
    End(Vec<u64>),
}

/// Writes an archive within [`Limits`]: rooms first, then events while they fit.
pub(crate) struct Writer<W: Write> {
    out: DeflateEncoder<W>,
    limits: Limits,
    rooms: usize,
    quiet: usize,
    events: bool,
    raw: u64,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W, limits: Limits) -> std::io::Result<Self> {
        let mut out = DeflateEncoder::new(out, Compression::default());
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        Ok(Self { out, limits, rooms: 0, quiet: 0, events: false, raw: MAGIC.len() as u64 + 1 })
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.raw += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// The end record's bytes.
    fn end_len(&self) -> u64 {
        1 + 8 * self.rooms as u64
    }

    /// What the deflater may still hold unwritten, besides a record and the end: its window
    /// and buffers (generous; the end is checked again at [`Self::finish`]).
    fn slack(&self) -> u64 {
        256 * 1024 + 2 * self.end_len()
    }

    /// Adds a room (before any event; at most [`MAX_JOIN_ROOMS`]).
    pub(crate) fn room(&mut self, room: &ArchivedRoom) -> std::io::Result<()> {
        let refuse = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if self.events || self.rooms >= MAX_JOIN_ROOMS {
            return Err(refuse("a room after events, or too many rooms"));
        }
        let name = room.name.as_deref().unwrap_or_default().as_bytes();
        if name.len() > MAX_ROOM_NAME_BYTES {
            return Err(refuse("a room name over its limit"));
        }
        let mut record = Vec::with_capacity(18 + name.len());
        record.push(ROOM);
        record.extend_from_slice(&room.room.to_be_bytes());
        record.extend_from_slice(&room.through.to_be_bytes());
        record.push(name.len() as u8);
        record.extend_from_slice(name);
        self.put(&record)?;
        self.rooms += 1;
        Ok(())
    }

    /// Adds a naming sent and not seen in the log yet (before any event; at most
    /// [`MAX_QUIET`]).
    pub(crate) fn quiet(&mut self, request: &[u8; 16]) -> std::io::Result<()> {
        if self.events || self.quiet >= MAX_QUIET {
            let why = "a naming after events, or too many";
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        }
        let mut record = [QUIET; 17];
        record[1..].copy_from_slice(request);
        self.put(&record)?;
        self.quiet += 1;
        Ok(())
    }

    /// Adds an event if it fits the limits with the end after it; `false` (and nothing
    /// written) when it does not: the archive is full.
    pub(crate) fn event(
        &mut self,
        room: usize,
        seq: u64,
        body: Option<&[u8]>,
    ) -> std::io::Result<bool> {
        let refuse = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if room >= self.rooms || body.is_some_and(|b| b.len() > MAX_PLAINTEXT_BYTES) {
            return Err(refuse("an event of no room, or over the plaintext limit"));
        }
        let len = EVENT_HEAD + body.map_or(0, |b| b.len() as u64);
        let deflated = self.out.total_out();
        if self.raw + len + self.end_len() > self.limits.inflated
            || deflated + len + self.slack() > self.limits.archive
        {
            return Ok(false);
        }
        self.events = true;
        let mut head = [0u8; EVENT_HEAD as usize];
        head[0] = EVENT;
        head[1..5].copy_from_slice(&(room as u32).to_be_bytes());
        head[5..13].copy_from_slice(&seq.to_be_bytes());
        let body_len = body.map_or(NO_BODY, |b| b.len() as u32);
        head[13..17].copy_from_slice(&body_len.to_be_bytes());
        self.put(&head)?;
        if let Some(body) = body {
            self.put(body)?;
        }
        Ok(true)
    }

    /// Ends the archive with each room's `from`; returns the output and the deflated length.
    pub(crate) fn finish(mut self, from: &[u64]) -> std::io::Result<(W, u64)> {
        if from.len() != self.rooms {
            let why = "an end that is not one seq per room";
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        }
        let mut end = Vec::with_capacity(self.end_len() as usize);
        end.push(END);
        for seq in from {
            end.extend_from_slice(&seq.to_be_bytes());
        }
        self.put(&end)?;
        let len = {
            self.out.try_finish()?;
            self.out.total_out()
        };
        if len > self.limits.archive {
            let why = "the archive outgrew its limit";
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        Ok((self.out.finish()?, len))
    }
}

/// Reads an archive's records, within [`Limits`], before allocating anything they declare.
pub(crate) struct Reader<R: Read> {
    /// The inflated stream, cut one byte past the limit (reading that byte is too much).
    input: std::io::Take<DeflateDecoder<R>>,
    inflated: u64,
    rooms: usize,
    quiet: usize,
    events: bool,
    ended: bool,
}

impl<R: Read> Reader<R> {
    /// Reads the magic of the deflated archive `deflated`.
    pub(crate) fn new(deflated: R, limits: Limits) -> Result<Self, HistoryError> {
        let input = DeflateDecoder::new(deflated).take(limits.inflated.saturating_add(1));
        let mut reader = Self {
            input,
            inflated: limits.inflated,
            rooms: 0,
            quiet: 0,
            events: false,
            ended: false,
        };
        let mut magic = [0u8; MAGIC.len() + 1];
        reader.exact(&mut magic)?;
        if magic[..MAGIC.len()] != *MAGIC || magic[MAGIC.len()] != VERSION {
            return Err(HistoryError::Malformed("not a history archive of this version"));
        }
        Ok(reader)
    }

    fn exact(&mut self, buffer: &mut [u8]) -> Result<(), HistoryError> {
        self.input.read_exact(buffer).map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &std::io::Error) -> HistoryError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof if self.input.limit() == 0 => {
                HistoryError::TooLarge { max: self.inflated }
            }
            std::io::ErrorKind::UnexpectedEof => HistoryError::Malformed("cut short"),
            _ => HistoryError::Malformed("not deflated data"),
        }
    }

    fn u64(&mut self) -> Result<u64, HistoryError> {
        let mut bytes = [0u8; 8];
        self.exact(&mut bytes)?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn u32(&mut self) -> Result<u32, HistoryError> {
        let mut bytes = [0u8; 4];
        self.exact(&mut bytes)?;
        Ok(u32::from_be_bytes(bytes))
    }

    /// The next record; `None` after the end (which must be the last byte).
    pub(crate) fn next(&mut self) -> Result<Option<Record>, HistoryError> {
        if self.ended {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.exact(&mut tag)?;
        match tag[0] {
            ROOM => {
                if self.events || self.rooms >= MAX_JOIN_ROOMS {
                    return Err(HistoryError::Malformed("a room after events, or too many rooms"));
                }
                let room = self.u64()? as i64;
                let through = self.u64()?;
                let mut len = [0u8; 1];
                self.exact(&mut len)?;
                let len = usize::from(len[0]);
                if len > MAX_ROOM_NAME_BYTES {
                    return Err(HistoryError::Malformed("a room name over its limit"));
                }
                let mut name = vec![0u8; len];
                self.exact(&mut name)?;
                let name = String::from_utf8(name)
                    .map_err(|_| HistoryError::Malformed("a room name that is not text"))?;
                self.rooms += 1;
                let name = (!name.is_empty()).then_some(name);
                Ok(Some(Record::Room(ArchivedRoom { room, through, name })))
            }
            QUIET => {
                if self.events || self.quiet >= MAX_QUIET {
                    return Err(HistoryError::Malformed("a naming after events, or too many"));
                }
                let mut request = [0u8; 16];
                self.exact(&mut request)?;
                self.quiet += 1;
                Ok(Some(Record::Quiet(request)))
            }
            EVENT => {
                self.events = true;
                let room = self.u32()? as usize;
                let seq = self.u64()?;
                let len = self.u32()?;
                if room >= self.rooms || seq == 0 {
                    return Err(HistoryError::Malformed("an event of no room"));
                }
                let body = match len {
                    NO_BODY => None,
                    len if len as usize > MAX_PLAINTEXT_BYTES => {
                        return Err(HistoryError::Malformed("a message over the plaintext limit"))
                    }
                    len => {
                        let mut body = vec![0u8; len as usize];
                        self.exact(&mut body)?;
                        Some(body)
                    }
                };
                Ok(Some(Record::Event { room, seq, body }))
            }
            END => {
                let from = (0..self.rooms).map(|_| self.u64()).collect::<Result<Vec<_>, _>>()?;
                let mut more = [0u8; 1];
                match self.input.read(&mut more) {
                    Ok(0) if self.input.limit() > 0 => {}
                    Ok(0) => return Err(HistoryError::TooLarge { max: self.inflated }),
                    Ok(_) => return Err(HistoryError::Malformed("bytes after the end")),
                    Err(e) => return Err(self.failed(&e)),
                }
                self.ended = true;
                Ok(Some(Record::End(from)))
            }
            _ => Err(HistoryError::Malformed("a record of no known kind")),
        }
    }
}
