//! How openmls' state is encoded in the profile: JSON, self-describing, so a later openmls can
//! still read what an earlier one wrote (its non-self-describing formats broke between
//! versions; shared/e2ee.md §3.5).

/// The JSON codec for `openmls_sqlite_storage`.
#[derive(Debug, Default)]
pub struct Json;

impl openmls_sqlite_storage::Codec for Json {
    type Error = serde_json::Error;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(slice)
    }
}
