//! The OS microphone and speaker through cpal (feature `device-audio`, for the app).
//!
//! cpal calls back on its own audio thread with whatever buffer size the device likes; a
//! call pulls and pushes 20 ms frames. A short queue sits between them in each direction
//! (at most [`MAX_QUEUED`] samples, the oldest dropped beyond it, so latency cannot grow),
//! padded with silence when it runs dry. The cpal stream is not `Send` on every platform,
//! so each one lives on a thread of its own that ends when the source or sink is dropped.
//! The device is asked for 48 kHz mono, which ALSA's `plughw`/PulseAudio, CoreAudio, AAudio
//! and WASAPI shared mode convert to; a device that refuses gets a typed error.

use std::{
    collections::VecDeque,
    sync::{mpsc, Arc, Mutex},
};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::{AudioError, AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE};

/// Most samples queued between the device and the call (200 ms).
const MAX_QUEUED: usize = SAMPLE_RATE as usize / 5;

type Queue = Arc<Mutex<VecDeque<i16>>>;

fn config() -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Default,
    }
}

/// Runs a stream made by `build` on its own thread until `stop` is dropped.
fn hold_stream(
    build: impl FnOnce() -> Result<cpal::Stream, AudioError> + Send + 'static,
) -> Result<mpsc::Sender<()>, AudioError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let (ready, started) = mpsc::channel();
    std::thread::Builder::new()
        .name("call-audio".into())
        .spawn(move || {
            let stream = build().and_then(|s| {
                s.play().map_err(|e| AudioError::Device(e.to_string()))?;
                Ok(s)
            });
            match stream {
                Ok(stream) => {
                    let _ = ready.send(Ok(()));
                    let _ = stopped.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })
        .map_err(|e| AudioError::Device(e.to_string()))?;
    started.recv().map_err(|_| AudioError::Device("the audio thread stopped".into()))??;
    Ok(stop)
}

/// The default microphone.
#[derive(Debug)]
pub struct Microphone {
    queue: Queue,
    _stop: mpsc::Sender<()>,
}

impl Microphone {
    /// Opens the default input device.
    pub fn open() -> Result<Self, AudioError> {
        let queue: Queue = Arc::default();
        let fill = queue.clone();
        let stop = hold_stream(move || {
            let device = cpal::default_host()
                .default_input_device()
                .ok_or_else(|| AudioError::Device("no microphone".into()))?;
            device
                .build_input_stream(
                    config(),
                    move |data: &[i16], _: &cpal::InputCallbackInfo| {
                        if let Ok(mut q) = fill.lock() {
                            q.extend(data.iter().copied());
                            let excess = q.len().saturating_sub(MAX_QUEUED);
                            q.drain(..excess);
                        }
                    },
                    |e| tracing::warn!(error = %e, "Microphone error."),
                    None,
                )
                .map_err(|e| AudioError::Device(e.to_string()))
        })?;
        Ok(Self { queue, _stop: stop })
    }
}

impl AudioSource for Microphone {
    fn read(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        frame.fill(0);
        if let Ok(mut q) = self.queue.lock() {
            let n = q.len().min(FRAME_SAMPLES);
            for (slot, sample) in frame.iter_mut().zip(q.drain(..n)) {
                *slot = sample;
            }
        }
    }
}

/// The default speaker.
#[derive(Debug)]
pub struct Speaker {
    queue: Queue,
    _stop: mpsc::Sender<()>,
}

impl Speaker {
    /// Opens the default output device.
    pub fn open() -> Result<Self, AudioError> {
        let queue: Queue = Arc::default();
        let drain = queue.clone();
        let stop = hold_stream(move || {
            let device = cpal::default_host()
                .default_output_device()
                .ok_or_else(|| AudioError::Device("no speaker".into()))?;
            device
                .build_output_stream(
                    config(),
                    move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                        data.fill(0);
                        if let Ok(mut q) = drain.lock() {
                            let n = q.len().min(data.len());
                            for (slot, sample) in data.iter_mut().zip(q.drain(..n)) {
                                *slot = sample;
                            }
                        }
                    },
                    |e| tracing::warn!(error = %e, "Speaker error."),
                    None,
                )
                .map_err(|e| AudioError::Device(e.to_string()))
        })?;
        Ok(Self { queue, _stop: stop })
    }
}

impl AudioSink for Speaker {
    fn write(&mut self, frame: &[i16]) {
        if let Ok(mut q) = self.queue.lock() {
            q.extend(frame.iter().copied());
            let excess = q.len().saturating_sub(MAX_QUEUED);
            q.drain(..excess);
        }
    }
}
