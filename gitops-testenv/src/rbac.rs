//! RBAC for impersonation tests: [`TestEnv::grant`] gives a user or a ServiceAccount a Role in
//! a namespace ([`Grant`]), and [`TestEnv::impersonating_client`] acts as that identity, as
//! `kubectl --as` does. The API server of a [`TestEnv`] authorizes with RBAC, so what the
//! identity may do is what its Roles allow.
//!
//! ```no_run
//! use gitops_testenv::TestEnv;
//! use gitops_testenv::rbac::{Grant, RbacSubject};
//!
//! # async fn example() -> Result<(), gitops_testenv::Error> {
//! let env = TestEnv::start().await?;
//! let deployer = RbacSubject::service_account("team", "deployer");
//! let grant = Grant::new("team", "configmaps-only", deployer.clone())
//!     .rule(&[""], &["configmaps"], &["*"])
//!     .create_namespace()
//!     .create_service_account();
//! env.grant(&grant).await?;
//! let client = env.impersonating_client(&deployer.username())?;
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use crate::{Error, TestEnv};

/// The field manager of the objects [`TestEnv::grant`] applies.
pub const FIELD_MANAGER: &str = "gitops-testenv";

/// How long [`TestEnv::grant`] waits for the authorizer to allow the granted rules.
pub const GRANT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`TestEnv::grant`] asks whether the rules are allowed yet.
const GRANT_POLL: Duration = Duration::from_millis(50);

/// The API group of Roles and RoleBindings.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The identity a [`Grant`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbacSubject {
    /// A user, by name (as a client authenticates or impersonates it).
    User(String),
    /// A ServiceAccount; the API server authenticates it as the user
    /// `system:serviceaccount:NAMESPACE:NAME`.
    ServiceAccount {
        /// The ServiceAccount's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl RbacSubject {
    /// The user `name`.
    pub fn user(name: &str) -> RbacSubject {
        RbacSubject::User(name.to_string())
    }

    /// The ServiceAccount `namespace/name`.
    pub fn service_account(namespace: &str, name: &str) -> RbacSubject {
        RbacSubject::ServiceAccount {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The user name the API server knows the subject by, what to impersonate
    /// ([`TestEnv::impersonating_client`]): the name, or `system:serviceaccount:NS:NAME`.
    pub fn username(&self) -> String {
        match self {
            RbacSubject::User(name) => name.clone(),
            RbacSubject::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    /// The subject of a RoleBinding.
    fn subject(&self) -> Subject {
        match self {
            RbacSubject::User(name) => Subject {
                kind: "User".into(),
                name: name.clone(),
                api_group: Some(RBAC_GROUP.into()),
                ..Subject::default()
            },
            RbacSubject::ServiceAccount { namespace, name } => Subject {
                kind: "ServiceAccount".into(),
                name: name.clone(),
                namespace: Some(namespace.clone()),
                ..Subject::default()
            },
        }
    }
}

/// A Role with rules in a namespace and a RoleBinding (of the same name) of it to a subject,
/// for [`TestEnv::grant`]; optionally the namespace and the ServiceAccount are created too.
#[derive(Debug, Clone)]
pub struct Grant {
    namespace: String,
    role: String,
    subject: RbacSubject,
    rules: Vec<PolicyRule>,
    create_namespace: bool,
    create_service_account: bool,
}

impl Grant {
    /// The Role and RoleBinding `role` in `namespace` for `subject`, without rules yet.
    pub fn new(namespace: &str, role: &str, subject: RbacSubject) -> Grant {
        Grant {
            namespace: namespace.to_string(),
            role: role.to_string(),
            subject,
            rules: Vec::new(),
            create_namespace: false,
            create_service_account: false,
        }
    }

    /// Adds a rule allowing `verbs` (`get`, `list`, `patch`, ... or `*`) on `resources`
    /// (plural, e.g. `configmaps`) of `api_groups` (`""` is the core group).
    pub fn rule(mut self, api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> Grant {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.rules.push(PolicyRule {
            api_groups: Some(strings(api_groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            ..PolicyRule::default()
        });
        self
    }

    /// Creates the Role's namespace too (when it exists already, it is kept as it is).
    pub fn create_namespace(mut self) -> Grant {
        self.create_namespace = true;
        self
    }

    /// Creates the subject's ServiceAccount too (in its namespace, which must exist or be the
    /// Role's with [`Grant::create_namespace`]); nothing for a user.
    pub fn create_service_account(mut self) -> Grant {
        self.create_service_account = true;
        self
    }
}

impl TestEnv {
    /// [`TestEnv::kube_config`] impersonating the user `user` (`auth_info.impersonate`, the
    /// `Impersonate-User` header, as `kubectl --as`): the admin may impersonate anyone, and the
    /// API server then authorizes each request as `user`. For a ServiceAccount, `user` is
    /// `system:serviceaccount:NS:NAME` ([`RbacSubject::username`]).
    pub fn impersonating_config(&self, user: &str) -> kube::Config {
        let mut config = self.kube_config();
        config.auth_info.impersonate = Some(user.to_string());
        config
    }

    /// A client of [`TestEnv::impersonating_config`]. Call it within a Tokio runtime.
    ///
    /// Errors: [`Error::Kube`] when the client cannot be built (not expected: it is the admin's
    /// configuration plus a header).
    pub fn impersonating_client(&self, user: &str) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.impersonating_config(user))?)
    }

    /// Creates or updates what `grant` describes, as the admin with server-side apply (field
    /// manager [`FIELD_MANAGER`], forced): the namespace and the ServiceAccount when asked,
    /// the Role with exactly the grant's rules, and the RoleBinding of the Role to the subject.
    /// Granting again with other rules replaces the Role's rules.
    ///
    /// The API server's RBAC authorizer reads Roles and RoleBindings from a cache that follows
    /// them shortly after they are written, so this returns only once SubjectAccessReviews
    /// say that the subject may do each verb of each rule on each of its resources (rules
    /// removed by a new grant are not waited for), for at most [`GRANT_TIMEOUT`].
    ///
    /// Errors: [`Error::Kube`] when the API server refuses an object (e.g. the ServiceAccount's
    /// namespace does not exist), [`Error::NotGranted`] after the timeout.
    pub async fn grant(&self, grant: &Grant) -> Result<(), Error> {
        let client = self.client();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
            name: Some(name.to_string()),
            namespace: namespace.map(str::to_string),
            ..ObjectMeta::default()
        };
        let ns = grant.namespace.as_str();
        if grant.create_namespace {
            let namespace = Namespace {
                metadata: meta(ns, None),
                ..Namespace::default()
            };
            Api::<Namespace>::all(client.clone())
                .patch(ns, &params, &Patch::Apply(&namespace))
                .await?;
        }
        if let (true, RbacSubject::ServiceAccount { namespace, name }) =
            (grant.create_service_account, &grant.subject)
        {
            let sa = ServiceAccount {
                metadata: meta(name, Some(namespace)),
                ..ServiceAccount::default()
            };
            Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(&sa))
                .await?;
        }
        let role = Role {
            metadata: meta(&grant.role, Some(ns)),
            rules: Some(grant.rules.clone()),
        };
        Api::<Role>::namespaced(client.clone(), ns)
            .patch(&grant.role, &params, &Patch::Apply(&role))
            .await?;
        let binding = RoleBinding {
            metadata: meta(&grant.role, Some(ns)),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "Role".into(),
                name: grant.role.clone(),
            },
            subjects: Some(vec![grant.subject.subject()]),
        };
        Api::<RoleBinding>::namespaced(client, ns)
            .patch(&grant.role, &params, &Patch::Apply(&binding))
            .await?;
        self.wait_until_granted(grant).await
    }

    /// Waits until a SubjectAccessReview allows each verb on each resource of each rule of
    /// `grant`.
    async fn wait_until_granted(&self, grant: &Grant) -> Result<(), Error> {
        let reviews: Api<SubjectAccessReview> = Api::all(self.client());
        let user = grant.subject.username();
        let deadline = Instant::now() + GRANT_TIMEOUT;
        let none = Vec::new();
        let attributes = grant.rules.iter().flat_map(|rule| {
            let groups = rule.api_groups.as_ref().unwrap_or(&none);
            let resources = rule.resources.as_ref().unwrap_or(&none);
            groups.iter().flat_map(move |group| {
                resources.iter().flat_map(move |resource| {
                    rule.verbs.iter().map(move |verb| ResourceAttributes {
                        namespace: Some(grant.namespace.clone()),
                        verb: Some(verb.clone()),
                        group: Some(group.clone()),
                        resource: Some(resource.clone()),
                        ..ResourceAttributes::default()
                    })
                })
            })
        });
        for attributes in attributes {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.clone()),
                    resource_attributes: Some(attributes.clone()),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            loop {
                let answer = reviews.create(&PostParams::default(), &review).await?;
                if answer.status.is_some_and(|s| s.allowed) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::NotGranted {
                        user,
                        request: format!(
                            "{} {} in namespace {}",
                            attributes.verb.unwrap_or_default(),
                            attributes.resource.unwrap_or_default(),
                            grant.namespace
                        ),
                        role: format!("{}/{}", grant.namespace, grant.role),
                        timeout: GRANT_TIMEOUT,
                    });
                }
                tokio::time::sleep(GRANT_POLL).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, ListParams, PostParams};

    use super::*;

    #[test]
    fn subjects_have_their_user_names() {
        assert_eq!(RbacSubject::user("alice").username(), "alice");
        assert_eq!(
            RbacSubject::service_account("team", "deployer").username(),
            "system:serviceaccount:team:deployer"
        );
    }

    /// A granted ServiceAccount may do what its Role allows in its namespace and nothing else;
    /// granting again replaces the rules.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_impersonated_identity_gets_exactly_the_granted_rules() {
        let env = TestEnv::builder()
            .controller_manager(false)
            .node_simulator(false)
            .start()
            .await
            .unwrap();
        let sa = RbacSubject::service_account("team", "reader");
        let grant = Grant::new("team", "reader", sa.clone())
            .create_namespace()
            .create_service_account();
        env.grant(&grant.clone().rule(&[""], &["configmaps"], &["get", "list"]))
            .await
            .unwrap();
        let as_sa = env.impersonating_client(&sa.username()).unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(as_sa.clone(), "team");
        assert!(
            cms.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let forbidden = |e: kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
        let cm: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
        let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
        assert!(forbidden(err), "create is not granted");
        let other: Api<ConfigMap> = Api::namespaced(as_sa.clone(), "default");
        let err = other.list(&ListParams::default()).await.unwrap_err();
        assert!(forbidden(err), "only in the Role's namespace");

        env.grant(&grant.rule(&[""], &["secrets"], &["list"]))
            .await
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(as_sa, "team");
        secrets.list(&ListParams::default()).await.unwrap();
        let err = cms.list(&ListParams::default()).await.unwrap_err();
        assert!(forbidden(err), "the rules were replaced");
    }
}
