//! What a call says and hears: 20 ms frames of 48 kHz mono 16-bit PCM.
//!
//! A call takes an [`AudioSource`] (what I say) and an [`AudioSink`] (what I hear) from
//! the front end, so the same media code runs with a microphone and speaker (the
//! `device-audio` feature, [`device`]), with a synthetic [`Tone`] and a [`Recording`] to a
//! WAV file (the CLI and the tests), or with anything else that speaks PCM. Sources are
//! pulled once per frame on the media clock; sinks get each decoded frame as it arrives.
//!
//! [`analyze`] finds the dominant frequency and the level of recorded audio: the tests use
//! it to prove that the caller's tone, and not just "some packets", reached the callee.

use std::{
    f32::consts::TAU,
    path::Path,
    sync::{Arc, Mutex},
};

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;

/// What I say into the call.
pub trait AudioSource: Send {
    /// Fills `frame` with the next 20 ms.
    fn read(&mut self, frame: &mut [i16; FRAME_SAMPLES]);
}

/// What I hear from the call.
pub trait AudioSink: Send {
    /// Plays (or keeps) one decoded frame.
    fn write(&mut self, frame: &[i16]);
    /// The call ended: flush what is buffered.
    fn finish(&mut self) -> Result<(), AudioError> {
        Ok(())
    }
}

/// Audio that could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The WAV file could not be written.
    #[error("recording: {0}")]
    Recording(String),
    /// No usable audio device.
    #[error("audio device: {0}")]
    Device(String),
}

/// Silence.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence;

impl AudioSource for Silence {
    fn read(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        frame.fill(0);
    }
}

impl AudioSink for Silence {
    fn write(&mut self, _frame: &[i16]) {}
}

/// A steady sine tone at a quarter of full scale.
#[derive(Debug, Clone, Copy)]
pub struct Tone {
    step: f32,
    phase: f32,
}

impl Tone {
    /// A tone of `hz` (clamped to what 48 kHz can carry).
    pub fn new(hz: f32) -> Self {
        let hz = hz.clamp(1.0, SAMPLE_RATE as f32 / 2.0 - 1.0);
        Self { step: TAU * hz / SAMPLE_RATE as f32, phase: 0.0 }
    }
}

impl AudioSource for Tone {
    fn read(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            *s = (self.phase.sin() * 8192.0) as i16;
            self.phase = (self.phase + self.step) % TAU;
        }
    }
}

/// Keeps everything heard in memory; clones share the samples (for tests and analysis).
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<i16>>>);

impl Capture {
    /// A copy of the samples so far.
    pub fn samples(&self) -> Vec<i16> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl AudioSink for Capture {
    fn write(&mut self, frame: &[i16]) {
        if let Ok(mut s) = self.0.lock() {
            s.extend_from_slice(frame);
        }
    }
}

/// Writes what is heard to a 48 kHz mono 16-bit WAV file.
pub struct Recording {
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("open", &self.writer.is_some()).finish()
    }
}

impl Recording {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| AudioError::Recording(format!("{}: {e}", path.display())))?;
        Ok(Self { writer: Some(writer) })
    }
}

impl AudioSink for Recording {
    fn write(&mut self, frame: &[i16]) {
        let Some(w) = self.writer.as_mut() else { return };
        let mut samples = w.get_i16_writer(frame.len() as u32);
        for &s in frame {
            samples.write_sample(s);
        }
        if let Err(e) = samples.flush() {
            tracing::warn!(error = %e, "Recording stopped.");
            self.writer = None;
        }
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|e| AudioError::Recording(e.to_string())),
            None => Ok(()),
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Reads a 16-bit mono WAV file (what [`Recording`] writes).
pub fn read_wav(path: &Path) -> Result<Vec<i16>, AudioError> {
    let mut reader = hound::WavReader::open(path)
        .map_err(|e| AudioError::Recording(format!("{}: {e}", path.display())))?;
    reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| AudioError::Recording(e.to_string()))
}

/// What a stretch of audio contains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spectrum {
    /// The strongest frequency between 50 Hz and 4 kHz, to 5 Hz.
    pub dominant_hz: f32,
    /// Share of the energy at that frequency (0–1): near 1 for a clean tone.
    pub purity: f32,
    /// Root mean square level, 0–1 of full scale.
    pub rms: f32,
}

/// The dominant frequency and level of `samples` (48 kHz), by Goertzel filters over the
/// voice band. Empty input gives zeros.
pub fn analyze(samples: &[i16]) -> Spectrum {
    let x: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    if x.is_empty() {
        return Spectrum { dominant_hz: 0.0, purity: 0.0, rms: 0.0 };
    }
    let energy: f32 = x.iter().map(|v| v * v).sum();
    let rms = (energy / x.len() as f32).sqrt();
    let power = |hz: f32| {
        let coeff = 2.0 * (TAU * hz / SAMPLE_RATE as f32).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in &x {
            let s0 = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let (mut best_hz, mut best) = (0.0, 0.0);
    let mut hz = 50.0;
    while hz <= 4000.0 {
        let p = power(hz);
        if p > best {
            (best_hz, best) = (hz, p);
        }
        hz += 5.0;
    }
    // A pure sine of amplitude A over N samples has Goertzel power (A·N/2)² and energy
    // A²·N/2, so power / (energy · N / 2) is 1 for a clean tone.
    let purity = if energy > 0.0 { (best / (energy * x.len() as f32 / 2.0)).min(1.0) } else { 0.0 };
    Spectrum { dominant_hz: best_hz, purity, rms }
}

#[cfg(feature = "device-audio")]
pub mod device;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_found_at_its_frequency() {
        let mut tone = Tone::new(440.0);
        let mut samples = Vec::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        for _ in 0..50 {
            tone.read(&mut frame);
            samples.extend_from_slice(&frame);
        }
        let s = analyze(&samples);
        assert!((s.dominant_hz - 440.0).abs() <= 5.0, "{s:?}");
        assert!(s.purity > 0.9, "{s:?}");
        assert!((s.rms - 0.25 / 2f32.sqrt()).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn silence_and_noise_are_not_a_tone() {
        assert_eq!(analyze(&[0; 4800]).rms, 0.0);
        let noise: Vec<i16> =
            (0..48_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as i16).collect();
        assert!(analyze(&noise).purity < 0.1);
    }

    #[test]
    fn a_recording_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heard.wav");
        let mut rec = Recording::create(&path).unwrap();
        let mut tone = Tone::new(1000.0);
        let mut frame = [0i16; FRAME_SAMPLES];
        for _ in 0..10 {
            tone.read(&mut frame);
            rec.write(&frame);
        }
        rec.finish().unwrap();
        let back = read_wav(&path).unwrap();
        assert_eq!(back.len(), 10 * FRAME_SAMPLES);
        assert!((analyze(&back).dominant_hz - 1000.0).abs() <= 5.0);
    }
}
