//! The harness's own calls to the daemon after a restart: one NDJSON connection, every
//! call in the harness's namespace, errors as `anyhow` so a broken daemon fails the round
//! instead of panicking the run.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use crate::clients::Ndjson;

pub struct Api {
    conn: Ndjson,
    namespace: String,
}

impl Api {
    pub fn connect(socket: &Path, namespace: &str) -> Result<Api> {
        Ok(Api {
            conn: Ndjson::connect(socket)
                .map_err(|e| anyhow!("connect {}: {e}", socket.display()))?,
            namespace: namespace.to_owned(),
        })
    }

    /// `Ok(result)` or `Ok(Err(error object))`; `Err` when the connection failed.
    pub fn call(&mut self, method: &str, mut params: Value) -> Result<Result<Value, Value>> {
        params["namespace"] = json!(self.namespace);
        self.conn
            .try_call(method, params.clone())
            .map_err(|e| anyhow!("{method} {params}: no reply ({e:?})"))
    }

    /// The result, or an error naming the call.
    pub fn ok(&mut self, method: &str, params: Value) -> Result<Value> {
        self.call(method, params.clone())?
            .map_err(|e| anyhow!("{method} {params}: {e}"))
    }

    /// Every container object, paging through `containers.list`.
    pub fn containers(&mut self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut params = json!({"limit": 500});
            if let Some(a) = &after {
                params["after"] = json!(a);
            }
            let page = self.ok("containers.list", params)?;
            out.extend(page["containers"].as_array().into_iter().flatten().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// Every image name.
    pub fn images(&mut self) -> Result<Vec<String>> {
        let reply = self.ok("images.list", json!({}))?;
        Ok(names(&reply["images"], "name"))
    }

    /// Every task's container id (init processes only).
    pub fn tasks(&mut self) -> Result<Vec<String>> {
        let reply = self.ok("tasks.list", json!({}))?;
        Ok(reply["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["exec_id"].as_str().unwrap_or_default().is_empty())
            .filter_map(|p| p["container_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Every stored event of every namespace, paging with `since`.
    pub fn events(&mut self) -> Result<Vec<Value>> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let since = out.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0);
            let page = self.ok("events.list", json!({"since": since, "limit": 10_000}))?;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return Ok(out);
            }
            out.extend(events);
        }
    }
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[field].as_str().map(str::to_owned))
        .collect()
}
