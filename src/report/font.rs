//! The one font of every report, compiled in: a report looks the same on any machine, and
//! rendering never searches the system for fonts (a container image has none).

use std::sync::OnceLock;

use plotters::style::{FontFamily, FontStyle, register_font};

use super::Error;

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `font/LICENSE-DejaVu.txt`).
const DEJAVU_SANS: &[u8] = include_bytes!("font/DejaVuSans.ttf");

/// Registers the font as plotters' sans-serif family, once per process.
pub(super) fn register() -> Result<(), Error> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // Other styles fall back to this face: one file keeps the binary smaller.
            register_font(
                FontFamily::SansSerif.as_str(),
                FontStyle::Normal,
                DEJAVU_SANS,
            )
            .map_err(|_| "the bundled font could not be read".to_owned())
        })
        .clone()
        .map_err(Error::Draw)
}
