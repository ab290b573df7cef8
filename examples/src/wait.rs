//! Polling helpers for the demo and the end-to-end tests.

use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::Api;

/// Polls `api.get(name)` every 250 ms until `done` holds, for at most `timeout`; returns the object.
pub async fn until<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = api.get_opt(name).await?;
        if let Some(obj) = &last
            && done(obj)
        {
            return Ok(obj.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
