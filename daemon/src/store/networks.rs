//! Networks and the attachments of tasks to them.

use rusqlite::{params, Connection, Row};
use schema::{Network, PortMapping};

use super::{is_unique_violation, Result, StoreError, Tx};

fn missing(name: &str) -> String {
    format!("network \"{name}\" not found")
}

fn from_row(r: &Row<'_>) -> Result<Network> {
    Ok(Network {
        name: r.get(0)?,
        bridge: r.get(1)?,
        subnet: r.get(2)?,
        gateway: r.get(3)?,
        labels: serde_json::from_str(&r.get::<_, String>(4)?)?,
        created_at: r.get(5)?,
    })
}

const COLUMNS: &str = "name, bridge, subnet, gateway, labels, created_at";

pub fn insert(tx: &mut Tx<'_>, n: &Network) -> Result<()> {
    let res = tx
        .conn()
        .prepare_cached(
            "INSERT INTO networks (name, bridge, subnet, gateway, labels, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            n.name,
            n.bridge,
            n.subnet,
            n.gateway,
            serde_json::to_string(&n.labels)?,
            n.created_at
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(format!(
            "network \"{}\" (or its subnet {} or bridge {}) exists already",
            n.name, n.subnet, n.bridge
        ))),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

pub fn find(conn: &Connection, name: &str) -> Result<Option<Network>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM networks WHERE name = ?1"))?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(r) => Ok(Some(from_row(r)?)),
        None => Ok(None),
    }
}

pub fn get(conn: &Connection, name: &str) -> Result<Network> {
    find(conn, name)?.ok_or_else(|| StoreError::NotFound(missing(name)))
}

pub fn list(conn: &Connection) -> Result<Vec<Network>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM networks ORDER BY name"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Deletes a network no task is attached to.
pub fn delete(tx: &mut Tx<'_>, name: &str) -> Result<Network> {
    let n = get(tx.conn(), name)?;
    let on: Vec<String> = all(tx.conn())?
        .into_iter()
        .filter(|a| a.network == name)
        .map(|a| format!("\"{}\" (namespace \"{}\")", a.container_id, a.namespace))
        .collect();
    if !on.is_empty() {
        return Err(StoreError::FailedPrecondition(format!(
            "network \"{name}\" is in use by task {}; stop or delete them first",
            on.join(", ")
        )));
    }
    tx.conn()
        .prepare_cached("DELETE FROM networks WHERE name = ?1")?
        .execute([name])?;
    Ok(n)
}

/// One task's place on a network.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub namespace: String,
    pub container_id: String,
    pub network: String,
    pub netns: String,
    pub ports: Vec<PortMapping>,
    pub ip: String,
    pub result: String,
}

const ATTACHMENT_COLUMNS: &str = "namespace, container_id, network, netns, ports, ip, result";

fn attachment(r: &Row<'_>) -> Result<Attachment> {
    Ok(Attachment {
        namespace: r.get(0)?,
        container_id: r.get(1)?,
        network: r.get(2)?,
        netns: r.get(3)?,
        ports: serde_json::from_str(&r.get::<_, String>(4)?)?,
        ip: r.get(5)?,
        result: r.get(6)?,
    })
}

/// Whether two published ports take the same host port (same number and protocol, on the
/// same address or on every one).
pub fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip == b.host_ip || a.host_ip == "0.0.0.0" || b.host_ip == "0.0.0.0")
}

/// The attachment publishing host port `p` (or one that clashes with it), if any.
pub fn publisher(conn: &Connection, p: &PortMapping) -> Result<Option<Attachment>> {
    Ok(all(conn)?
        .into_iter()
        .find(|a| a.ports.iter().any(|o| clash(o, p))))
}

/// The error for host port `p`, which `a` publishes.
pub fn port_taken(p: &PortMapping, a: &Attachment) -> StoreError {
    StoreError::FailedPrecondition(format!(
        "host port {}/{} is already published by task \"{}\" (namespace \"{}\"); stop it \
         or publish another port",
        p.host_port, p.protocol, a.container_id, a.namespace
    ))
}

/// Records an attachment before CNI ADD runs, refusing a host port another attachment
/// publishes already (same port and protocol, on the same or any address).
pub fn attach(tx: &mut Tx<'_>, a: &Attachment) -> Result<()> {
    for p in &a.ports {
        if let Some(other) = publisher(tx.conn(), p)? {
            return Err(port_taken(p, &other));
        }
    }
    let res = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?
        .execute(params![
            a.namespace,
            a.container_id,
            a.network,
            a.netns,
            serde_json::to_string(&a.ports)?,
            a.ip,
            a.result
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(format!(
            "task \"{}\" (namespace \"{}\") is on a network already",
            a.container_id, a.namespace
        ))),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// Stores what CNI ADD answered.
pub fn set_added(tx: &mut Tx<'_>, ns: &str, id: &str, ip: &str, result: &str) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE attachments SET ip = ?3, result = ?4 WHERE namespace = ?1 AND container_id = ?2",
        )?
        .execute(params![ns, id, ip, result])?;
    Ok(())
}

pub fn detach(tx: &mut Tx<'_>, ns: &str, id: &str) -> Result<()> {
    tx.conn()
        .prepare_cached("DELETE FROM attachments WHERE namespace = ?1 AND container_id = ?2")?
        .execute(params![ns, id])?;
    Ok(())
}

pub fn attachment_of(conn: &Connection, ns: &str, id: &str) -> Result<Option<Attachment>> {
    Ok(select(
        conn,
        "WHERE namespace = ?1 AND container_id = ?2",
        params![ns, id],
    )?
    .pop())
}

pub fn all(conn: &Connection) -> Result<Vec<Attachment>> {
    select(conn, "", [])
}

/// The attachments of namespace `ns` (one read for a whole `tasks.list`).
pub fn in_namespace(conn: &Connection, ns: &str) -> Result<Vec<Attachment>> {
    select(conn, "WHERE namespace = ?1", [ns])
}

fn select(conn: &Connection, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments {filter} ORDER BY namespace, container_id"
    ))?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(attachment(r)?);
    }
    Ok(out)
}
