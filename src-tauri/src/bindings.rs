//! The UI's TypeScript types, generated from the Rust types it receives (ts-rs), into
//! `ui/src/bindings.ts`. The test below fails when the checked-in file differs from what
//! the Rust types say; `TIDINGS_WRITE_BINDINGS=1 cargo test -p tidings-app bindings`
//! rewrites it.

use ts_rs::{Config, TS};

/// The generated file's text.
pub fn typescript() -> String {
    // Every integer the app sends fits in a JSON number (ids, seqs, millisecond times;
    // call ids are 53-bit on purpose).
    let cfg = Config::new().with_large_int("number");
    let decls = [
        tidings_core::RoomSummary::decl(&cfg),
        tidings_core::Message::decl(&cfg),
        tidings_core::Quote::decl(&cfg),
        tidings_core::Reaction::decl(&cfg),
        tidings_core::SearchHit::decl(&cfg),
        tidings_core::SnippetPart::decl(&cfg),
        tidings_core::MessageState::decl(&cfg),
        tidings_core::ImageView::decl(&cfg),
        tidings_core::FileView::decl(&cfg),
        tidings_core::VideoView::decl(&cfg),
        tidings_core::CallView::decl(&cfg),
        tidings_core::Notice::decl(&cfg),
        tidings_core::SecurityIssue::decl(&cfg),
        tidings_proto::ErrorCode::decl(&cfg),
        tidings_core::OutboxEntry::decl(&cfg),
        tidings_core::MemberReceipt::decl(&cfg),
        tidings_core::Device::decl(&cfg),
        tidings_core::ConnectionState::decl(&cfg),
        tidings_core::Event::decl(&cfg),
        tidings_core::call::CallEvent::decl(&cfg),
        tidings_core::call::Peer::decl(&cfg),
        tidings_core::call::EndReason::decl(&cfg),
        tidings_proto::CallOutcome::decl(&cfg),
        crate::commands::SessionView::decl(&cfg),
        crate::commands::Startup::decl(&cfg),
        crate::commands::ContactCodeView::decl(&cfg),
        crate::commands::LinkCodeView::decl(&cfg),
        crate::commands::HistorySizeView::decl(&cfg),
        crate::commands::ContactView::decl(&cfg),
        crate::commands::VerifyCodeView::decl(&cfg),
        tidings_core::verification::Trust::decl(&cfg),
        crate::error::AppError::decl(&cfg),
        crate::error::ErrorCode::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust types by src-tauri/src/bindings.rs. Do not edit:\n\
         // TIDINGS_WRITE_BINDINGS=1 cargo test -p tidings-app bindings\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bindings_match_the_rust_types() {
        // The checkout being tested (cargo test sets it), not the one this binary was first
        // built in: a target dir shared between checkouts reuses test binaries.
        let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
        let path = std::path::Path::new(&crate_dir).join("../ui/src/bindings.ts");
        let fresh = super::typescript();
        if std::env::var_os("TIDINGS_WRITE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).expect("write ui/src/bindings.ts");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "ui/src/bindings.ts is out of date with the Rust types; regenerate it with \
             TIDINGS_WRITE_BINDINGS=1 cargo test -p tidings-app bindings"
        );
    }
}
