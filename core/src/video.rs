//! Videos and other files: what a file claims to be is checked against its content, and a
//! video gets its duration, dimensions and a poster frame on the sender's side, so the
//! receiver shows a preview before downloading anything.
//!
//! Probing runs the `ffprobe` and `ffmpeg` programs (Debian's ffmpeg package) rather than
//! linking libav*: nothing to build or link for core (which must also build for Android and
//! iOS, where the programs are absent and a video is simply sent as a file), a crash or a hang
//! in a decoder of untrusted input cannot take the app down (the child is killed after a
//! timeout), and the programs are the reference for the formats they read.

use std::{path::Path, process::Stdio, time::Duration};

use crate::photo::{self, Limits};

/// Longest a probe or a poster extraction may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A video's preview, made on the sender's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The first frame as a thumbnail (JPEG, at most 320 px).
    pub poster: photo::Encoded,
}

/// MIME type by file name, for the types people send most.
pub fn claimed_mime(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "txt" => "text/plain",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// The image or video type the first bytes show, if any.
pub fn sniffed_mime(head: &[u8]) -> Option<&'static str> {
    if let Some(image) = photo::sniffed_mime(head) {
        return Some(image);
    }
    match head {
        [_, _, _, _, b'f', b't', b'y', b'p', b'q', b't', ..] => Some("video/quicktime"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Some("video/mp4"),
        [0x1A, 0x45, 0xDF, 0xA3, ..] if head.windows(4).any(|w| w == b"webm") => Some("video/webm"),
        _ => None,
    }
}

/// The MIME type to announce: what the name claims, unless it claims an image or a video
/// the content is not — then a plain file, never trusted as media.
pub fn checked_mime(name: &str, head: &[u8]) -> &'static str {
    let claimed = claimed_mime(name);
    let media = claimed.starts_with("image/") || claimed.starts_with("video/");
    if media && sniffed_mime(head) != Some(claimed) {
        "application/octet-stream"
    } else {
        claimed
    }
}

/// Why a video could not be probed (it is then sent as a plain file).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ffprobe/ffmpeg are not installed or failed to start.
    #[error("ffmpeg is not available: {0}")]
    Unavailable(String),
    /// The programs did not understand the file.
    #[error("not a video ffmpeg can read: {0}")]
    Unreadable(String),
}

async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, ProbeError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProbeError::Unavailable(format!("{program}: {e}")))?;
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| ProbeError::Unreadable(format!("{program} took over {TIMEOUT:?}")))?
        .map_err(|e| ProbeError::Unavailable(e.to_string()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").to_owned();
        return Err(ProbeError::Unreadable(why));
    }
    Ok(out.stdout)
}

/// Duration, dimensions and poster of the video at `path`.
pub async fn probe(path: &Path) -> Result<VideoInfo, ProbeError> {
    let file = path.as_os_str();
    let json = run(
        "ffprobe",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-select_streams".as_ref(),
            "v:0".as_ref(),
            "-show_entries".as_ref(),
            "stream=width,height:format=duration".as_ref(),
            "-of".as_ref(),
            "json".as_ref(),
            file,
        ],
    )
    .await?;
    let json: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| ProbeError::Unreadable(e.to_string()))?;
    let stream = &json["streams"][0];
    let dimension = |key: &str| stream[key].as_u64().and_then(|v| u32::try_from(v).ok());
    let (Some(width), Some(height)) = (dimension("width"), dimension("height")) else {
        return Err(ProbeError::Unreadable("no video stream".into()));
    };
    let seconds: f64 =
        json["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    let frame = run(
        "ffmpeg",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-i".as_ref(),
            file,
            "-frames:v".as_ref(),
            "1".as_ref(),
            "-f".as_ref(),
            "image2pipe".as_ref(),
            "-vcodec".as_ref(),
            "png".as_ref(),
            "-".as_ref(),
        ],
    )
    .await?;
    let poster = tokio::task::spawn_blocking(move || {
        photo::thumbnail(&frame, Limits::default().thumbnail_side, &Limits::default())
    })
    .await
    .map_err(|e| ProbeError::Unreadable(e.to_string()))?
    .map_err(|e| ProbeError::Unreadable(format!("poster: {e}")))?;
    Ok(VideoInfo { duration_ms: (seconds * 1000.0).round() as u64, width, height, poster })
}

/// Copies the video at `src` to `dest` without its metadata (global and per stream: where
/// and with what it was shot), remuxing the streams unchanged.
pub async fn strip_metadata(src: &Path, dest: &Path, mime: &str) -> Result<(), ProbeError> {
    let format = match mime {
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => "mp4",
    };
    run(
        "ffmpeg",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-i".as_ref(),
            src.as_os_str(),
            "-map".as_ref(),
            "0".as_ref(),
            "-map_metadata".as_ref(),
            "-1".as_ref(),
            "-map_chapters".as_ref(),
            "-1".as_ref(),
            "-c".as_ref(),
            "copy".as_ref(),
            "-fflags".as_ref(),
            "+bitexact".as_ref(),
            "-f".as_ref(),
            format.as_ref(),
            "-y".as_ref(),
            dest.as_os_str(),
        ],
    )
    .await
    .map(|_| ())
}
