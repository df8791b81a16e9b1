//! The facts the API server does not send with a request: the labels of its namespace (for
//! `namespaceSelector`) and the requester's Roles and ClusterRoles (for `roles` /
//! `clusterRoles`).
//!
//! In a cluster they come from kube-rs reflector caches over Namespaces, RoleBindings and
//! ClusterRoleBindings, computed as Kyverno computes them:
//!
//! - a binding names the requester when one of its subjects is the user (`User`, by name), one
//!   of the user's groups (`Group`), or the user's service account (`ServiceAccount`, i.e.
//!   the username `system:serviceaccount:NAMESPACE:NAME`; a subject without a namespace takes
//!   the RoleBinding's, and in a ClusterRoleBinding it names no one);
//! - a RoleBinding to a `Role` gives the role `NAMESPACE:ROLE`, whatever namespace the request
//!   is in; a RoleBinding to a `ClusterRole` gives that cluster role only for requests in the
//!   binding's namespace; a ClusterRoleBinding to a `ClusterRole` gives it everywhere;
//! - both lists are sorted, without repeats.
//!
//! A namespace missing from the cache has *unknown* labels, never none: the rules that select
//! on them are then errors (fail closed). Without a cluster (`--no-cluster`) the labels come
//! from a file (`--namespace-labels`) and the roles stay unknown, so a rule that matches on
//! them is an error, never a silent non-match.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use provenance_policy::RequestFacts;

/// How long the caches may take to list the cluster at start.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the facts come from.
#[derive(clap::Args, Debug)]
pub struct FactsArgs {
    /// Run without the Kubernetes API: namespace labels from `--namespace-labels` (else
    /// unknown), the requester's roles unknown, and rules with `configMap` or `apiCall`
    /// context entries report `error`.
    #[arg(long)]
    pub no_cluster: bool,
    /// With `--no-cluster`: a YAML map of namespace -> labels.
    #[arg(long, requires = "no_cluster")]
    pub namespace_labels: Option<PathBuf>,
}

/// The source of [`RequestFacts`].
pub enum Facts {
    /// Reflector caches over the cluster.
    Cluster {
        /// Namespaces (their labels).
        namespaces: Store<Namespace>,
        /// RoleBindings of every namespace.
        role_bindings: Store<RoleBinding>,
        /// ClusterRoleBindings.
        cluster_role_bindings: Store<ClusterRoleBinding>,
    },
    /// No cluster: namespace labels from a file, roles unknown.
    Offline(BTreeMap<String, BTreeMap<String, String>>),
}

impl Facts {
    /// Starts the reflectors and waits until each has listed the cluster, or reads the
    /// `--namespace-labels` file with `--no-cluster`.
    /// `client` is `None` exactly with `--no-cluster`.
    pub async fn start(args: &FactsArgs, client: Option<Client>) -> Result<Facts, String> {
        let Some(client) = client else {
            return Ok(Facts::Offline(match &args.namespace_labels {
                Some(p) => read_labels(p)?,
                None => BTreeMap::new(),
            }));
        };
        let (namespaces, role_bindings, cluster_role_bindings) = (
            cache(Api::all(client.clone())),
            cache(Api::all(client.clone())),
            cache(Api::all(client)),
        );
        let ready = async {
            namespaces.wait_until_ready().await?;
            role_bindings.wait_until_ready().await?;
            cluster_role_bindings.wait_until_ready().await
        };
        match tokio::time::timeout(SYNC_TIMEOUT, ready).await {
            Ok(Ok(())) => Ok(Facts::Cluster {
                namespaces,
                role_bindings,
                cluster_role_bindings,
            }),
            Ok(Err(e)) => Err(format!("cluster caches: {e}")),
            Err(_) => Err(format!(
                "cluster caches not filled within {} s: can the webhook list and watch \
                 namespaces, rolebindings and clusterrolebindings?",
                SYNC_TIMEOUT.as_secs()
            )),
        }
    }

    /// The facts of one request.
    pub fn for_request(&self, req: &AdmissionRequest<DynamicObject>) -> RequestFacts {
        let ns = req.namespace.as_deref().unwrap_or_default();
        match self {
            Facts::Offline(labels) => {
                let found = labels.get(ns).cloned();
                match namespace_labels(&req.kind.kind, ns, found) {
                    Some(l) => RequestFacts::new().namespace_labels(l),
                    None => RequestFacts::new(),
                }
            }
            Facts::Cluster {
                namespaces,
                role_bindings,
                cluster_role_bindings,
            } => {
                let found = namespaces
                    .get(&ObjectRef::new(ns))
                    .map(|n| n.labels().clone());
                let (roles, cluster_roles) = roles(
                    &req.user_info,
                    ns,
                    role_bindings.state().iter().map(AsRef::as_ref),
                    cluster_role_bindings.state().iter().map(AsRef::as_ref),
                );
                let facts = RequestFacts::new().roles(roles, cluster_roles);
                match namespace_labels(&req.kind.kind, ns, found) {
                    Some(l) => facts.namespace_labels(l),
                    None => facts,
                }
            }
        }
    }
}

/// A reflector cache over `api`, kept up to date by a background task (with kube-rs's
/// backoff on errors). Managed fields and annotations are dropped: only labels, subjects and
/// role references are read.
fn cache<K>(api: Api<K>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o: &mut K| {
            o.managed_fields_mut().clear();
            o.annotations_mut().clear();
        })
        .reflect(writer);
    tokio::spawn(stream.for_each(|event| {
        if let Err(e) = event {
            eprintln!("provenance-kube-webhook: cluster watch: {e}");
        }
        std::future::ready(())
    }));
    reader
}

fn read_labels(
    path: &std::path::Path,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let v = provenance_policy::yaml::load_document(&text, &name)
        .map_err(|e| format!("{name}: [{}] {e}", e.code()))?;
    serde_json::from_value(v)
        .map_err(|e| format!("{name}: expected {{namespace: {{label: value}}}}: {e}"))
}

/// The namespace labels of a request for `kind` in `namespace`, given the namespace's labels
/// when it was found. A cluster-scoped request and a Namespace itself have none to look up
/// (empty, known); a namespace that was not found has unknown labels (`None`).
pub fn namespace_labels(
    kind: &str,
    namespace: &str,
    found: Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    if namespace.is_empty() || kind == "Namespace" {
        return Some(BTreeMap::new());
    }
    found
}

/// The requester's Roles (`NAMESPACE:ROLE`) and ClusterRoles for a request in `namespace`,
/// from every RoleBinding and ClusterRoleBinding, as Kyverno computes them (see the module
/// documentation). Both lists are sorted, without repeats.
pub fn roles<'a>(
    user: &UserInfo,
    namespace: &str,
    role_bindings: impl IntoIterator<Item = &'a RoleBinding>,
    cluster_role_bindings: impl IntoIterator<Item = &'a ClusterRoleBinding>,
) -> (Vec<String>, Vec<String>) {
    let (mut roles, mut cluster_roles) = (Vec::new(), Vec::new());
    for rb in role_bindings {
        let rb_ns = rb.metadata.namespace.as_deref().unwrap_or_default();
        if !names_user(rb.subjects.as_deref(), user, rb_ns) {
            continue;
        }
        match rb.role_ref.kind.as_str() {
            "Role" => roles.push(format!("{rb_ns}:{}", rb.role_ref.name)),
            "ClusterRole" if rb_ns == namespace => cluster_roles.push(rb.role_ref.name.clone()),
            _ => {}
        }
    }
    for crb in cluster_role_bindings {
        if crb.role_ref.kind == "ClusterRole" && names_user(crb.subjects.as_deref(), user, "") {
            cluster_roles.push(crb.role_ref.name.clone());
        }
    }
    for list in [&mut roles, &mut cluster_roles] {
        list.sort();
        list.dedup();
    }
    (roles, cluster_roles)
}

/// Whether one of `subjects` names `user`; `namespace` is the binding's (empty for a
/// ClusterRoleBinding), the default namespace of a ServiceAccount subject.
fn names_user(subjects: Option<&[Subject]>, user: &UserInfo, namespace: &str) -> bool {
    let username = user.username.as_deref().unwrap_or_default();
    let groups = user.groups.as_deref().unwrap_or_default();
    subjects
        .unwrap_or_default()
        .iter()
        .any(|s| match s.kind.as_str() {
            "ServiceAccount" => {
                let ns = s
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                !ns.is_empty() && username == format!("system:serviceaccount:{ns}:{}", s.name)
            }
            "Group" => groups.contains(&s.name),
            "User" => username == s.name,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(Into::into),
            api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn rb(ns: &str, to: (&str, &str), subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{}-{}", to.1, ns)),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            role_ref: role_ref(to.0, to.1),
            subjects: Some(subjects),
        }
    }

    fn crb(to: (&str, &str), subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(to.1.into()),
                ..ObjectMeta::default()
            },
            role_ref: role_ref(to.0, to.1),
            subjects: Some(subjects),
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: Some(name.into()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            ..UserInfo::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn role_bindings_give_roles_in_any_namespace_and_cluster_roles_in_their_own() {
        let alice = user("alice", &["system:authenticated"]);
        let rbs = [
            rb(
                "ml",
                ("Role", "deployer"),
                vec![subject("User", "alice", None)],
            ),
            rb(
                "team-b",
                ("Role", "viewer"),
                vec![subject("User", "alice", None)],
            ),
            rb(
                "ml",
                ("ClusterRole", "edit"),
                vec![subject("User", "alice", None)],
            ),
            rb(
                "team-b",
                ("ClusterRole", "admin"),
                vec![subject("User", "alice", None)],
            ),
            rb("ml", ("Role", "other"), vec![subject("User", "bob", None)]),
        ];
        let (roles, cluster_roles) = super::roles(&alice, "ml", &rbs, []);
        assert_eq!(roles, strings(&["ml:deployer", "team-b:viewer"]));
        assert_eq!(cluster_roles, strings(&["edit"]));
        // The same bindings for a request in team-b.
        let (roles, cluster_roles) = super::roles(&alice, "team-b", &rbs, []);
        assert_eq!(roles, strings(&["ml:deployer", "team-b:viewer"]));
        assert_eq!(cluster_roles, strings(&["admin"]));
        // A cluster-scoped request: no RoleBinding's ClusterRole applies.
        let (_, cluster_roles) = super::roles(&alice, "", &rbs, []);
        assert!(cluster_roles.is_empty());
    }

    #[test]
    fn cluster_role_bindings_give_cluster_roles_everywhere() {
        let alice = user("alice", &["ml-team"]);
        let crbs = [
            crb(
                ("ClusterRole", "view"),
                vec![subject("User", "alice", None)],
            ),
            crb(
                ("ClusterRole", "gpu-user"),
                vec![subject("Group", "ml-team", None)],
            ),
            crb(
                ("ClusterRole", "cluster-admin"),
                vec![subject("Group", "system:masters", None)],
            ),
            // Only ClusterRoles can be bound cluster-wide.
            crb(("Role", "odd"), vec![subject("User", "alice", None)]),
        ];
        for ns in ["ml", "other", ""] {
            let (roles, cluster_roles) = super::roles(&alice, ns, [], &crbs);
            assert!(roles.is_empty());
            assert_eq!(cluster_roles, strings(&["gpu-user", "view"]));
        }
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let sa = user(
            "system:serviceaccount:ml:trainer",
            &["system:serviceaccounts", "system:serviceaccounts:ml"],
        );
        let rbs = [
            // A ServiceAccount subject without a namespace is in the binding's namespace.
            rb(
                "ml",
                ("Role", "implicit"),
                vec![subject("ServiceAccount", "trainer", None)],
            ),
            rb(
                "ml",
                ("Role", "explicit"),
                vec![subject("ServiceAccount", "trainer", Some("ml"))],
            ),
            // Bound in another namespace, to the account in ml.
            rb(
                "data",
                ("Role", "reader"),
                vec![subject("ServiceAccount", "trainer", Some("ml"))],
            ),
            // Same name, other namespace: another account.
            rb(
                "data",
                ("Role", "wrong"),
                vec![subject("ServiceAccount", "trainer", None)],
            ),
            // The service account's groups.
            rb(
                "ml",
                ("Role", "all-sa"),
                vec![subject("Group", "system:serviceaccounts:ml", None)],
            ),
            // A User subject spelling the service account's username matches it too.
            rb(
                "ml",
                ("Role", "by-name"),
                vec![subject("User", "system:serviceaccount:ml:trainer", None)],
            ),
            // One matching subject among others is enough.
            rb(
                "ml",
                ("Role", "mixed"),
                vec![
                    subject("User", "bob", None),
                    subject("ServiceAccount", "trainer", None),
                ],
            ),
        ];
        let crbs = [
            crb(
                ("ClusterRole", "sa-explicit"),
                vec![subject("ServiceAccount", "trainer", Some("ml"))],
            ),
            // In a ClusterRoleBinding a ServiceAccount subject without namespace names no one.
            crb(
                ("ClusterRole", "sa-no-ns"),
                vec![subject("ServiceAccount", "trainer", None)],
            ),
            crb(
                ("ClusterRole", "unknown-kind"),
                vec![subject("Robot", "system:serviceaccount:ml:trainer", None)],
            ),
        ];
        let (roles, cluster_roles) = super::roles(&sa, "ml", &rbs, &crbs);
        assert_eq!(
            roles,
            strings(&[
                "data:reader",
                "ml:all-sa",
                "ml:by-name",
                "ml:explicit",
                "ml:implicit",
                "ml:mixed"
            ])
        );
        assert_eq!(cluster_roles, strings(&["sa-explicit"]));
    }

    #[test]
    fn no_binding_no_roles_and_repeats_are_merged() {
        let nobody = UserInfo::default();
        let rbs = [rb(
            "ml",
            ("Role", "r"),
            vec![subject("User", "alice", None)],
        )];
        assert_eq!(super::roles(&nobody, "ml", &rbs, []), (vec![], vec![]));
        let alice = user("alice", &["g"]);
        let rbs = [
            rb("ml", ("Role", "r"), vec![subject("User", "alice", None)]),
            rb("ml", ("Role", "r"), vec![subject("Group", "g", None)]),
            rb(
                "ml",
                ("ClusterRole", "edit"),
                vec![subject("User", "alice", None)],
            ),
        ];
        let crbs = [crb(
            ("ClusterRole", "edit"),
            vec![subject("Group", "g", None)],
        )];
        let (roles, cluster_roles) = super::roles(&alice, "ml", &rbs, &crbs);
        assert_eq!(roles, strings(&["ml:r"]));
        assert_eq!(cluster_roles, strings(&["edit"]));
    }

    #[test]
    fn namespace_labels_are_unknown_only_for_a_namespace_not_found() {
        let labels: BTreeMap<String, String> = [("purpose".into(), "ai-inference".into())].into();
        assert_eq!(
            namespace_labels("Pod", "ml", Some(labels.clone())),
            Some(labels.clone())
        );
        assert_eq!(namespace_labels("Pod", "ml", None), None);
        assert_eq!(
            namespace_labels("ClusterRole", "", None),
            Some(BTreeMap::new())
        );
        assert_eq!(
            namespace_labels("Namespace", "ml", None),
            Some(BTreeMap::new())
        );
    }
}
