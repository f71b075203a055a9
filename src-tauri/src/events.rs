//! From the core to the screen: the core's change events go to the web view in batches
//! (one `core` event per ~30 ms of activity, repeated "reload this" events merged), and
//! become OS notifications for new messages and incoming calls while the window is not
//! focused. On desktop a tray icon keeps the app (and so sync and calls) running when the
//! window is closed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;
use tidings_core::{call::CallEvent, Client, ConnectionState, Event, RoomKey, RoomSummary};

/// How long a batch collects after its first event.
const BATCH_WINDOW: Duration = Duration::from_millis(30);

/// Events that only say "reload X": one of each per batch is enough.
fn merges(e: &Event) -> bool {
    matches!(e, Event::RoomsChanged | Event::OutboxChanged | Event::TimelineChanged { .. })
}

/// Adds `e` to the batch unless an equal "reload" event is already in it.
pub(crate) fn push_merged(batch: &mut Vec<Event>, e: Event) {
    if !(merges(&e) && batch.contains(&e)) {
        batch.push(e);
    }
}

/// Forwards the client's events to the UI until the client is gone.
pub(crate) fn forward(handle: AppHandle, client: Client, connection: Arc<Mutex<ConnectionState>>) {
    tauri::async_runtime::spawn(async move {
        let mut events = client.subscribe();
        let mut notifier = Notifier::new(handle.clone(), client.clone());
        while let Some(first) = events.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
            while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
                push_merged(&mut batch, e);
            }
            for e in &batch {
                if let Event::Connection { state } = e {
                    if let Ok(mut c) = connection.lock() {
                        *c = *state;
                    }
                }
            }
            if let Err(e) = handle.emit("core", &batch) {
                tracing::warn!(error = %e, "Cannot reach the window.");
            }
            notifier.consider(&batch).await;
        }
    });
}

/// Decides which events deserve an OS notification.
struct Notifier {
    handle: AppHandle,
    client: Client,
    /// Only messages that arrive after the app started are announced.
    since_ms: i64,
    /// Per room, the newest message already announced.
    announced: HashMap<RoomKey, i64>,
}

impl Notifier {
    fn new(handle: AppHandle, client: Client) -> Self {
        let since_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self { handle, client, since_ms, announced: HashMap::new() }
    }

    fn focused(&self) -> bool {
        self.handle.get_webview_window("main").and_then(|w| w.is_focused().ok()).unwrap_or(false)
    }

    async fn consider(&mut self, batch: &[Event]) {
        let relevant = |e: &Event| {
            matches!(e, Event::TimelineChanged { .. } | Event::Call(CallEvent::Ringing { .. }))
        };
        if !batch.iter().any(relevant) {
            return;
        }
        let focused = self.focused();
        let me = match self.client.account().await {
            Ok(Some(a)) => a.username,
            _ => return,
        };
        // The room list is read at most once per batch, and only when something may show.
        let mut rooms = None;
        for e in batch {
            match e {
                // Seen while focused counts as announced: it is not shown again later.
                Event::TimelineChanged { room } => {
                    self.message(*room, &me, !focused, &mut rooms).await;
                }
                Event::Call(CallEvent::Ringing { peer, .. }) => {
                    // A ringing call brings the window back (also from the tray).
                    if let Some(w) = self.handle.get_webview_window("main") {
                        let _ = w.show();
                        let _ = w.set_focus();
                    }
                    if !focused {
                        let name = self
                            .room(peer.room, &mut rooms)
                            .await
                            .map_or_else(|| "Someone".into(), |r| r.name);
                        self.show("Incoming call", &format!("{name} is calling"));
                    }
                }
                _ => {}
            }
        }
    }

    async fn message(
        &mut self,
        room: RoomKey,
        me: &str,
        show: bool,
        rooms: &mut Option<Vec<RoomSummary>>,
    ) {
        let Ok(newest) = self.client.room(room).timeline().page(None, 1).await else { return };
        let Some(m) = newest.into_iter().next() else { return };
        let seen = self.announced.get(&room).copied().unwrap_or(i64::MIN);
        if m.seq.is_none() || m.notice.is_some() || m.sender == me || m.position <= seen {
            return;
        }
        self.announced.insert(room, m.position);
        // Only what arrived while the app runs, and not what was read meanwhile elsewhere.
        let summary = self.room(room, rooms).await;
        if !show || m.at_ms < self.since_ms || summary.as_ref().map_or(0, |r| r.unread) == 0 {
            return;
        }
        // A muted room tells only of what mentions me.
        if summary.is_some_and(|r| r.muted) && !m.mentions_me {
            return;
        }
        let title =
            if m.mentions_me { format!("{} mentioned you", m.sender) } else { m.sender.clone() };
        let body = if m.image.is_some() { "Photo".to_owned() } else { m.text };
        self.show(&title, &body);
    }

    /// A room's summary, from the batch's room list (read on first use).
    async fn room(
        &self,
        room: RoomKey,
        rooms: &mut Option<Vec<RoomSummary>>,
    ) -> Option<RoomSummary> {
        if rooms.is_none() {
            *rooms = Some(self.client.rooms().list().await.unwrap_or_default());
        }
        rooms.as_ref()?.iter().find(|r| r.room == room).cloned()
    }

    fn show(&self, title: &str, body: &str) {
        // No notification daemon (a bare X server, say) is not an error worth more than a
        // debug line; the content is never logged.
        if let Err(e) = self.handle.notification().builder().title(title).body(body).show() {
            tracing::debug!(error = %e, "Notification not shown.");
        }
    }
}

/// The tray icon (Show / Quit) and close-to-tray. Without a tray (no status-notifier host),
/// closing the window quits as usual.
#[cfg(desktop)]
pub(crate) fn tray(handle: &AppHandle) -> tauri::Result<()> {
    use tauri::{
        menu::{Menu, MenuItem},
        tray::TrayIconBuilder,
        WindowEvent,
    };
    let show = MenuItem::with_id(handle, "show", "Show Tidings", true, None::<&str>)?;
    let quit = MenuItem::with_id(handle, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(handle, &[&show, &quit])?;
    let mut tray = TrayIconBuilder::with_id("main").tooltip("Tidings").menu(&menu);
    if let Some(icon) = handle.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    let built = tray
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.show();
                    let _ = w.set_focus();
                }
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .build(handle);
    if let Err(e) = built {
        tracing::warn!(error = %e, "No tray icon; closing the window quits.");
        return Ok(());
    }
    if let Some(window) = handle.get_webview_window("main") {
        let hide = window.clone();
        window.on_window_event(move |event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = hide.hide();
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_events_merge_and_the_rest_keep_their_order() {
        let mut batch = Vec::new();
        for e in [
            Event::RoomsChanged,
            Event::Connection { state: ConnectionState::Online },
            Event::TimelineChanged { room: 1 },
            Event::RoomsChanged,
            Event::Connection { state: ConnectionState::Offline },
            Event::TimelineChanged { room: 2 },
            Event::TimelineChanged { room: 1 },
            Event::Connection { state: ConnectionState::Online },
        ] {
            push_merged(&mut batch, e);
        }
        assert_eq!(
            batch,
            vec![
                Event::RoomsChanged,
                Event::Connection { state: ConnectionState::Online },
                Event::TimelineChanged { room: 1 },
                Event::Connection { state: ConnectionState::Offline },
                Event::TimelineChanged { room: 2 },
                Event::Connection { state: ConnectionState::Online },
            ]
        );
    }
}
