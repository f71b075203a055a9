//! The Tidings app: a thin Tauri 2 shell over `tidings-core` (shared/DESIGN.md §1).
//!
//! It holds no business logic. The core owns every piece of state in the profile's SQLite
//! database and runs sync and calls; this crate
//!
//! - exposes the core as commands of a few lines each ([`commands`]), errors as
//!   `{code, message, reason}` ([`error`]);
//! - forwards the core's change events to the web view in batches, and raises OS
//!   notifications for messages and calls while the window is not focused ([`events`]);
//! - keeps receiving on desktop when the window is closed (tray icon, close-to-tray);
//! - opens one profile per app instance ([`profile`]) and logs to a file in the app's log
//!   directory (never to the UI; never tokens or message bodies);
//! - generates the UI's TypeScript types from the Rust types ([`bindings`]).
//!
//! The same crate is the Android/iOS library (`mobile_entry_point`); docs/mobile.md.

pub mod bindings;
pub mod commands;
pub mod error;
mod events;
pub mod profile;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use tauri::{AppHandle, Emitter, Manager};
use tidings_core::{
    call::{
        audio::{AudioSink, AudioSource, Silence},
        driver::CallOptions,
    },
    Client, ConnectionState,
};

use crate::{
    error::{AppError, ErrorCode},
    profile::Launch,
};

/// The app's state: the profile's client and its background work.
pub struct App {
    /// The profile's client engine.
    pub client: Client,
    /// What the command line chose.
    pub launch: Launch,
    /// When the app started.
    pub started: std::time::Instant,
    sync: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    /// Set when the server ended the session (revoked, signed out elsewhere): the UI shows
    /// the sign-in screen even if it asks after the `session-ended` event went out.
    ended: Arc<AtomicBool>,
    connection: Arc<Mutex<ConnectionState>>,
    _lock: profile::ProfileLock,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("profile", &self.client.dir()).finish_non_exhaustive()
    }
}

impl App {
    /// The connection state the banner shows.
    pub fn connection(&self) -> ConnectionState {
        self.connection.lock().map(|c| *c).unwrap_or(ConnectionState::Offline)
    }

    /// Whether the server ended the session.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Starts syncing and taking calls (once signed in); idempotent.
    pub fn go_online(&self, handle: &AppHandle) {
        self.ended.store(false, Ordering::Relaxed);
        let Ok(mut slot) = self.sync.lock() else { return };
        if slot.as_ref().is_some_and(|task| !task.inner().is_finished()) {
            return;
        }
        let client = self.client.clone();
        let handle = handle.clone();
        let ended_flag = self.ended.clone();
        *slot = Some(tauri::async_runtime::spawn(async move {
            if let Err(e) = client.calls().start(call_options()).await {
                tracing::warn!(error = %e, "Calls are off on this device.");
            }
            let ended = tidings_core::sync::run(&client).await;
            let _ = client.calls().stop();
            tracing::info!(error = %ended, "Sync stopped: the session ended.");
            // Signed out elsewhere or revoked: the UI goes back to the sign-in screen.
            ended_flag.store(true, Ordering::Relaxed);
            let _ = handle.emit("session-ended", AppError::from(ended));
        }));
    }

    /// Stops syncing and calls (before signing out).
    pub fn go_offline(&self) {
        if let Ok(mut slot) = self.sync.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
        let _ = self.client.calls().stop();
    }

    /// Copies a picked file into the profile (the core reads files from paths).
    async fn stage(&self, name: &str, bytes: Vec<u8>) -> error::Result<std::path::PathBuf> {
        let path = commands::staging_path(self.client.dir(), name);
        let io = |e: std::io::Error| AppError::new(ErrorCode::File, e.to_string());
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        tokio::fs::write(&path, bytes).await.map_err(io)?;
        Ok(path)
    }
}

/// Calls use the OS microphone and speaker; a device that cannot be opened (none, busy)
/// is replaced by silence, so the call still connects and the other side hears nothing.
fn call_options() -> CallOptions {
    use tidings_core::call::audio::device::{Microphone, Speaker};
    CallOptions {
        media: Default::default(),
        audio: Arc::new(|| {
            let source: Box<dyn AudioSource> = match Microphone::open() {
                Ok(mic) => Box::new(mic),
                Err(e) => {
                    tracing::warn!(error = %e, "No microphone; sending silence.");
                    Box::new(Silence)
                }
            };
            let sink: Box<dyn AudioSink> = match Speaker::open() {
                Ok(speaker) => Box::new(speaker),
                Err(e) => {
                    tracing::warn!(error = %e, "No speaker; the call is silent here.");
                    Box::new(Silence)
                }
            };
            (source, sink)
        }),
        timeouts: Default::default(),
    }
}

/// Logs go to `<app log dir>/<profile>.log`, at `RUST_LOG` or info.
fn start_logging(handle: &AppHandle, profile: &std::path::Path) {
    let Ok(dir) = handle.path().app_log_dir() else { return };
    let name = profile.file_name().and_then(|n| n.to_str()).unwrap_or("tidings");
    let _ = std::fs::create_dir_all(&dir);
    let Ok(file) =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}

/// Runs the app (desktop `main`, and the mobile entry point).
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let started = std::time::Instant::now();
    // WebKitGTK's accelerated compositing keeps backing stores that cost ~90 MB in the web
    // process of an idle chat list; a messenger does not need it (docs/performance.md).
    // TIDINGS_GPU_COMPOSITING=1 keeps it on. Set before any thread or web view exists.
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none()
        && std::env::var_os("TIDINGS_GPU_COMPOSITING").is_none()
    {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    let launch = Launch::parse(std::env::args().skip(1));
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .setup(move |app| {
            let dir = launch.dir(&app.path().app_data_dir()?);
            let lock = profile::lock(&dir)?;
            start_logging(app.handle(), &dir);
            tracing::info!(profile = %dir.display(), "Starting.");
            let client = Client::open(&dir)?;
            let connection = Arc::new(Mutex::new(ConnectionState::Offline));
            let state = App {
                client: client.clone(),
                launch: launch.clone(),
                started,
                sync: Mutex::new(None),
                ended: Arc::default(),
                connection: connection.clone(),
                _lock: lock,
            };
            events::forward(app.handle().clone(), client.clone(), connection);
            // Disappearing messages go when they expire, online or not.
            let expiring = client.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = expiring.expire().await {
                    tracing::warn!(error = %e, "Disappearing messages stopped being erased.");
                }
            });
            #[cfg(desktop)]
            events::tray(app.handle())?;
            let handle = app.handle().clone();
            tauri::async_runtime::block_on(async {
                if matches!(client.account().await, Ok(Some(_))) {
                    state.go_online(&handle);
                }
            });
            app.manage(state);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::startup,
            commands::ready,
            commands::sign_up,
            commands::sign_in,
            commands::sign_out,
            commands::devices,
            commands::revoke_device,
            commands::rooms,
            commands::messages,
            commands::read_by,
            commands::send_text,
            commands::reply,
            commands::edit_message,
            commands::delete_message,
            commands::react,
            commands::search,
            commands::forward,
            commands::set_disappearing,
            commands::set_draft,
            commands::draft,
            commands::first_unread,
            commands::set_room_muted,
            commands::message_versions,
            commands::send_attachment,
            commands::thumbnail,
            commands::full_image,
            commands::outbox,
            commands::retry,
            commands::discard,
            commands::mark_read,
            commands::set_typing,
            commands::open_direct,
            commands::create_group,
            commands::invite,
            commands::leave,
            commands::accept_request,
            commands::decline_request,
            commands::block_user,
            commands::unblock_user,
            commands::open_link,
            commands::blocked_users,
            commands::rename,
            commands::contact_code,
            commands::add_contact,
            commands::add_contact_image,
            commands::link_code,
            commands::history_size,
            commands::link_device,
            commands::link_device_image,
            commands::contacts,
            commands::security_code,
            commands::trust,
            commands::verify_code,
            commands::verify_contact,
            commands::verify_contact_image,
            commands::accept_key,
            commands::held_by,
            commands::call,
            commands::accept_call,
            commands::decline_call,
            commands::hang_up,
            commands::set_muted,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        // A second app on the same profile ends here, as does a broken profile.
        eprintln!("Tidings: {e}");
        std::process::exit(1);
    }
}
