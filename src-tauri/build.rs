//! Tauri's build step. The embedded UI comes from `ui/dist`; when it has not been built yet
//! (a plain `cargo build` or `cargo clippy` on a fresh checkout), a one-page placeholder
//! saying how to build it stands in, so the Rust side still compiles.

fn main() {
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Tidings</title>\
             <p>The UI is not built: run <code>npm --prefix ui ci &amp;&amp; \
             npm --prefix ui run build</code>, or <code>cargo xtask run</code>.</p>",
        );
    }
    tauri_build::build()
}
