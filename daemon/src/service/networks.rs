//! Networks (issue 16): bridges on this host that tasks join through the standard CNI
//! plugins, with published ports, names and DNS settings.
//!
//! A task joins in two steps around `runc create`: [`Networks::prepare`] before it (the
//! network exists, every host port is free, the `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf` the task bind-mounts exist), [`Networks::attach`] after it (the
//! task's network namespace pinned by a bind mount, the attachment stored, then CNI ADD);
//! the task is started only then. [`Networks::detach`] (CNI DEL with the pinned namespace,
//! which the bridge plugin needs to find the address whose masquerade rule it removes,
//! then the pin and the row) runs when the task exits, again when it is deleted, and at
//! start-up for every attachment whose task no longer runs.
//!
//! Names: every task of a network sees one hosts file per network (its own address and
//! every other task's, by container id), rewritten in place as tasks come and go, so a
//! bind mount of it follows. `resolv.conf` is the host's without loopback name servers
//! (a host resolver on 127.0.0.53 is not reachable from the task's namespace).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use schema::{Labels, Network, NetworkCreateParams, PortMapping, TaskNetwork, DEFAULT_NETWORK};

use super::{check_id, check_labels, Error, Result};
use crate::runtime::cni::{self, Cni, NetConf};
use crate::store::{self, networks::Attachment, Store};

mod ipam;
mod owner;
mod subnet;
use owner::Owner;
use subnet::{overlaps, parse_cidr};

/// The subnets networks get when they name none: 10.90.N.0/24.
const AUTO_SUBNET_BASE: [u8; 2] = [10, 90];
/// Longest network name (bridge names are derived, never the name itself).
const MAX_NAME: usize = 64;

/// What a task's spec mounts for its network.
pub struct NetFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv: PathBuf,
}

/// What a task asked for: its network and published ports.
#[derive(Debug, Clone)]
pub struct Request {
    pub network: String,
    pub ports: Vec<PortMapping>,
}

type TaskLock = Arc<tokio::sync::Mutex<()>>;

#[derive(Clone)]
pub struct Networks {
    store: Store,
    cni: Cni,
    state: PathBuf,
    /// berthd's root: the marker on its bridges names it (see [`owner`]).
    root: PathBuf,
    /// `berth0`'s subnet and bridge (config `network_subnet`, `network_bridge`).
    default_subnet: String,
    default_bridge: String,
    /// One lock per task: its attach and detaches never overlap (a DEL racing a new ADD
    /// of the same id would release the new address).
    locks: Arc<Mutex<HashMap<(String, String), TaskLock>>>,
    /// Orders rewrites of the hosts files.
    hosts_lock: Arc<tokio::sync::Mutex<()>>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// The bridge of a network other than berth0: `br-` and 12 hex digits of a hash of its
/// name (interface names are at most 15 bytes).
fn bridge_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = format!("{:x}", Sha256::digest(name.as_bytes()));
    format!("br-{}", &hex[..12])
}

/// The CNI container id of a task: unique per namespace and id.
fn cni_id(ns: &str, id: &str) -> String {
    format!("berth-{ns}-{id}")
}

fn conf(n: &Network) -> NetConf<'_> {
    NetConf {
        name: &n.name,
        bridge: &n.bridge,
        subnet: &n.subnet,
        gateway: &n.gateway,
    }
}

impl Networks {
    pub fn new(
        store: Store,
        cni: Cni,
        (root, state): (&Path, &Path),
        (default_subnet, default_bridge): (String, String),
    ) -> Networks {
        Networks {
            store,
            cni,
            root: root.to_owned(),
            state: state.to_owned(),
            default_subnet,
            default_bridge,
            locks: Arc::default(),
            hosts_lock: Arc::default(),
        }
    }

    pub async fn create(&self, p: NetworkCreateParams) -> Result<Network> {
        self.cni
            .check()
            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
        self.insert(&p.name, p.subnet.as_deref(), p.gateway.as_deref(), p.labels)
            .await
    }

    async fn insert(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        labels: Labels,
    ) -> Result<Network> {
        check_id("network name", name)?;
        if name.len() > MAX_NAME || ["host", "none"].contains(&name) {
            return Err(invalid(format!(
                "network name \"{name}\": at most {MAX_NAME} characters, and not host or none"
            )));
        }
        check_labels(&format!("network \"{name}\""), &labels)?;
        let networks = self.store.read(store::networks::list)?;
        let taken: Vec<(Ipv4Addr, u8)> = networks
            .iter()
            .filter_map(|n| parse_cidr(&n.subnet).ok())
            .collect();
        // The host's own routes (not through berth's bridges): a bridge on one of those
        // subnets would cut the host off from it. A bridge berth left over is not the
        // host's: it is taken over below.
        let bridges: HashSet<&str> = networks.iter().map(|n| n.bridge.as_str()).collect();
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let mut host: Vec<(String, (Ipv4Addr, u8), Owner)> = Vec::new();
        let mut left_over: Vec<(String, (Ipv4Addr, u8))> = Vec::new();
        for (iface, route) in host_routes(&routes) {
            if bridges.contains(iface.as_str()) {
                continue;
            }
            match owner::owner_of(&iface, &self.root) {
                Owner::LeftOver => left_over.push((iface, route)),
                other => host.push((iface, route, other)),
            }
        }
        let subnet = match subnet {
            Some(s) => {
                let cidr = parse_cidr(s)?;
                if taken.iter().any(|t| overlaps(*t, cidr)) {
                    return Err(Error::AlreadyExists(format!(
                        "subnet {s} overlaps another network's"
                    )));
                }
                if let Some((iface, (net, len), who)) =
                    host.iter().find(|(_, r, _)| overlaps(*r, cidr))
                {
                    return Err(Error::FailedPrecondition(format!(
                        "subnet {s} overlaps this host's route to {net}/{len} on {iface} {}; \
                         choose another (for berth0: network_subnet in berthd's config)",
                        owner::describe(who)
                    )));
                }
                cidr
            }
            None => (1..=255u8)
                .map(|n| {
                    let [a, b] = AUTO_SUBNET_BASE;
                    (Ipv4Addr::new(a, b, n, 0), 24)
                })
                .find(|c| {
                    !taken.iter().any(|t| overlaps(*t, *c))
                        && !host.iter().any(|(_, r, _)| overlaps(*r, *c))
                })
                .ok_or_else(|| {
                    Error::ResourceExhausted("every 10.90.N.0/24 subnet is taken".into())
                })?,
        };
        let bridge = match name {
            DEFAULT_NETWORK => self.default_bridge.clone(),
            other => bridge_name(other),
        };
        // The bridge plugin would use an existing interface of that name as it is.
        if !bridges.contains(bridge.as_str()) && owner::exists(&bridge) {
            match owner::owner_of(&bridge, &self.root) {
                Owner::LeftOver => left_over.push((bridge.clone(), subnet)),
                who => {
                    return Err(Error::FailedPrecondition(format!(
                        "interface {bridge} exists {}; network \"{name}\" needs it as its \
                         bridge (for berth0: network_bridge in berthd's config)",
                        owner::describe(&who)
                    )))
                }
            }
        }
        for (iface, _) in left_over
            .iter()
            .filter(|(iface, r)| *iface == bridge || overlaps(*r, subnet))
        {
            tracing::info!(bridge = %iface, network = name, "taking over a bridge berth left over");
            self.cni.remove_link(iface).await;
        }
        let gateway = subnet::gateway(subnet, gateway)?;
        let n = Network {
            name: name.to_owned(),
            bridge,
            subnet: format!("{}/{}", subnet.0, subnet.1),
            gateway: gateway.to_string(),
            labels,
            created_at: store::now(),
        };
        let row = n.clone();
        self.store
            .write(move |tx| store::networks::insert(tx, &row))
            .await?;
        Ok(n)
    }

    /// Network `name`; `berth0` is created the first time it is asked for.
    pub async fn get(&self, name: &str) -> Result<Network> {
        if let Some(n) = self.store.read(|c| store::networks::find(c, name))? {
            return Ok(n);
        }
        if name != DEFAULT_NETWORK {
            return Err(Error::NotFound(format!("network \"{name}\" not found")));
        }
        let subnet = self.default_subnet.clone();
        match self.insert(name, Some(&subnet), None, Labels::new()).await {
            Ok(n) => Ok(n),
            // Created meanwhile by another task's first use.
            Err(Error::AlreadyExists(_)) => {
                Ok(self.store.read(|c| store::networks::get(c, name))?)
            }
            Err(e) => Err(e),
        }
    }

    pub fn list(&self) -> Result<Vec<Network>> {
        Ok(self.store.read(store::networks::list)?)
    }

    /// Deletes a network no task is on, its bridge, hosts file and address reservations.
    /// A task that has ended does not count: `berth rm -f db && berth network rm net`
    /// finds db's attachment still there, its release (CNI DEL) running after the deletes
    /// answered; it is finished here first (or waited for, under the task's lock).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.release_ended_on(name).await;
        let name2 = name.to_owned();
        let n = self
            .store
            .write(move |tx| store::networks::delete(tx, &name2))
            .await?;
        self.cni.remove_link(&n.bridge).await;
        let _ = std::fs::remove_file(self.hosts_path(&n.name));
        let _ = std::fs::remove_dir_all(self.state.join("cni/ipam").join(&n.name));
        Ok(())
    }

    fn hosts_path(&self, network: &str) -> PathBuf {
        self.state.join("cni/hosts").join(network)
    }

    fn pin_path(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("netns").join(ns).join(id)
    }

    fn lock_of(&self, ns: &str, id: &str) -> TaskLock {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry((ns.to_owned(), id.to_owned())).or_default())
    }

    /// Before `runc create` of a task that asked for `req`: the network exists, its host
    /// ports are free (`failed_precondition` naming the port otherwise), and the files the
    /// task mounts are written into `bundle`.
    pub async fn prepare(&self, req: &Request, id: &str, bundle: &Path) -> Result<NetFiles> {
        self.cni
            .check()
            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
        let n = self.get(&req.network).await?;
        for p in &req.ports {
            // A task that ended may still be releasing the port (its DEL runs in the
            // background): that release is finished, never taken for a conflict.
            let publisher = |s: &Self| s.store.read(|c| store::networks::publisher(c, p));
            let mut other = publisher(self)?;
            if let Some(a) = other.take_if(|a| !self.still_runs(&a.namespace, &a.container_id)) {
                self.detach(&a.namespace, &a.container_id).await;
                other = publisher(self)?;
            }
            if let Some(a) = other {
                return Err(store::networks::port_taken(p, &a).into());
            }
            port_free(p)?;
        }
        let files = NetFiles {
            hosts: self.hosts_path(&n.name),
            hostname: bundle.join("hostname"),
            resolv: bundle.join("resolv.conf"),
        };
        let write = |path: &Path, text: &str| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)
        };
        let failed = |e: std::io::Error| Error::failure("writing the task's network files", &e);
        if !files.hosts.exists() {
            write(&files.hosts, &hosts_text(&[])).map_err(failed)?;
        }
        write(&files.hostname, &format!("{}\n", hostname(id))).map_err(failed)?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        write(&files.resolv, &resolv_text(&host)).map_err(failed)?;
        Ok(files)
    }

    /// Whether the task of an attachment has not exited (nor been deleted).
    fn still_runs(&self, ns: &str, id: &str) -> bool {
        matches!(
            self.store.read(|c| store::tasks::get_any(c, ns, id, "")),
            Ok(row) if row.exit_status.is_none() && row.status != schema::TaskStatus::Deleting
        )
    }

    /// After `runc create`: pins the network namespace of the task's init `pid`, stores the
    /// attachment and runs CNI ADD. On failure nothing of it is left.
    pub async fn attach(&self, ns: &str, id: &str, req: &Request, pid: i32) -> Result<TaskNetwork> {
        let lock = self.lock_of(ns, id);
        let _one = lock.lock().await;
        let n = self.get(&req.network).await?;
        let pin = self.pin_path(ns, id);
        pin_netns(pid, &pin).map_err(|e| Error::failure("pinning the task's netns", &e))?;
        let a = Attachment {
            namespace: ns.to_owned(),
            container_id: id.to_owned(),
            network: n.name.clone(),
            netns: pin.display().to_string(),
            ports: req.ports.clone(),
            ip: String::new(),
            result: String::new(),
        };
        let row = a.clone();
        if let Err(e) = self
            .store
            .write(move |tx| store::networks::attach(tx, &row))
            .await
        {
            unpin(&pin);
            return Err(e.into());
        }
        let added = self
            .cni
            .add(&conf(&n), &cni_id(ns, id), &pin, &req.ports)
            .await;
        let result = match added {
            Ok(r) => r,
            Err(e) => {
                self.forget(ns, id, &pin).await;
                return Err(match e {
                    cni::CniError::NotInstalled { .. } => Error::FailedPrecondition(e.to_string()),
                    other => Error::Internal(other.to_string()),
                });
            }
        };
        if !owner::is_marked(&n.bridge, &self.root) {
            self.cni
                .set_alias(&n.bridge, &owner::marker(&self.root))
                .await;
        }
        let ip = cni::first_ip(&result).unwrap_or_default();
        let (ns2, id2, ip2, text) = (ns.to_owned(), id.to_owned(), ip.clone(), result.to_string());
        self.store
            .write(move |tx| store::networks::set_added(tx, &ns2, &id2, &ip2, &text))
            .await?;
        self.rewrite_hosts(&n.name).await;
        Ok(TaskNetwork {
            network: n.name,
            ip,
            ports: req.ports.clone(),
        })
    }

    /// Releases the task's address and ports (CNI DEL) and its pin, if it is on a network.
    /// Safe to call more than once; a failed DEL is logged, the row still goes (DEL of
    /// what is gone is what plugins must tolerate).
    pub async fn detach(&self, ns: &str, id: &str) {
        self.detach_if(ns, id, |_| true).await;
    }

    /// Releases the attachments on `network` of tasks that have ended (exited, deleted, or
    /// gone) and whose teardown has not released them yet.
    async fn release_ended_on(&self, network: &str) {
        let Ok(all) = self.store.read(store::networks::all) else {
            return;
        };
        for a in all.into_iter().filter(|a| a.network == network) {
            let (ns, id) = (a.namespace, a.container_id);
            let ended =
                |s: &Self| {
                    s.store
                        .read(|c| match store::tasks::get_any(c, &ns, &id, "") {
                            Ok(row) => Ok(row.status == schema::TaskStatus::Deleting
                                || row.exit_status.is_some()),
                            Err(store::StoreError::NotFound(_)) => Ok(true),
                            Err(e) => Err(e),
                        })
                        .unwrap_or(false)
                };
            if ended(self) {
                self.detach_if(&ns, &id, ended).await;
            }
        }
    }

    /// [`Networks::detach`] if `still` holds once the task's lock is taken.
    async fn detach_if(&self, ns: &str, id: &str, still: impl Fn(&Self) -> bool) {
        let attached = |s: &Self| {
            s.store
                .read(|c| store::networks::attachment_of(c, ns, id))
                .ok()
                .flatten()
        };
        // Every task's exit asks; one never attached (the attachment is written before
        // its exit can be watched) takes no lock, so the lock map holds only networked
        // tasks, and only while they are attached.
        if attached(self).is_none() {
            return;
        }
        let lock = self.lock_of(ns, id);
        let one = lock.lock().await;
        if let Some(a) = attached(self).filter(|_| still(self)) {
            self.release(ns, id, a).await;
        }
        drop(one);
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and this one: nobody else waits for it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&(ns.to_owned(), id.to_owned()));
        }
    }

    async fn release(&self, ns: &str, id: &str, a: Attachment) {
        let pin = PathBuf::from(&a.netns);
        match self.store.read(|c| store::networks::find(c, &a.network)) {
            Ok(Some(n)) => {
                // A crash between ADD and storing its result leaves none: rebuilt from the
                // addresses reserved for the task, which the firewall plugin needs.
                let stored = serde_json::from_str::<serde_json::Value>(&a.result).ok();
                let prev = stored.filter(|v| !v.is_null()).or_else(|| {
                    ipam::result_from_reservations(
                        &self.state.join("cni/ipam").join(&n.name),
                        &cni_id(ns, id),
                        (&n.subnet, &n.gateway),
                        &a.netns,
                    )
                });
                let netns = pin.exists().then_some(pin.as_path());
                if let Err(e) = self
                    .cni
                    .del(&conf(&n), &cni_id(ns, id), netns, &a.ports, prev)
                    .await
                {
                    tracing::warn!(namespace = ns, task = id, error = %e, "CNI DEL");
                }
            }
            _ => tracing::warn!(network = %a.network, "a task's network is gone"),
        }
        self.forget(ns, id, &pin).await;
        self.rewrite_hosts(&a.network).await;
    }

    async fn forget(&self, ns: &str, id: &str, pin: &Path) {
        unpin(pin);
        let (ns2, id2) = (ns.to_owned(), id.to_owned());
        if let Err(e) = self
            .store
            .write_reclaiming(move |tx| store::networks::detach(tx, &ns2, &id2))
            .await
        {
            tracing::warn!(namespace = ns, task = id, error = %e, "attachment not removed");
        }
    }

    /// What `tasks.get` shows of a task's network.
    pub fn of(&self, ns: &str, id: &str) -> Option<TaskNetwork> {
        let a = self
            .store
            .read(|c| store::networks::attachment_of(c, ns, id))
            .ok()??;
        Some(shown(a))
    }

    /// [`Networks::of`] for every task of namespace `ns` on a network, by container id.
    pub fn in_namespace(&self, ns: &str) -> HashMap<String, TaskNetwork> {
        self.store
            .read(|c| store::networks::in_namespace(c, ns))
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.container_id.clone(), shown(a)))
            .collect()
    }

    /// Start-up: detaches every task not in `running` (a crash or reboot ended it).
    pub async fn sweep(&self, running: &HashSet<(String, String)>) {
        let Ok(all) = self.store.read(store::networks::all) else {
            return;
        };
        let mut released = 0;
        for a in all {
            if !running.contains(&(a.namespace.clone(), a.container_id.clone())) {
                self.detach(&a.namespace, &a.container_id).await;
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(
                released,
                "released the networks of tasks that no longer run"
            );
        }
    }

    async fn rewrite_hosts(&self, network: &str) {
        let _one = self.hosts_lock.lock().await;
        let entries: Vec<(String, String)> = self
            .store
            .read(store::networks::all)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.network == network && !a.ip.is_empty())
            .map(|a| (a.ip, a.container_id))
            .collect();
        let path = self.hosts_path(network);
        // In place (same inode), so the tasks' bind mounts see it.
        if path.exists() {
            if let Err(e) = std::fs::write(&path, hosts_text(&entries)) {
                tracing::warn!(network, error = %e, "hosts file not rewritten");
            }
        }
    }
}

fn shown(a: Attachment) -> TaskNetwork {
    TaskNetwork {
        network: a.network,
        ip: a.ip,
        ports: a.ports,
    }
}

/// The routed subnets of `/proc/net/route` (its text), by interface; the default route is
/// not one (it overlaps everything).
fn host_routes(text: &str) -> Vec<(String, (Ipv4Addr, u8))> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| f.get(i).and_then(|h| u32::from_str_radix(h, 16).ok());
            // Little-endian words: the kernel prints the bytes in memory order.
            let (dest, mask) = (hex(1)?.swap_bytes(), hex(7)?.swap_bytes());
            let len = u8::try_from(mask.count_ones()).ok()?;
            (len > 0).then(|| (f[0].to_owned(), (Ipv4Addr::from(dest), len)))
        })
        .collect()
}

/// The hostname of task `id`, cut to the kernel's 64 bytes as the spec builder does.
fn hostname(id: &str) -> &str {
    &id[..id.len().min(64)]
}

fn hosts_text(entries: &[(String, String)]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (ip, id) in entries {
        text.push_str(&format!("{ip}\t{}\n", hostname(id)));
    }
    text
}

/// The host's resolv.conf without loopback name servers, which the task cannot reach.
fn resolv_text(host: &str) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let server = line
            .trim()
            .strip_prefix("nameserver")
            .map(str::trim)
            .and_then(|a| a.parse::<std::net::IpAddr>().ok());
        if server.is_some_and(|a| a.is_loopback()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Fails when a host process holds `p` already (portmap would silently take it over).
fn port_free(p: &PortMapping) -> Result<()> {
    let addr = (
        p.host_ip
            .parse::<Ipv4Addr>()
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        p.host_port,
    );
    let bound = match p.protocol.as_str() {
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        _ => std::net::TcpListener::bind(addr).map(drop),
    };
    bound.map_err(|e| {
        Error::FailedPrecondition(format!(
            "host port {}/{} on {} is in use on this host: {e}",
            p.host_port, p.protocol, p.host_ip
        ))
    })
}

/// Bind-mounts the network namespace of `pid` onto `pin` (a file), so it outlives the task
/// for CNI DEL.
fn pin_netns(pid: i32, pin: &Path) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(pin)?;
    let source = format!("/proc/{pid}/ns/net");
    mount(
        Some(source.as_str()),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

fn unpin(pin: &Path) {
    let _ = nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(pin);
}

/// The task's request, from its container's labels (and berthd's `default_network`):
/// `None` when it stays on loopback only (`none`, `host`, no network asked for).
pub fn request(labels: &Labels, default_network: Option<&str>) -> Result<Option<Request>> {
    let ports = match labels.get(schema::PORTS_LABEL) {
        Some(text) => schema::parse_ports(text).map_err(invalid)?,
        None => Vec::new(),
    };
    let named = labels
        .get(schema::NETWORK_LABEL)
        .map(String::as_str)
        .or(default_network);
    let network = match named {
        Some("none" | "host") | None if ports.is_empty() => return Ok(None),
        Some(n @ ("none" | "host")) => {
            return Err(invalid(format!(
                "published ports need a bridge network, not \"{n}\""
            )))
        }
        Some(n) => n.to_owned(),
        None => DEFAULT_NETWORK.to_owned(),
    };
    let mut seen = HashSet::new();
    for p in &ports {
        if !seen.insert((p.host_port, p.protocol.clone())) {
            return Err(invalid(format!(
                "host port {}/{} is published twice",
                p.host_port, p.protocol
            )));
        }
    }
    Ok(Some(Request { network, ports }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_an_interface_name() {
        assert!(bridge_name("a-long-network-name").len() <= 15);
    }

    #[test]
    fn a_request_comes_from_the_labels_and_the_default() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(request(&labels(&[]), None).expect("ok").is_none());
        let r = request(&labels(&[("berth/ports", "8080:80")]), None)
            .expect("ok")
            .expect("joins");
        assert_eq!(r.network, "berth0");
        let r = request(&labels(&[]), Some("dev"))
            .expect("ok")
            .expect("joins");
        assert_eq!(r.network, "dev");
        assert!(request(&labels(&[("berth/network", "none")]), Some("dev"))
            .expect("ok")
            .is_none());
        assert!(request(
            &labels(&[("berth/network", "host"), ("berth/ports", "1:2")]),
            None
        )
        .is_err());
        assert!(request(&labels(&[("berth/ports", "1:2,1:3")]), None).is_err());
    }

    #[test]
    fn host_routes_are_read_from_proc_net_route() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\n";
        assert_eq!(
            host_routes(text),
            vec![("eth0".to_owned(), (Ipv4Addr::new(192, 0, 2, 0), 24))]
        );
    }

    #[test]
    fn loopback_name_servers_are_dropped() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n";
        assert_eq!(
            resolv_text(host),
            "# generated\nnameserver 192.0.2.1\nsearch lan\n"
        );
    }
}
