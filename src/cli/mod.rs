//! The command line's subcommands beyond `serve`.

pub mod admin;
pub mod fsck;
pub mod gc;
