//! Which bridges on this host are berth's (issue 31). berth marks every bridge it brings up
//! with an interface alias (IFLA_IFALIAS, read back from `/sys/class/net/X/ifalias`),
//! `berth:<root>`, naming the root whose database records the network. A marked bridge is
//! left over when its root is this daemon's (a root wiped and started anew: its database
//! no longer knows the bridge) or holds no database any more (a root deleted, a test's
//! berthd gone): berth takes such a bridge over, deleting it so the bridge plugin makes it
//! anew with the new network's address. Any other interface, a bridge of another live root
//! included, keeps its routes: a network on them is refused naming it.

use std::path::{Path, PathBuf};

/// What a host interface is to this daemon.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// Not made by berth (no marker), or not a bridge.
    Foreign,
    /// A bridge of another berth root that still holds a database.
    OtherRoot(PathBuf),
    /// A bridge berth made for a root whose database no longer records it.
    LeftOver,
}

/// The alias berth sets on the bridges of `root`'s networks.
pub fn marker(root: &Path) -> String {
    format!("berth:{}", root.display())
}

fn alias(iface: &str) -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(iface).join("ifalias"));
    Some(text.ok()?.trim_end_matches('\n').to_owned())
}

/// Whether interface `iface` exists.
pub fn exists(iface: &str) -> bool {
    Path::new("/sys/class/net").join(iface).exists()
}

/// Whether bridge `iface` carries `root`'s marker already.
pub fn is_marked(iface: &str, root: &Path) -> bool {
    alias(iface).is_some_and(|a| a == marker(root))
}

/// Whose interface `iface` is, for a daemon on `root` whose database does not record it.
pub fn owner_of(iface: &str, root: &Path) -> Owner {
    let is_bridge = Path::new("/sys/class/net")
        .join(iface)
        .join("bridge")
        .is_dir();
    let alias = alias(iface).unwrap_or_default();
    match alias.strip_prefix("berth:") {
        Some(owner) if is_bridge => classify(Path::new(owner), root),
        _ => Owner::Foreign,
    }
}

fn classify(owner: &Path, root: &Path) -> Owner {
    if owner == root || !owner.join("meta.db").exists() {
        Owner::LeftOver
    } else {
        Owner::OtherRoot(owner.to_owned())
    }
}

/// The words a refusal adds after an interface's name.
pub fn describe(owner: &Owner) -> String {
    match owner {
        Owner::Foreign => "(not a bridge berth made)".to_owned(),
        Owner::OtherRoot(r) => format!("(the bridge of berth root {})", r.display()),
        Owner::LeftOver => "(left over by berth)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_bridge_is_left_over_when_its_root_is_ours_or_has_no_database() {
        let live = tempfile::tempdir().expect("tmp");
        std::fs::write(live.path().join("meta.db"), b"").expect("db");
        let ours = Path::new("/var/lib/berth");
        assert_eq!(classify(ours, ours), Owner::LeftOver);
        assert_eq!(
            classify(Path::new("/nonexistent/berth-root"), ours),
            Owner::LeftOver
        );
        assert_eq!(
            classify(live.path(), ours),
            Owner::OtherRoot(live.path().to_owned())
        );
        assert_eq!(marker(ours), "berth:/var/lib/berth");
    }
}
