//! Progress bars for blob copies: indicatif on stderr, hidden unless asked for and stderr is
//! a terminal (stdout carries data only).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;

/// A byte-count bar for copying one blob, or a hidden one.
pub(crate) fn blob_bar(enabled: bool, digest: &Digest, size: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(digest.short());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_bar_is_hidden() {
        let d = Digest::sha256_of(b"");
        assert!(blob_bar(false, &d, 10).is_hidden());
    }
}
