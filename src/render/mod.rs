//! Everything kale draws: terminal progress ([`live`]), SVG plots ([`svg`]) and the
//! text tables of the commands ([`table`]). What they show is derived in
//! [`crate::query`].

pub mod live;
pub mod summary;
pub mod svg;
pub mod table;
