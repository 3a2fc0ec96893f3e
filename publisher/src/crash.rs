//! Crash points for the tests that kill the publisher mid-publish: in debug builds, setting
//! `PERESTROIKA_CRASH_AT=<point>` aborts the process when it reaches that point, as a kill
//! would. Release builds compile this to nothing.

/// Aborts here if `PERESTROIKA_CRASH_AT` names this point (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("PERESTROIKA_CRASH_AT").is_ok_and(|p| p == name) {
        eprintln!("crash point {name} reached; aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
