//! The OS layer under berth's tasks: the runc client, the one process reaper,
//! console (pty) sockets and host stdio. Nothing above this layer calls
//! `waitpid`, opens a FIFO or runs a binary itself.
pub mod console;
pub mod reaper;
pub mod runc;
pub mod stdio;
