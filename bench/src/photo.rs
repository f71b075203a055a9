//! `cargo xtask bench photo`: thumbnails against libvips' `vipsthumbnail`, in the same run.
//!
//! For every photo in shared/testdata/images, both tools run as a process per thumbnail
//! (start, read the file, decode, orient, resize to 320 px on the long side, encode, write),
//! seven times each, alternating: ours is `tidings-bench thumbnail IN OUT` (tidings-core's
//! `photo::thumbnail`, release build), theirs `vipsthumbnail IN -s 320 -o OUT[Q=70,strip]`.
//! Reported per photo: median wall time of each and their ratio, peak RSS of each process
//! (GNU time's %M), output bytes, and the PSNR of our thumbnail's pixels (before JPEG
//! encoding) against a reference made from the full-resolution decode, oriented and resized
//! with Lanczos3 by the `image` crate.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tidings_core::photo::{self, Limits};

const RUNS: usize = 7;
const SIDE: u32 = 320;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    if !args.is_empty() {
        anyhow::bail!("bench photo takes no flags");
    }
    if !Path::new("/usr/bin/vipsthumbnail").exists() || !Path::new("/usr/bin/time").exists() {
        anyhow::bail!(
            "vipsthumbnail or GNU time is missing; install them with: apt-get install -y libvips-tools time"
        );
    }
    let images = tidings_testkit::test_images()?;
    let out = tempfile::tempdir()?;
    let me = std::env::current_exe()?;
    println!(
        "| photo | ours median | vipsthumbnail median | ratio | ours peak RSS | vips peak RSS | ours bytes | vips bytes | PSNR vs Lanczos3 reference |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    names.sort();
    for input in names {
        let ours_out = out.path().join("ours.jpg");
        let vips_out = out.path().join("vips.jpg");
        let (mut ours, mut vips) = (Vec::new(), Vec::new());
        let (mut ours_rss, mut vips_rss) = (0, 0);
        for _ in 0..RUNS {
            let rss_file = out.path().join("rss");
            let args = [OsStr::new("thumbnail"), input.as_os_str(), ours_out.as_os_str()];
            let (t, rss) = timed(&me, &args, &rss_file)?;
            ours.push(t);
            ours_rss = ours_rss.max(rss);
            let side = SIDE.to_string();
            let target = format!("{}[Q=70,strip]", vips_out.display());
            let args = [input.as_os_str(), OsStr::new("-s"), OsStr::new(&side)];
            let args = [&args[..], &[OsStr::new("-o"), OsStr::new(&target)]].concat();
            let (t, rss) = timed(Path::new("/usr/bin/vipsthumbnail"), &args, &rss_file)?;
            vips.push(t);
            vips_rss = vips_rss.max(rss);
        }
        let (o, v) = (median(&mut ours), median(&mut vips));
        let ratio = o.as_secs_f64() / v.as_secs_f64();
        ratios.push(ratio);
        let psnr = psnr_against_reference(&input)?;
        println!(
            "| {} | {:.1} ms | {:.1} ms | {ratio:.2} | {:.0} MB | {:.0} MB | {} | {} | {psnr:.1} dB |",
            input.file_name().unwrap_or_default().to_string_lossy(),
            o.as_secs_f64() * 1e3,
            v.as_secs_f64() * 1e3,
            ours_rss as f64 / 1024.0,
            vips_rss as f64 / 1024.0,
            std::fs::metadata(&ours_out)?.len(),
            std::fs::metadata(&vips_out)?.len(),
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio (ours / vipsthumbnail): {:.2} (goal ≤ 1.0, stretch 0.7)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

/// `tidings-bench thumbnail IN OUT`: one thumbnail, as the benchmark's process per job.
pub fn thumbnail(args: &[&str]) -> anyhow::Result<()> {
    let [input, output] = args else { anyhow::bail!("usage: tidings-bench thumbnail IN OUT") };
    let bytes = std::fs::read(input)?;
    let thumb = photo::thumbnail(&bytes, SIDE, &Limits::default())?;
    std::fs::write(output, thumb.bytes)?;
    Ok(())
}

/// Runs `program args…` under GNU time to completion: wall time and peak RSS in KiB.
fn timed(
    program: &Path,
    args: &[&std::ffi::OsStr],
    rss_file: &Path,
) -> anyhow::Result<(Duration, i64)> {
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(rss_file)
        .arg(program)
        .args(args)
        .status()?;
    let elapsed = t.elapsed();
    anyhow::ensure!(status.success(), "{} failed", program.display());
    let rss = std::fs::read_to_string(rss_file)?.trim().parse()?;
    Ok((elapsed, rss))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// PSNR (RGB) of our thumbnail's pixels against the full decode, oriented, then Lanczos3.
fn psnr_against_reference(input: &Path) -> anyhow::Result<f64> {
    let bytes = std::fs::read(input)?;
    let ours = photo::thumbnail_pixels(&bytes, SIDE, &Limits::default())?.to_rgb8();
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()?
        .into_decoder()?;
    let orientation = image::ImageDecoder::orientation(&mut decoder)?;
    let mut full = image::DynamicImage::from_decoder(decoder)?;
    full.apply_orientation(orientation);
    // Transparency over white, as the thumbnail does.
    let full = flatten(full);
    let reference = image::imageops::resize(
        &full,
        ours.width(),
        ours.height(),
        image::imageops::FilterType::Lanczos3,
    );
    let mse = reference
        .as_raw()
        .iter()
        .zip(ours.as_raw())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        / reference.as_raw().len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10())
}

fn flatten(image: image::DynamicImage) -> image::RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u16::from(p[3]);
        image::Rgb([0, 1, 2].map(|i| ((u16::from(p[i]) * a + 255 * (255 - a)) / 255) as u8))
    })
}
