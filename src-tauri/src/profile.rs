//! Which profile this window runs, and the rule that a profile is open in one app at a time.
//!
//! A profile is a directory (the core's SQLite database, media cache, outgoing files). The
//! app opens `<app data>/profiles/<name>` — `default` unless `--profile NAME` — or exactly
//! `--profile-dir DIR`. Two apps on one profile would each sync and each ring for calls, so
//! the second one finds the profile's lock file held and stops with a clear message; other
//! profiles run side by side (that is how the end-to-end tests run two users).

use std::{
    fs::File,
    path::{Path, PathBuf},
};

/// What the command line chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// `--profile-dir DIR` (wins over `--profile`).
    pub profile_dir: Option<PathBuf>,
    /// `--server URL`: the first-run screen's suggestion (else `TIDINGS_SERVER`).
    pub server: Option<String>,
}

impl Launch {
    /// Reads `--profile`, `--profile-dir` and `--server` (each `--flag value` or
    /// `--flag=value`); ignores anything else (platforms add their own arguments).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let mut launch = Launch::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            let slot = match flag.as_str() {
                "--profile" => &mut launch.profile,
                "--server" => &mut launch.server,
                "--profile-dir" => {
                    launch.profile_dir = inline.or_else(|| args.next()).map(PathBuf::from);
                    continue;
                }
                _ => continue,
            };
            *slot = inline.or_else(|| args.next());
        }
        if launch.server.is_none() {
            launch.server = std::env::var("TIDINGS_SERVER").ok().filter(|s| !s.is_empty());
        }
        launch
    }

    /// The profile directory under the app's data directory.
    pub fn dir(&self, app_data: &Path) -> PathBuf {
        match (&self.profile_dir, &self.profile) {
            (Some(dir), _) => dir.clone(),
            (None, Some(name)) => app_data.join("profiles").join(sanitize(name)),
            (None, None) => app_data.join("profiles").join("default"),
        }
    }
}

/// A profile name as a single path component.
fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(64)
        .collect();
    if clean.is_empty() {
        "default".into()
    } else {
        clean
    }
}

/// Held for as long as this app has the profile open.
#[derive(Debug)]
pub struct ProfileLock(#[allow(dead_code)] File);

/// Why a profile could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another app has it.
    #[error("Tidings is already running with the profile in {0}")]
    InUse(PathBuf),
    /// The directory or lock file cannot be made.
    #[error("cannot open the profile in {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Takes the profile's lock (released by the OS when the process ends, even on a crash).
pub fn lock(dir: &Path) -> Result<ProfileLock, LockError> {
    let io = |e| LockError::Io(dir.to_owned(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("app.lock"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(ProfileLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::InUse(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Launch {
        Launch::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_in_both_spellings() {
        let l = parse(&["--profile", "bob", "--server=http://127.0.0.1:9", "-psn_0_1"]);
        assert_eq!(l.profile.as_deref(), Some("bob"));
        assert_eq!(l.server.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(l.dir(Path::new("/d")), PathBuf::from("/d/profiles/bob"));
        let l = parse(&["--profile-dir=/x/y", "--profile", "bob"]);
        assert_eq!(l.dir(Path::new("/d")), PathBuf::from("/x/y"));
    }

    #[test]
    fn a_profile_name_cannot_leave_the_profiles_folder() {
        let l = parse(&["--profile", "../../etc"]);
        assert_eq!(l.dir(Path::new("/d")), PathBuf::from("/d/profiles/______etc"));
    }

    #[test]
    fn a_profile_opens_once() {
        let dir = std::env::temp_dir().join(format!("tidings-lock-{}", uuid::Uuid::new_v4()));
        let first = lock(&dir).expect("first lock");
        assert!(matches!(lock(&dir), Err(LockError::InUse(_))));
        drop(first);
        lock(&dir).expect("free again after the first app is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
