//! Photos made ready to send: decoded within limits, oriented, stripped, downscaled,
//! thumbnailed and given a placeholder. Pure functions over bytes; [`prepare_file`] runs them
//! on a bounded pool of blocking threads, never on the async runtime.
//!
//! The pipeline, and why:
//! - **Limits first.** The file size is checked before reading it and the pixel count from
//!   the header before decoding, so a decompression bomb (a tiny file claiming 60000×60000)
//!   is refused without allocating for it. Decoders also get an allocation cap.
//! - **Decode only what is needed.** A JPEG is decoded at a reduced DCT scale (1/2, 1/4, 1/8)
//!   when the target is that much smaller than the photo: a 12 MP capture decoded for a
//!   320 px thumbnail costs about a sixteenth of a full decode. The other formats (PNG, WebP,
//!   GIF's first frame) go through the `image` crate.
//! - **Resize, then rotate.** Lanczos3 resampling (fast_image_resize, SIMD) down to the long
//!   side; the EXIF orientation is applied after resizing, on the small image.
//! - **Nothing but pixels leaves.** Everything sent is re-encoded from pixels, so EXIF, GPS,
//!   XMP, ICC and comments are gone by construction: JPEG for opaque images (quality 85 for
//!   the full image, 70 for the thumbnail), PNG when the image has real transparency. The
//!   thumbnail is always a JPEG (transparency over white): it travels inside the message.
//! - **A placeholder travels inline**: a blurhash of about 30 bytes, shown before anything
//!   is downloaded.

use std::{io::Cursor, path::Path, sync::OnceLock};

use fast_image_resize::{images::Image, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{metadata::Orientation, DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// What a photo may be and what is made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Most pixels (width × height) accepted.
    pub max_pixels: u64,
    /// Long side of the image sent.
    pub full_side: u32,
    /// Long side of the thumbnail.
    pub thumbnail_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            full_side: 2048,
            thumbnail_side: 320,
        }
    }
}

/// Why a photo cannot be sent. Nothing is queued when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// The file is larger than allowed.
    #[error("the file is {bytes} bytes; photos are at most {max} bytes")]
    FileTooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The image has more pixels than allowed (also what a decompression bomb looks like).
    #[error("the image is {width}×{height} pixels; at most {max} pixels are accepted")]
    TooManyPixels {
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
        /// The limit.
        max: u64,
    },
    /// Not JPEG, PNG, WebP or GIF.
    #[error("unsupported format: send JPEG, PNG, WebP or GIF images (or send it as a file)")]
    Unsupported,
    /// Truncated or corrupt.
    #[error("the image is damaged: {0}")]
    Corrupt(String),
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// An encoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The file's bytes (no metadata).
    pub bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    /// Width in pixels, as displayed (orientation applied).
    pub width: u32,
    /// Height in pixels, as displayed.
    pub height: u32,
}

/// A photo ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The image to upload, at most `full_side` on its long side.
    pub full: Encoded,
    /// The thumbnail, at most `thumbnail_side` on its long side.
    pub thumbnail: Encoded,
    /// A blurhash of the image.
    pub placeholder: String,
}

/// Pixels in one of the layouts the pipeline handles.
struct Pixels {
    width: u32,
    height: u32,
    /// 1 (gray), 3 (RGB) or 4 (RGBA) bytes per pixel.
    channels: u8,
    data: Vec<u8>,
}

/// The container, from the first bytes (never from the file name).
fn sniff(bytes: &[u8]) -> Result<ImageFormat, PhotoError> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Ok(ImageFormat::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(ImageFormat::Png),
        [b'G', b'I', b'F', b'8', ..] => Ok(ImageFormat::Gif),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Ok(ImageFormat::WebP),
        _ => Err(PhotoError::Unsupported),
    }
}

/// The MIME type of an image this module can prepare, from its first bytes.
pub fn sniffed_mime(head: &[u8]) -> Option<&'static str> {
    match sniff(head).ok()? {
        ImageFormat::Jpeg => Some("image/jpeg"),
        ImageFormat::Png => Some("image/png"),
        ImageFormat::Gif => Some("image/gif"),
        ImageFormat::WebP => Some("image/webp"),
        _ => None,
    }
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), PhotoError> {
    if u64::from(width) * u64::from(height) > limits.max_pixels || width == 0 || height == 0 {
        return Err(PhotoError::TooManyPixels { width, height, max: limits.max_pixels });
    }
    Ok(())
}

/// Prepares a photo for sending: the full image, the thumbnail and the placeholder.
pub fn prepare(bytes: &[u8], limits: &Limits) -> Result<Prepared, PhotoError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(PhotoError::FileTooLarge {
            bytes: bytes.len() as u64,
            max: limits.max_file_bytes,
        });
    }
    let (pixels, orientation) = decode(bytes, limits.full_side, limits)?;
    let full = fit(&pixels, limits.full_side)?;
    let thumb = fit(&full, limits.thumbnail_side)?;
    let full = orient(full, orientation);
    let thumb = opaque(orient(thumb, orientation));
    let placeholder = blurhash(&thumb)?;
    Ok(Prepared { full: encode(&full, 85)?, thumbnail: encode(&thumb, 70)?, placeholder })
}

/// Only a thumbnail (what the benchmark compares with `vipsthumbnail`).
pub fn thumbnail(bytes: &[u8], side: u32, limits: &Limits) -> Result<Encoded, PhotoError> {
    encode(&thumbnail_pixels(bytes, side, limits)?, 70)
}

/// The thumbnail's pixels before encoding (the benchmark measures their fidelity).
pub fn thumbnail_pixels(
    bytes: &[u8],
    side: u32,
    limits: &Limits,
) -> Result<DynamicImage, PhotoError> {
    let (pixels, orientation) = decode(bytes, side, limits)?;
    Ok(opaque(orient(fit(&pixels, side)?, orientation)))
}

/// The image over white, without alpha: thumbnails travel inside messages and must stay
/// small (a 320 px PNG of a photo with an alpha mask is ~170 KB, the JPEG ~15 KB).
fn opaque(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return image;
    }
    let mut rgba = image.into_rgba8();
    for p in rgba.pixels_mut() {
        let a = u16::from(p.0[3]);
        for c in &mut p.0[..3] {
            *c = ((u16::from(*c) * a + 255 * (255 - a)) / 255) as u8;
        }
        p.0[3] = u8::MAX;
    }
    DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
}

/// Decodes at the smallest size that still has at least `side` pixels on the long side.
fn decode(bytes: &[u8], side: u32, limits: &Limits) -> Result<(Pixels, Orientation), PhotoError> {
    match sniff(bytes)? {
        ImageFormat::Jpeg => decode_jpeg(bytes, side, limits),
        format => decode_other(bytes, format, limits),
    }
}

fn decode_jpeg(
    bytes: &[u8],
    side: u32,
    limits: &Limits,
) -> Result<(Pixels, Orientation), PhotoError> {
    let corrupt = |e: jpeg_decoder::Error| PhotoError::Corrupt(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(corrupt)?;
    let info = decoder.info().ok_or_else(|| PhotoError::Corrupt("no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height, limits)?;
    decoder.set_max_decoding_buffer_size((limits.max_pixels * 4) as usize);
    // The smallest DCT scale whose long side is still at least twice `side`: the DCT's
    // scaling is a box filter, so Lanczos3 must do at least the last halving itself to
    // keep the result within 45 dB PSNR of a full-resolution Lanczos3 (measured with `cargo
    // xtask bench photo`: with a 1× margin, five of the six JPEGs came out at 36–42 dB).
    let side = side.saturating_mul(2);
    let long = width.max(height);
    if long > side {
        let target = |v: u32| {
            u16::try_from((u64::from(v) * u64::from(side)).div_ceil(u64::from(long)))
                .unwrap_or(u16::MAX)
        };
        decoder.scale(target(width), target(height)).map_err(corrupt)?;
    }
    let data = decoder.decode().map_err(corrupt)?;
    let info = decoder.info().ok_or_else(|| PhotoError::Corrupt("no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let expected = |channels: usize| width as usize * height as usize * channels;
    let pixels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => Pixels { width, height, channels: 1, data },
        jpeg_decoder::PixelFormat::L16 => {
            // Big-endian 16-bit samples: keep the high byte.
            let data = data.chunks_exact(2).map(|s| s[0]).collect();
            Pixels { width, height, channels: 1, data }
        }
        jpeg_decoder::PixelFormat::RGB24 => Pixels { width, height, channels: 3, data },
        jpeg_decoder::PixelFormat::CMYK32 => {
            // Adobe CMYK JPEGs store inverted values: R = C·K / 255 on the stored bytes.
            let data = data
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = u16::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| (u16::from(c) * k / 255) as u8)
                })
                .collect();
            Pixels { width, height, channels: 3, data }
        }
    };
    if pixels.data.len() < expected(usize::from(pixels.channels)) {
        return Err(PhotoError::Corrupt("fewer pixels than the header says".into()));
    }
    Ok((pixels, orientation))
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<(Pixels, Orientation), PhotoError> {
    let corrupt = |e: image::ImageError| PhotoError::Corrupt(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut caps = image::Limits::default();
    caps.max_alloc = Some(limits.max_pixels * 4 + 64 * 1024 * 1024);
    reader.limits(caps);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let pixels = if image.color().has_alpha() {
        let rgba = image.into_rgba8();
        if rgba.pixels().all(|p| p.0[3] == u8::MAX) {
            let rgb = DynamicImage::ImageRgba8(rgba).into_rgb8();
            Pixels { width, height, channels: 3, data: rgb.into_raw() }
        } else {
            Pixels { width, height, channels: 4, data: rgba.into_raw() }
        }
    } else if image.color().channel_count() == 1 {
        Pixels { width, height, channels: 1, data: image.into_luma8().into_raw() }
    } else {
        Pixels { width, height, channels: 3, data: image.into_rgb8().into_raw() }
    };
    Ok((pixels, orientation))
}

fn pixel_type(channels: u8) -> PixelType {
    match channels {
        1 => PixelType::U8,
        4 => PixelType::U8x4,
        _ => PixelType::U8x3,
    }
}

/// Scales down (never up) so the long side is at most `side`, with Lanczos3.
fn fit(p: &Pixels, side: u32) -> Result<Pixels, PhotoError> {
    let long = p.width.max(p.height);
    if long <= side {
        return Ok(Pixels {
            width: p.width,
            height: p.height,
            channels: p.channels,
            data: p.data.clone(),
        });
    }
    let scale = |v: u32| {
        ((u64::from(v) * u64::from(side) + u64::from(long) / 2) / u64::from(long)).max(1) as u32
    };
    let (width, height) = (scale(p.width), scale(p.height));
    let internal = |e: &dyn std::fmt::Display| PhotoError::Corrupt(format!("resize: {e}"));
    let src = fast_image_resize::images::ImageRef::new(
        p.width,
        p.height,
        &p.data,
        pixel_type(p.channels),
    )
    .map_err(|e| internal(&e))?;
    let mut dst = Image::new(width, height, pixel_type(p.channels));
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(fast_image_resize::FilterType::Lanczos3));
    Resizer::new().resize(&src, &mut dst, &options).map_err(|e| internal(&e))?;
    Ok(Pixels { width, height, channels: p.channels, data: dst.into_vec() })
}

fn to_dynamic(p: Pixels) -> DynamicImage {
    let (w, h) = (p.width, p.height);
    let fallback = || DynamicImage::new_rgb8(w, h);
    match p.channels {
        1 => image::GrayImage::from_raw(w, h, p.data).map(DynamicImage::ImageLuma8),
        4 => image::RgbaImage::from_raw(w, h, p.data).map(DynamicImage::ImageRgba8),
        _ => image::RgbImage::from_raw(w, h, p.data).map(DynamicImage::ImageRgb8),
    }
    .unwrap_or_else(fallback)
}

fn orient(p: Pixels, orientation: Orientation) -> DynamicImage {
    let mut image = to_dynamic(p);
    image.apply_orientation(orientation);
    image
}

/// JPEG at `quality` for opaque images, PNG when there is transparency. No metadata.
fn encode(image: &DynamicImage, quality: u8) -> Result<Encoded, PhotoError> {
    let (width, height) = (image.width(), image.height());
    let failed = |e: &dyn std::fmt::Display| PhotoError::Corrupt(format!("encode: {e}"));
    if image.color().has_alpha() {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(|e| failed(&e))?;
        return Ok(Encoded { bytes, mime: "image/png", width, height });
    }
    let (w, h) = (
        u16::try_from(width).map_err(|e| failed(&e))?,
        u16::try_from(height).map_err(|e| failed(&e))?,
    );
    let mut bytes = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut bytes, quality);
    match image {
        DynamicImage::ImageLuma8(gray) => {
            encoder.encode(gray.as_raw(), w, h, jpeg_encoder::ColorType::Luma)
        }
        other => encoder.encode(other.to_rgb8().as_raw(), w, h, jpeg_encoder::ColorType::Rgb),
    }
    .map_err(|e| failed(&e))?;
    Ok(Encoded { bytes, mime: "image/jpeg", width, height })
}

/// A 4×3-component blurhash of the (already small) image.
fn blurhash(image: &DynamicImage) -> Result<String, PhotoError> {
    let small = image.thumbnail(32, 32).into_rgba8();
    blurhash::encode(4, 3, small.width(), small.height(), small.as_raw())
        .map_err(|e| PhotoError::Corrupt(format!("placeholder: {e}")))
}

/// Concurrent photo jobs: one per core, so a burst of photos queues instead of thrashing.
fn pool() -> &'static tokio::sync::Semaphore {
    static POOL: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    POOL.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Reads and prepares a photo on the bounded pool of blocking threads. The size is checked
/// before the file is read.
pub async fn prepare_file(path: &Path, limits: Limits) -> Result<Prepared, PhotoError> {
    let io = |e: std::io::Error| PhotoError::Io(e.to_string());
    let bytes = tokio::fs::metadata(path).await.map_err(io)?.len();
    if bytes > limits.max_file_bytes {
        return Err(PhotoError::FileTooLarge { bytes, max: limits.max_file_bytes });
    }
    let _permit = pool().acquire().await.map_err(|e| PhotoError::Io(e.to_string()))?;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let data = std::fs::read(&path).map_err(io)?;
        prepare(&data, &limits)
    })
    .await
    .map_err(|e| PhotoError::Io(e.to_string()))?
}
