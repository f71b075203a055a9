//! Hand-made MessagePack, for bytes this build would never encode: frames of other versions,
//! lying headers, bad UTF-8. `map([("id", u(1)), …]).bytes()` reads like the JSON it stands for.

/// A MessagePack value, or raw bytes spliced in as they are.
#[derive(Debug, Clone)]
pub enum Mp {
    Map(Vec<(String, Mp)>),
    Array(Vec<Mp>),
    Str(String),
    Uint(u64),
    Bin(Vec<u8>),
    Nil,
    Raw(Vec<u8>),
}

/// A map with string keys, in this order.
pub fn map<const N: usize>(entries: [(&str, Mp); N]) -> Mp {
    Mp::Map(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// An array.
pub fn array(items: impl IntoIterator<Item = Mp>) -> Mp {
    Mp::Array(items.into_iter().collect())
}

/// A string.
pub fn s(text: &str) -> Mp {
    Mp::Str(text.to_owned())
}

/// An unsigned integer.
pub fn u(n: u64) -> Mp {
    Mp::Uint(n)
}

/// A byte string.
pub fn bin(bytes: &[u8]) -> Mp {
    Mp::Bin(bytes.to_vec())
}

/// Raw bytes written by `write` (a header that lies about what follows, say).
pub fn raw<T, E: std::fmt::Debug>(write: impl FnOnce(&mut Vec<u8>) -> Result<T, E>) -> Mp {
    let mut bytes = Vec::new();
    write(&mut bytes).unwrap();
    Mp::Raw(bytes)
}

/// A one-entry map `{tag: content}`: how an enum value with data is encoded.
pub fn variant(tag: &str, content: Mp) -> Mp {
    map([(tag, content)])
}

/// A client frame `{"id": 1, "request": {kind: fields}}`.
pub fn request(kind: &str, fields: Mp) -> Vec<u8> {
    map([("id", u(1)), ("request", variant(kind, fields))]).bytes()
}

impl Mp {
    /// The encoded bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        use rmp::encode::*;
        match self {
            Mp::Map(entries) => {
                write_map_len(out, entries.len() as u32).unwrap();
                for (k, v) in entries {
                    write_str(out, k).unwrap();
                    v.write(out);
                }
            }
            Mp::Array(items) => {
                write_array_len(out, items.len() as u32).unwrap();
                for item in items {
                    item.write(out);
                }
            }
            Mp::Str(text) => write_str(out, text).unwrap(),
            Mp::Uint(n) => {
                write_uint(out, *n).unwrap();
            }
            Mp::Bin(bytes) => write_bin(out, bytes).unwrap(),
            Mp::Nil => write_nil(out).unwrap(),
            Mp::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}
