//! Networks and the attachments of tasks to them.

use rusqlite::{params, Connection, OptionalExtension, Row};
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
    let attached: i64 = tx
        .conn()
        .prepare_cached("SELECT count(*) FROM attachments WHERE network = ?1")?
        .query_row([name], |r| r.get(0))?;
    if attached > 0 {
        return Err(StoreError::FailedPrecondition(format!(
            "network \"{name}\" is in use by {attached} task(s); stop them first"
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

/// Records an attachment before CNI ADD runs, refusing a host port another attachment
/// publishes already (same port and protocol, on the same or any address).
pub fn attach(tx: &mut Tx<'_>, a: &Attachment) -> Result<()> {
    for other in all(tx.conn())? {
        for p in &a.ports {
            let taken = other.ports.iter().find(|o| clash(o, p));
            if let Some(o) = taken {
                return Err(StoreError::FailedPrecondition(format!(
                    "host port {}/{} is already published by task \"{}\" (namespace \"{}\")",
                    o.host_port, o.protocol, other.container_id, other.namespace
                )));
            }
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
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE namespace = ?1 AND container_id = ?2"
        ))?
        .query_row(params![ns, id], |r| {
            attachment(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        })
        .optional()?)
}

pub fn all(conn: &Connection) -> Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments ORDER BY namespace, container_id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(attachment(r)?);
    }
    Ok(out)
}
