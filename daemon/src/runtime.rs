//! The OS layer under berth's tasks: the runc client, the one process reaper,
//! console (pty) sockets, host stdio, rootfs mounts and pidfds for processes that are
//! not our children. Nothing above this layer calls `waitpid`, opens a FIFO or runs a
//! binary itself.
pub mod cgroup;
pub mod cni;
pub mod console;
pub mod logfile;
pub mod mount;
pub mod pidfd;
pub mod reaper;
pub mod runc;
pub mod stdio;
