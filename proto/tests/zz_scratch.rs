#![allow(clippy::unwrap_used)]
use tidings_proto::{codec, *};
fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ") }
#[test]
fn probe() {
    let f = ClientFrame { id: 7, request: Request::SignOut {} };
    let b = encode_client(&f).unwrap();
    println!("signout {}", hex(&b));
    let f2 = ClientFrame { id: 7, request: Request::Ping { nonce: 1 } };
    let mut b2 = encode_client(&f2).unwrap();
    println!("ping {}", hex(&b2));
    b2.extend_from_slice(&b);
    println!("trailing: {:?}", decode_client(&b2));
    let e = ServerFrame::Reply { id: 1, result: Err(ErrorInfo::new(ErrorCode::Forbidden, "x")) };
    println!("err {}", hex(&encode_server(&e).unwrap()));
    // unknown variant message
    let mut u = Vec::new();
    rmp::encode::write_map_len(&mut u, 2).unwrap();
    rmp::encode::write_str(&mut u, "id").unwrap();
    rmp::encode::write_uint(&mut u, 1).unwrap();
    rmp::encode::write_str(&mut u, "request").unwrap();
    rmp::encode::write_map_len(&mut u, 1).unwrap();
    rmp::encode::write_str(&mut u, "Zzz").unwrap();
    rmp::encode::write_map_len(&mut u, 0).unwrap();
    println!("unknown: {:?}", codec::decode::<ClientFrame>(&u));
    // integer variant index
    let mut v = Vec::new();
    rmp::encode::write_map_len(&mut v, 2).unwrap();
    rmp::encode::write_str(&mut v, "id").unwrap();
    rmp::encode::write_uint(&mut v, 1).unwrap();
    rmp::encode::write_str(&mut v, "request").unwrap();
    rmp::encode::write_map_len(&mut v, 1).unwrap();
    rmp::encode::write_uint(&mut v, 19).unwrap();
    rmp::encode::write_map_len(&mut v, 1).unwrap();
    rmp::encode::write_str(&mut v, "nonce").unwrap();
    rmp::encode::write_uint(&mut v, 5).unwrap();
    println!("int variant: {:?} peek {:?}", decode_client(&v), codec::peek_client_id(&v));
    // array form struct
    let mut a = Vec::new();
    rmp::encode::write_array_len(&mut a, 2).unwrap();
    rmp::encode::write_uint(&mut a, 3).unwrap();
    rmp::encode::write_map_len(&mut a, 1).unwrap();
    rmp::encode::write_str(&mut a, "Ping").unwrap();
    rmp::encode::write_array_len(&mut a, 1).unwrap();
    rmp::encode::write_uint(&mut a, 5).unwrap();
    println!("array: {:?} peek {:?}", decode_client(&a), codec::peek_client_id(&a));
    // str32 4GiB
    let mut s = Vec::new();
    rmp::encode::write_map_len(&mut s, 2).unwrap();
    rmp::encode::write_str(&mut s, "id").unwrap();
    rmp::encode::write_uint(&mut s, 1).unwrap();
    rmp::encode::write_str(&mut s, "request").unwrap();
    rmp::encode::write_map_len(&mut s, 1).unwrap();
    rmp::encode::write_str(&mut s, "LookupUser").unwrap();
    rmp::encode::write_map_len(&mut s, 1).unwrap();
    rmp::encode::write_str(&mut s, "username").unwrap();
    let mut s2 = s.clone();
    rmp::encode::write_str_len(&mut s, u32::MAX).unwrap();
    println!("str32: {:?}", decode_client(&s));
    rmp::encode::write_bin_len(&mut s2, u32::MAX).unwrap();
    println!("bin32 as str: {:?}", decode_client(&s2));
    // unknown eventcontent
    let ev = ServerFrame::Receipt{room: RoomId(1), user: UserId(2), delivered: 1, read: 1};
    println!("receipt {}", hex(&encode_server(&ev).unwrap()));
    // duplicate keys
    let mut d = Vec::new();
    rmp::encode::write_map_len(&mut d, 3).unwrap();
    rmp::encode::write_str(&mut d, "id").unwrap();
    rmp::encode::write_uint(&mut d, 1).unwrap();
    rmp::encode::write_str(&mut d, "id").unwrap();
    rmp::encode::write_uint(&mut d, 2).unwrap();
    rmp::encode::write_str(&mut d, "request").unwrap();
    d.extend_from_slice(&encode_client(&f2).unwrap()[10..]);
    println!("dup: {:?}", decode_client(&d));
    // two-entry enum map
    let mut t = Vec::new();
    rmp::encode::write_map_len(&mut t, 2).unwrap();
    rmp::encode::write_str(&mut t, "Closing").unwrap();
    t.extend_from_slice(&codec::encode(&std::collections::BTreeMap::from([("error", ErrorInfo::new(ErrorCode::Internal, "x"))])).unwrap());
    rmp::encode::write_str(&mut t, "Presence").unwrap();
    rmp::encode::write_nil(&mut t).unwrap();
    println!("two-entry enum: {:?}", decode_server(&t));
}
