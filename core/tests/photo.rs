//! The photo pipeline on real camera photos (shared/testdata/images) and on malicious files
//! made here.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use tidings_core::photo::{self, Limits, PhotoError};

/// shared/testdata/images, found as every test finds it.
fn images() -> PathBuf {
    tidings_testkit::test_images().expect("shared/testdata/images")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(images().join(name)).unwrap()
}

/// The JPEG markers of `bytes` up to the first scan.
fn markers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        out.push(marker);
        if marker == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        i += 2 + len;
    }
    out
}

fn assert_no_metadata(bytes: &[u8]) {
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!find(b"Exif"), "EXIF left in the output");
    assert!(!find(b"GPS"), "GPS left in the output");
    assert!(!find(b"http://ns.adobe.com/xap"), "XMP left in the output");
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // JFIF (APP0) and the coding segments only: no APP1…APP15, no comments.
        for m in markers(bytes) {
            assert!(!(0xE1..=0xEF).contains(&m) && m != 0xFE, "marker {m:#x} in the output");
        }
    }
}

const PHOTOS: [&str; 8] = [
    "xiaomi_mi9t_12mp_orient6.jpg",
    "olympus_ep3_12mp.jpg",
    "nokia83_9mp.jpg",
    "iphone6_8mp.jpg",
    "canon_sx60_3mp_orient6.jpg",
    "jolla_8mp_progressive.jpg",
    "iphone6_8mp_q80.webp",
    "olympus_2400px_rgba.png",
];

#[test]
fn every_test_photo_is_prepared_within_bounds_and_without_metadata() {
    let limits = Limits::default();
    for name in PHOTOS {
        let original = read(name);
        let p = photo::prepare(&original, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.full.width.max(p.full.height), 2048, "{name}: full long side");
        assert_eq!(p.thumbnail.width.max(p.thumbnail.height), 320, "{name}: thumbnail long side");
        assert!(!p.placeholder.is_empty() && p.placeholder.len() <= 64, "{name}: placeholder");
        for out in [&p.full, &p.thumbnail] {
            assert_no_metadata(&out.bytes);
            // What was sent decodes to what it claims.
            let decoded = image::load_from_memory(&out.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (out.width, out.height), "{name}");
        }
        assert!(
            p.thumbnail.bytes.len() < 48 * 1024,
            "{name}: thumbnail {} bytes",
            p.thumbnail.bytes.len()
        );
    }
}

#[test]
fn the_source_photos_do_carry_exif_and_gps_so_the_stripping_test_means_something() {
    let original = read("xiaomi_mi9t_12mp_orient6.jpg");
    assert!(original.windows(4).any(|w| w == b"Exif"));
}

#[test]
fn an_orientation_6_landscape_capture_comes_out_portrait() {
    let limits = Limits::default();
    for name in ["xiaomi_mi9t_12mp_orient6.jpg", "canon_sx60_3mp_orient6.jpg"] {
        let p = photo::prepare(&read(name), &limits).unwrap();
        assert!(p.full.height > p.full.width, "{name}: full {}×{}", p.full.width, p.full.height);
        assert_eq!((p.thumbnail.width, p.thumbnail.height), (240, 320), "{name}: thumbnail");
    }
    // Rotated the right way (90° clockwise), not just transposed: the stored image's left
    // column becomes the top row. Compare against the image crate's own orientation.
    let original = read("canon_sx60_3mp_orient6.jpg");
    let mut reference = image::load_from_memory(&original).unwrap();
    reference.apply_orientation(image::metadata::Orientation::Rotate90);
    let reference = reference.thumbnail_exact(240, 320).to_rgb8();
    let ours = photo::prepare(&original, &limits).unwrap();
    let ours = image::load_from_memory(&ours.thumbnail.bytes).unwrap().to_rgb8();
    let diff: f64 = reference
        .as_raw()
        .iter()
        .zip(ours.as_raw())
        .map(|(a, b)| f64::from((i16::from(*a) - i16::from(*b)).unsigned_abs()))
        .sum::<f64>()
        / reference.as_raw().len() as f64;
    assert!(diff < 12.0, "mean difference {diff} from the reference orientation");
}

#[test]
fn transparency_is_kept_as_png_and_opaque_images_become_jpeg() {
    let limits = Limits::default();
    let p = photo::prepare(&read("olympus_2400px_rgba.png"), &limits).unwrap();
    assert_eq!(p.full.mime, "image/png");
    let decoded = image::load_from_memory(&p.full.bytes).unwrap().to_rgba8();
    assert!(decoded.pixels().any(|px| px.0[3] < 255), "alpha lost");
    let p = photo::prepare(&read("iphone6_8mp_q80.webp"), &limits).unwrap();
    assert_eq!(p.full.mime, "image/jpeg");
}

#[test]
fn grayscale_cmyk_and_gif_images_are_prepared() {
    let limits = Limits::default();
    let (w, h) = (600u16, 400u16);
    let gray: Vec<u8> = (0..u32::from(w) * u32::from(h)).map(|i| (i % 251) as u8).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&gray, w, h, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let p = photo::prepare(&jpeg, &limits).unwrap();
    assert_eq!((p.full.width, p.full.height), (600, 400));

    // CMYK as Adobe stores it (inverted: 255 is no ink): no cyan, full magenta, no yellow,
    // no black is magenta on screen.
    let cmyk: Vec<u8> =
        (0..u32::from(w) * u32::from(h)).flat_map(|_| [255u8, 0, 255, 255]).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let p = photo::prepare(&jpeg, &limits).unwrap();
    let decoded = image::load_from_memory(&p.full.bytes).unwrap().to_rgb8();
    let px = decoded.get_pixel(300, 200).0;
    assert!(px[0] > 230 && px[1] < 25 && px[2] > 230, "CMYK magenta came out as {px:?}");

    let frame = image::RgbaImage::from_fn(300, 200, |x, _| image::Rgba([x as u8, 0, 0, 255]));
    let mut gif = Vec::new();
    image::DynamicImage::ImageRgba8(frame)
        .write_to(&mut std::io::Cursor::new(&mut gif), image::ImageFormat::Gif)
        .unwrap();
    let p = photo::prepare(&gif, &limits).unwrap();
    assert_eq!((p.full.width, p.full.height, p.full.mime), (300, 200, "image/jpeg"));
}

/// A PNG with this header and `idat` as its compressed data (CRCs computed).
fn png(width: u32, height: u32, bit_depth: u8, color: u8, idat: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A zlib stream of `n` zero bytes: one literal, then matches of 258 at distance 1, in a
/// fixed-Huffman block — about 13 bits per 258 bytes.
fn zeros_zlib(n: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.len;
            self.len += bits;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u64, bits: u32) {
            let reversed = (0..bits).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(reversed, bits);
        }
    }
    let mut b = Bits { out: vec![0x78, 0x01], acc: 0, len: 0 };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    b.code(0b0011_0000, 8); // literal 0
    let mut left = n - 1;
    while left >= 258 {
        b.code(0b1100_0101, 8); // length 258 (code 285)
        b.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        b.code(0b0011_0000, 8);
    }
    b.code(0, 7); // end of block (256)
    if b.len > 0 {
        b.put(0, 8 - b.len);
    }
    // Adler-32 of n zeros: a = 1, b = n mod 65521.
    let adler = ((n % 65521) << 16) as u32 | 1;
    b.out.extend_from_slice(&adler.to_be_bytes());
    b.out
}

#[test]
fn a_header_claiming_60000_by_60000_is_refused_before_decoding() {
    let bytes = png(60_000, 60_000, 8, 2, &zeros_zlib(1024));
    let err = photo::prepare(&bytes, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, PhotoError::TooManyPixels { width: 60_000, height: 60_000, .. }),
        "{err:?}"
    );
}

#[test]
fn a_highly_compressible_bomb_is_refused() {
    // 20000×20000 one-bit gray: 50 MB of zeros once inflated (400 megapixels decoded),
    // about 300 KB on disk.
    let (w, h) = (20_000u32, 20_000u32);
    let raw = u64::from(h) * (u64::from(w) / 8 + 1);
    let bytes = png(w, h, 1, 0, &zeros_zlib(raw));
    assert!(bytes.len() < 400_000);
    let err = photo::prepare(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(err, PhotoError::TooManyPixels { .. }), "{err:?}");
    // The same bomb within the pixel limit but over a tight one is refused the same way.
    let limits = Limits { max_pixels: 1_000_000, ..Limits::default() };
    let small = png(2_000, 2_000, 1, 0, &zeros_zlib(2_000 * 251));
    assert!(matches!(photo::prepare(&small, &limits), Err(PhotoError::TooManyPixels { .. })));
}

#[test]
fn a_truncated_jpeg_is_a_clear_error() {
    let original = read("olympus_ep3_12mp.jpg");
    for cut in [10, 200, original.len() / 2] {
        let err = photo::prepare(&original[..cut], &Limits::default()).unwrap_err();
        assert!(matches!(err, PhotoError::Corrupt(_)), "cut at {cut}: {err:?}");
    }
}

#[test]
fn other_formats_and_oversized_files_are_refused_with_their_reason() {
    let limits = Limits::default();
    assert_eq!(photo::prepare(b"%PDF-1.7 not an image", &limits), Err(PhotoError::Unsupported));
    assert_eq!(photo::prepare(b"", &limits), Err(PhotoError::Unsupported));
    // A TIFF or a BMP is an image, but not one we send as a photo.
    assert_eq!(photo::prepare(b"II*\0\x08\0\0\0", &limits), Err(PhotoError::Unsupported));
    assert_eq!(photo::prepare(b"BM\x36\0\0\0", &limits), Err(PhotoError::Unsupported));
    let tight = Limits { max_file_bytes: 1000, ..limits };
    let err = photo::prepare(&read("canon_sx60_3mp_orient6.jpg"), &tight).unwrap_err();
    assert!(matches!(err, PhotoError::FileTooLarge { max: 1000, .. }));
}

#[test]
fn garbage_after_a_valid_signature_never_panics() {
    let limits = Limits::default();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for prefix in [&b"\xFF\xD8\xFF"[..], b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 "] {
        for len in [0usize, 1, 16, 100, 1000] {
            let mut bytes = prefix.to_vec();
            for _ in 0..len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                bytes.push(rng as u8);
            }
            assert!(photo::prepare(&bytes, &limits).is_err());
        }
    }
}
