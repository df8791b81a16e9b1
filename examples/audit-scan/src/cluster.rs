//! Reading Pods and Namespaces from a live cluster through kube-rs (the API server named by
//! the kubeconfig, or the in-cluster service account), a page at a time.

use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

/// Objects per list request.
const PAGE: u32 = 500;
/// Most objects read of one kind (a bound on memory).
const MAX_OBJECTS: usize = 200_000;

/// Why the cluster could not be read.
#[derive(Debug)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    Config(String),
    /// The API server could not be reached or refused a request.
    Api(String),
}

/// The client configuration: `kubeconfig` when given, else what kube-rs infers (`KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account), with `context` when given.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, ClusterError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| {
                ClusterError::Config(format!("--kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| ClusterError::Config(format!("--kubeconfig {}: {e}", path.display())))
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ClusterError::Config(format!("kubeconfig: {e}"))),
        (None, None) => Config::infer()
            .await
            .map_err(|e| ClusterError::Config(e.to_string())),
    }
}

async fn list_all<K>(api: Api<K>, what: &str) -> Result<Vec<Value>, ClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| ClusterError::Api(format!("listing {what}: {e}")))?;
        for item in page.items {
            // k8s-openapi writes apiVersion and kind for every object.
            out.push(
                serde_json::to_value(&item)
                    .map_err(|e| ClusterError::Api(format!("{what}: {e}")))?,
            );
        }
        if out.len() > MAX_OBJECTS {
            return Err(ClusterError::Api(format!(
                "more than {MAX_OBJECTS} {what}: scan one namespace at a time (--namespace)"
            )));
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// The Pods of `namespace` (all namespaces when `None`) and every Namespace (for
/// `namespaceSelector` labels).
pub async fn read(config: Config, namespace: Option<&str>) -> Result<Vec<Value>, ClusterError> {
    let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
    let pods: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut out = list_all(Api::<Namespace>::all(client), "namespaces").await?;
    out.extend(list_all(pods, "pods").await?);
    Ok(out)
}
